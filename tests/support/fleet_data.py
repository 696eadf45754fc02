"""A small fleet on loopback for the dashboard tests and previews: the simulated exporter,
the drift service with a drifted model, an LLM server instrumented with the SDK under
synthetic traffic, and beside it a vLLM engine's own series (its KV cache, queue, preemptions
and inter-token latency, which the SDK does not measure), for the normalization rules to read."""

from __future__ import annotations

import random
import threading
import time

from fleetscope.exporters.inference import InferenceMetrics, visible_gpus
from fleetscope.exporters.inference.prometheus import serve
from fleetscope.localstack.process import free_port
from fleetscope.simulation.gpu import simulated_nvml
from tests.drift.support import call, outputs
from tests.support.clock import Clock
from tests.support.engine_pages import EnginePages, counter, gauge, histogram

DRIFT_CONFIG = """
evaluation_interval: 1s
models:
  iris:
    columns: {score: numerical, label: categorical, region: categorical}
    segments: [region]
    window: {type: sliding, rows: 2000}
  fraud:
    columns: {amount: numerical, p: numerical, label: categorical}
    window: {type: sliding, duration: 10m}
    quality: {task: classification, request_id: request_id, prediction: label, confidence: p,
              confidence_of: positive, positive: fraud, window: 30m}
  loans:
    columns: {income: numerical, debt: numerical, tier: categorical}
    window: {type: sliding, rows: 500}
    evaluation_interval: 5s
    multivariate: {methods: [reconstruction, classifier]}
  flats:
    columns: {price: numerical}
    evaluation_interval: 5s
    quality: {task: regression, prediction: price, window: 30m}
"""


def feed_drift_service(address: str) -> None:
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(3000, seed=1))[0] == 200
    assert call(address, "POST", "/v1/models/iris/outputs", outputs(1500, seed=2, shift=1.0))[0] == 202
    assert call(address, "POST", "/v1/models/iris/outputs", [{"score": "x", "label": "a", "region": "eu"}])[0] == 400
    feed_fraud_model(address)
    feed_multivariate_and_regression_models(address)


def feed_multivariate_and_regression_models(address: str, seed: int = 5) -> None:
    """loans: income and debt correlated in the reference, not in its outputs (multivariate drift); flats: a
    regression model's labels sent pre-joined, 40 minutes old (DLE learns from them) and now."""
    rng = random.Random(seed)

    def loans(count: int, correlated: bool) -> list[dict]:
        rows = []
        for _ in range(count):
            income = rng.gauss(0, 1)
            debt = (income if correlated else rng.gauss(0, 1)) + rng.gauss(0, 0.3)
            rows.append({"income": income, "debt": debt, "tier": "gold" if income > 0 else "basic"})
        return rows

    assert call(address, "PUT", "/v1/models/loans/reference", loans(2500, True))[0] == 200
    assert call(address, "POST", "/v1/models/loans/outputs", loans(500, False))[0] == 202

    def flats(count: int, when: float) -> list[dict]:
        return [{"price": actual + rng.gauss(0, 1) * actual / 20, "actual": actual, "output_time": when}
                for actual in (rng.uniform(100, 1000) for _ in range(count))]

    assert call(address, "POST", "/v1/models/flats/labels", flats(300, time.time() - 2400))[0] == 202
    assert call(address, "POST", "/v1/models/flats/labels", flats(100, time.time()))[0] == 202


def _scored(rng: random.Random, count: int, hardness: float = 1.5) -> list[tuple[float, str, str]]:
    """(score, prediction, actual) of a binary classifier whose scores are overconfident by `hardness`."""
    rows = []
    for _ in range(count):
        p = rng.random()
        rows.append((p, "fraud" if p >= 0.5 else "ok", "fraud" if rng.random() < p ** hardness else "ok"))
    return rows


def feed_fraud_model(address: str, seed: int = 3) -> None:
    """A binary classifier whose scores are overconfident: an hour-old labelled batch, sent pre-joined, to
    calibrate on, then live outputs of which half get their labels."""
    rng = random.Random(seed)

    def scored(count: int) -> list[tuple[float, str, str]]:
        return _scored(rng, count)

    earlier = time.time() - 2400
    calibration = [{"p": p, "label": label, "actual": actual, "output_time": earlier}
                   for p, label, actual in scored(600)]
    assert call(address, "POST", "/v1/models/fraud/labels", calibration)[0] == 202
    live = scored(600)
    rows = [{"request_id": f"t{index}", "amount": rng.lognormvariate(3, 1), "p": p, "label": label}
            for index, (p, label, _) in enumerate(live)]
    assert call(address, "POST", "/v1/models/fraud/outputs", rows)[0] == 202
    labels = [{"request_id": f"t{index}", "actual": actual} for index, (_, _, actual) in enumerate(live) if index % 2]
    assert call(address, "POST", "/v1/models/fraud/labels", labels)[0] == 202


