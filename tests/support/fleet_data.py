"""A small fleet on loopback for the dashboard tests and previews: the simulated exporter,
the drift service with a drifted model, an LLM server instrumented with the SDK under
synthetic traffic, and beside it a vLLM engine's own series (its KV cache, queue, preemptions
and inter-token latency, which the SDK does not measure), for the normalization rules to read."""

from __future__ import annotations

import random
import threading

from fleetscope.exporters.inference import InferenceMetrics
from fleetscope.exporters.inference.prometheus import serve
from fleetscope.localstack.process import free_port
from fleetscope.web.server import Request, Response, WebServer
from tests.drift.support import call, outputs
from tests.support.clock import Clock

DRIFT_CONFIG = """
evaluation_interval: 1s
models:
  iris:
    columns: {score: numerical, label: categorical, region: categorical}
    segments: [region]
    window: {type: sliding, rows: 2000}
"""


def feed_drift_service(address: str) -> None:
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(3000, seed=1))[0] == 200
    assert call(address, "POST", "/v1/models/iris/outputs", outputs(1500, seed=2, shift=1.0))[0] == 202
    assert call(address, "POST", "/v1/models/iris/outputs", [{"score": "x", "label": "a", "region": "eu"}])[0] == 400


class LlmTraffic:
    """Requests to two models through the SDK's explicit API, on a clock that makes their
    queue time, time to first token and token times realistic; a few fail or are cancelled."""

    def __init__(self) -> None:
        self.clock = Clock(0.0)
        self.metrics = InferenceMetrics(engine="vllm", clock=self.clock)
        self.port = free_port()
        self.server, _ = serve(self.metrics, self.port, "127.0.0.1")
        self.engine = VllmEngine()
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
        self.engine.stop()

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


class VllmEngine:
    """vLLM's own page for one model, in the text format and the names of vllm/v1/metrics/loggers.py,
    its counters and gauges moving with every scrape."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.server = WebServer("127.0.0.1:0", {"/metrics": self._page})
        self.address = f"127.0.0.1:{self.server.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.shutdown()

    def _page(self, request: Request) -> Response:
        self.scrapes += 1
        t = self.scrapes
        labels = 'engine="0",model_name="qwen-72b"'
        itl = "".join(f'vllm:inter_token_latency_seconds_bucket{{{labels},le="{le}"}} {n * t}\n'
                      for le, n in (("0.01", 0), ("0.025", 300), ("0.05", 400), ("+Inf", 400)))
        page = (f"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{{{labels}}} {0.6 + 0.03 * (t % 10)}\n"
                f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{{labels}}} {8 + t % 4}\n"
                f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{{labels}}} {t % 6}\n"
                f"# TYPE vllm:num_preemptions_total counter\nvllm:num_preemptions_total{{{labels}}} {t // 2}\n"
                f"# TYPE vllm:request_success_total counter\n"
                f'vllm:request_success_total{{{labels},finished_reason="stop"}} {20 * t}\n'
                f"# TYPE vllm:inter_token_latency_seconds histogram\n{itl}"
                f"vllm:inter_token_latency_seconds_count{{{labels}}} {400 * t}\n"
                f"vllm:inter_token_latency_seconds_sum{{{labels}}} {8.0 * t}\n")
        return Response(body=page.encode(), headers={"Content-Type": "text/plain; version=0.0.4"})
