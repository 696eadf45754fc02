"""OTLP export, captured by in-process OTLP collectors (HTTP/protobuf and gRPC) on loopback."""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from fleetscope.exporters.inference import InferenceMetrics
from fleetscope.exporters.inference.otlp import OtlpPusher, exporter_from_environment

EXPECTED = {"gen_ai.server.request.duration", "gen_ai.server.time_to_first_token",
            "gen_ai.server.time_per_output_token", "fleetscope.inference.queue.duration",
            "gen_ai.client.token.usage", "fleetscope.inference.requests", "fleetscope.inference.requests.in_flight"}


class HttpCollector:
    def __init__(self):
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                request.ParseFromString(body)
                collector.requests.append((self.path, self.headers["Content-Type"], request))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                payload = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}/v1/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class GrpcCollector(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self):
        self.requests = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):  # noqa: N802 (gRPC's name)
        self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def close(self):
        self.server.stop(grace=None)


@pytest.fixture
def http_collector():
    collector = HttpCollector()
    yield collector
    collector.close()


def _traffic(metrics):
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("chat") as span:
        with metrics.track("llama", "chat") as request:
            request.dequeued()
            request.output_token(5)
            request.tokens(input=40)
    with pytest.raises(TimeoutError):
        with metrics.track("llama", "chat"):
            raise TimeoutError
    metrics.start("llama", "chat")  # still in flight at export
    return span.get_span_context()


def _by_name(request):
    (resource_metrics,) = request.resource_metrics
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == "fleetscope.exporters.inference"
    return resource_metrics.resource, {metric.name: metric for metric in scope_metrics.metrics}


def _attributes(point):
    return {a.key: a.value.string_value for a in point.attributes}


def test_every_metric_reaches_an_otlp_http_collector(http_collector):
    metrics = InferenceMetrics(engine="vllm-sidecar")
    span = _traffic(metrics)
    pusher = OtlpPusher(metrics, HttpExporter(endpoint=http_collector.endpoint), interval=60,
                        resource=Resource.create({"service.name": "chat-server"}))
    assert pusher.export()
    path, content_type, request = http_collector.requests[-1]
    assert path == "/v1/metrics" and content_type == "application/x-protobuf"
    resource, metrics_by_name = _by_name(request)
    assert set(metrics_by_name) == EXPECTED
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "chat-server"

    (duration,) = metrics_by_name["gen_ai.server.request.duration"].histogram.data_points
    assert metrics_by_name["gen_ai.server.request.duration"].unit == "s"
    assert _attributes(duration) == {"gen_ai.request.model": "llama", "gen_ai.operation.name": "chat",
                                     "fleetscope.engine": "vllm-sidecar"}
    assert duration.count == 2 and sum(duration.bucket_counts) == 2
    assert len(duration.bucket_counts) == len(duration.explicit_bounds) + 1
    assert metrics_by_name["gen_ai.server.request.duration"].histogram.aggregation_temporality == 2  # cumulative
    (exemplar,) = duration.exemplars
    assert exemplar.trace_id == span.trace_id.to_bytes(16, "big")

    usage = {_attributes(p)["gen_ai.token.type"]: p.sum
             for p in metrics_by_name["gen_ai.client.token.usage"].histogram.data_points}
    assert usage == {"input": 40, "output": 5}
    requests = {(_attributes(p)["fleetscope.outcome"], _attributes(p).get("error.type", "")): p.as_int
                for p in metrics_by_name["fleetscope.inference.requests"].sum.data_points}
    assert requests == {("success", ""): 1, ("error", "TimeoutError"): 1}
    assert metrics_by_name["fleetscope.inference.requests"].sum.is_monotonic
    (in_flight,) = metrics_by_name["fleetscope.inference.requests.in_flight"].sum.data_points
    assert in_flight.as_int == 1
    pusher.close()


def test_the_pusher_exports_on_its_interval_and_on_close(http_collector):
    metrics = InferenceMetrics()
    with metrics.track("m"):
        pass
    pusher = OtlpPusher(metrics, HttpExporter(endpoint=http_collector.endpoint), interval=0.1).start()
    deadline = threading.Event()
    for _ in range(50):
        if len(http_collector.requests) >= 2:
            break
        deadline.wait(0.1)
    assert len(http_collector.requests) >= 2
    pusher.close()
    sent = len(http_collector.requests)
    assert sent >= 3 and pusher.failures == 0


def test_an_unreachable_collector_is_counted_not_raised():
    metrics = InferenceMetrics()
    pusher = OtlpPusher(metrics, HttpExporter(endpoint="http://127.0.0.1:9/v1/metrics", timeout=1), interval=60)
    assert pusher.export() is False and pusher.failures == 1


def test_grpc_collectors_receive_the_same(monkeypatch):
    collector = GrpcCollector()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        exporter = exporter_from_environment()
        assert isinstance(exporter, GrpcExporter)
        metrics = InferenceMetrics()
        _traffic(metrics)
        assert OtlpPusher(metrics, exporter, interval=60).export()
        assert set(_by_name(collector.requests[-1])[1]) == EXPECTED
    finally:
        collector.close()


def test_the_environment_chooses_the_exporter(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert exporter_from_environment() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert isinstance(exporter_from_environment(), HttpExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="grpc or http/protobuf"):
        exporter_from_environment()
