"""The ASGI middleware and the example model server, driven in process through Starlette's test client."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from fleetscope.example.model import IrisModel
from fleetscope.example.server import create_app
from fleetscope.exporters.inference import InferenceMetrics
from fleetscope.exporters.inference.asgi import STATE_KEY, InferenceMiddleware
from tests.support.exposition import samples

PREDICT = "/v1/models/iris/predict"


@pytest.fixture(scope="module")
def model():
    return IrisModel()


def requests_by_outcome(metrics):
    (series,) = metrics.snapshot()
    return series.requests


def test_predictions_are_tracked_and_their_rows_handed_on(model):
    metrics = InferenceMetrics(engine="sklearn")
    handed = []
    client = TestClient(create_app(model, metrics, outputs=lambda name, rows: handed.append((name, rows))))
    response = client.post(PREDICT, json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
    assert response.status_code == 200
    assert [p["label"] for p in response.json()["predictions"]] == ["setosa", "virginica"]
    assert handed[0][0] == "iris" and handed[0][1][0]["sepal_length"] == 5.1 and handed[0][1][1]["label"] == "virginica"
    (series,) = metrics.snapshot()
    assert (series.model, series.operation) == ("iris", "predict")
    assert series.requests == {("success", ""): 1}
    assert series.queue.count == series.time_to_first_token.count == series.duration.count == 1


@pytest.mark.parametrize("body, message", [
    (b"{not json", "Expecting property name"),
    (b'{"instances": []}', "non-empty list"),
    (b'{"instances": [[1, 2, 3]]}', "instance 0: expected 4 numbers"),
    (b'{"instances": [[1, 2, 3, "x"]]}', "instance 0, petal_width: 'x' is not a finite number"),
    (b'{"instances": [[1, 2, 3, NaN]]}', "petal_width: nan is not a finite number"),
    (b'{"instances": [[1, 2, 3, Infinity]]}', "inf is not a finite number"),
    (b'[1, 2]', "non-empty list"),
    (b'{"instances": [[1, 2, 3, 1' + b"0" * 400 + b']]}', "is not a finite number"),  # past float's range
    (b'{"instances": [[1, 2, 3, 1e308]]}', "petal_width: 1e+308 cm is out of range"),  # finite, but NaN to the model
    (b'{"instances": [[-2e6, 2, 3, 4]]}', "sepal_length: -2e+06 cm is out of range"),
    (b'{"instances": [[1, 2, 3, 1' + b"0" * 5000 + b']]}', "Exceeds the limit"),  # past int parsing's limit
    (b'{"instances": ' + b"[" * 100_000, "nests too deeply"),
])
def test_bad_requests_are_client_errors_with_a_message(model, body, message):
    metrics = InferenceMetrics()
    client = TestClient(create_app(model, metrics))
    response = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and message in response.json()["error"]
    assert requests_by_outcome(metrics) == {("client_error", "400"): 1}


def test_oversized_bodies_are_refused(model):
    metrics = InferenceMetrics()
    response = TestClient(create_app(model, metrics)).post(PREDICT, content=b" " * (2 << 20))
    assert response.status_code == 413
    assert requests_by_outcome(metrics) == {("client_error", "413"): 1}


def test_oversized_bodies_without_a_length_are_refused_as_they_arrive(model):
    metrics = InferenceMetrics()
    chunks = (b" " * (64 << 10) for _ in range(40))  # 2.5 MiB, chunked: no Content-Length to go by
    response = TestClient(create_app(model, metrics)).post(PREDICT, content=chunks)
    assert response.status_code == 413
    assert requests_by_outcome(metrics) == {("client_error", "413"): 1}


def test_only_routed_paths_are_tracked_and_metrics_are_served(model):
    metrics = InferenceMetrics(engine="sklearn")
    client = TestClient(create_app(model, metrics))
    assert client.get("/-/healthy").status_code == 200
    assert [s.duration.count for s in metrics.snapshot()] == [0]  # declared at start, untouched
    client.post(PREDICT, json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    response = client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200  # answered where curl and promtool ask, not redirected
    page = response.text
    counts = {labels["outcome"]: value for name, labels, value in samples(page)
              if name == "fleetscope_inference_requests_total"}
    assert counts == {"success": 1.0, "error": 0.0}


def _app(handler):
    return Starlette(routes=[Route("/generate", handler, methods=["POST"])])


def test_server_errors_and_exceptions_are_errors_and_overload_is_a_rejection():
    metrics = InferenceMetrics()

    def answering(status):
        async def handler(request):
            return PlainTextResponse("no", status_code=status)
        return TestClient(InferenceMiddleware(_app(handler), metrics, route=lambda scope: ("m", "chat")))

    for status in (503, 429, 502, 422):
        assert answering(status).post("/generate").status_code == status

    async def broken(request):
        raise RuntimeError("boom")

    client = TestClient(InferenceMiddleware(_app(broken), metrics, route=lambda scope: ("m", "chat")),
                        raise_server_exceptions=False)
    assert client.post("/generate").status_code == 500
    assert requests_by_outcome(metrics) == {("rejected", "503"): 1, ("rejected", "429"): 1, ("error", "502"): 1,
                                            ("client_error", "422"): 1, ("error", "RuntimeError"): 1}


def test_a_streaming_handler_reports_tokens_and_its_first_one():
    metrics = InferenceMetrics(engine="toy")

    async def generate(request):
        tracked = request.state.fleetscope_request
        tracked.dequeued()
        tracked.tokens(input=7)

        async def stream():
            for word in ("a", "b", "c"):
                tracked.output_token()
                yield word.encode()

        return StreamingResponse(stream())

    client = TestClient(InferenceMiddleware(_app(generate), metrics, route=lambda scope: ("m", "chat")))
    assert client.post("/generate").text == "abc"
    (series,) = metrics.snapshot()
    assert series.output_tokens.total == 3 and series.input_tokens.total == 7
    assert series.time_per_output_token.count == 1 and series.time_to_first_token.count == 1
    assert STATE_KEY == "fleetscope_request"


def test_openmetrics_pages_carry_trace_exemplars(model):
    metrics = InferenceMetrics()
    tracer = TracerProvider().get_tracer("test")
    app = create_app(model, metrics)
    client = TestClient(app)
    # The test client runs the app in another thread; the middleware sees no span there,
    # so mark the request from here as a server framework with tracing would.
    with tracer.start_as_current_span("predict") as span, metrics.track("iris", "predict"):
        pass
    page = client.get("/metrics", headers={"accept": "application/openmetrics-text"}).text
    trace_id = f"{span.get_span_context().trace_id:032x}"
    assert f'# {{span_id="{span.get_span_context().span_id:016x}",trace_id="{trace_id}"}}' in page
