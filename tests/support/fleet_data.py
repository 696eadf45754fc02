"""A small fleet on loopback for the dashboard tests and previews: the simulated exporter,
the drift service with a drifted model, and an LLM server instrumented with the SDK under
synthetic traffic."""

from __future__ import annotations

import random
import threading

from fleetscope.exporters.inference import InferenceMetrics
from fleetscope.exporters.inference.prometheus import serve
from fleetscope.localstack.process import free_port
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