class FraudTraffic:
    """Live traffic of the fraud model for the previews: every few seconds a batch of outputs, and the labels
    of the batch before it, 70% of them; the fraud it misses grows with time (concept drift its confidence
    cannot show), so realized and estimated quality part."""

    def __init__(self, address: str, seed: int = 4, every: float = 5.0) -> None:
        self.address, self.every = address, every
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fraud-traffic", daemon=True)

    def start(self) -> FraudTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        began, batch, waiting = time.monotonic(), 0, []
        while not self._stop.wait(self.every):
            hardness = 1.5 + (time.monotonic() - began) / 60
            live = _scored(self._rng, 100, hardness)
            rows = [{"request_id": f"live-{batch}-{index}", "amount": self._rng.lognormvariate(3, 1), "p": p,
                     "label": label} for index, (p, label, _) in enumerate(live)]
            call(self.address, "POST", "/v1/models/fraud/outputs", rows)
            if waiting:
                call(self.address, "POST", "/v1/models/fraud/labels", waiting)
            waiting = [{"request_id": f"live-{batch}-{index}", "actual": actual}
                       for index, (_, _, actual) in enumerate(live) if self._rng.random() < 0.7]
            batch += 1


class LlmTraffic:
    """Requests to two models through the SDK's explicit API, on a clock that makes their
    queue time, time to first token and token times realistic; a few fail or are cancelled.
    The process declares GPUs 0 and 1 of `fleetscope exporter --simulate` on this host, as a
    server off Kubernetes does, so the serving-efficiency rules can join them."""

    def __init__(self) -> None:
        self.clock = Clock(0.0)
        gpus = visible_gpus({"NVIDIA_VISIBLE_DEVICES": "0,1"}, simulated_nvml())
        self.metrics = InferenceMetrics(engine="vllm", clock=self.clock, gpus=gpus)
        self.port = free_port()
        self.server, _ = serve(self.metrics, self.port, "127.0.0.1")
        self.engine = EnginePages({"vllm": vllm_page})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._random = random.Random(0)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LlmTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.server.shutdown()
        self.engine.close()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.one(self._random.choice(["llama-3-8b", "mistral-7b"]))

    def one(self, model: str) -> None:
        spin = self._random.random
        request = self.metrics.start(model, "chat")
        self.clock.now += spin() * 0.05
        request.dequeued()
        self.clock.now += 0.05 + spin() * 0.3
        request.output_token()
        tokens = self._random.randint(2, 200)
        self.clock.now += tokens * (0.01 + spin() * 0.02)
        request.output_token(tokens - 1)
        request.tokens(input=self._random.randint(10, 2000), output=tokens)
        roll = spin()
        if roll < 0.03:
            request.fail(RuntimeError("CUDA out of memory"))
        elif roll < 0.05:
            request.cancel()
        else:
            request.finish()


def vllm_page(t: int) -> str:
    """vLLM's own page for one model at its t-th scrape, in the names of vllm/v1/metrics/loggers.py,
    its counters and gauges moving with every scrape."""
    labels = 'engine="0",model_name="qwen-72b"'
    return (gauge("vllm:kv_cache_usage_perc", labels, 0.6 + 0.03 * (t % 10)) +
            gauge("vllm:num_requests_running", labels, 8 + t % 4) +
            gauge("vllm:num_requests_waiting", labels, t % 6) +
            counter("vllm:num_preemptions_total", {labels: 0.5}, t) +
            counter("vllm:request_success_total", {f'{labels},finished_reason="stop"': 20}, t) +
            histogram("vllm:inter_token_latency_seconds", labels,
                      [("0.01", 0), ("0.025", 300), ("0.05", 400), ("+Inf", 400)], 8.0, t) +
            counter("vllm:prefix_cache_queries_total", {labels: 400}, t) +
            counter("vllm:prefix_cache_hits_total", {labels: 300}, t) +
            counter("vllm:spec_decode_num_drafts_total", {labels: 10}, t) +
            counter("vllm:spec_decode_num_draft_tokens_total", {labels: 30}, t) +
            counter("vllm:spec_decode_num_accepted_tokens_total", {labels: 21}, t) +
            histogram("vllm:request_prefill_time_seconds", labels, [("0.3", 15), ("0.5", 20), ("+Inf", 20)], 5.0, t) +
            histogram("vllm:request_decode_time_seconds", labels,
                      [("0.3", 0), ("1.0", 12), ("2.5", 20), ("+Inf", 20)], 24.0, t) +
            histogram("vllm:nixl_xfer_time_seconds", labels,
                      [("0.005", 0), ("0.01", 15), ("0.025", 20), ("+Inf", 20)], 0.2, t) +
            # The adapters with requests running, comma-joined, no model label; its value the time it was set.
            gauge("vllm:lora_requests_info", 'max_lora="2",running_lora_adapters="alpha,beta",'
                                             'waiting_lora_adapters="alpha,beta"', 1.7e9 + t))
