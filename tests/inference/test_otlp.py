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
from fleetscope.exporters.inference.otlp import OtlpPusher, exporter_from_environment, metrics_data
from fleetscope.exporters.inference.prometheus import InferenceCollector

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
    with tracer.start_as_current_span("chat") as span, metrics.track("llama", "chat") as request:
        request.dequeued()
        request.output_token(5)
        request.tokens(input=40)
    with pytest.raises(TimeoutError), metrics.track("llama", "chat"):
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

    # One point per outcome: OpenTelemetry's error.type keeps failed latencies apart from successful ones.
    durations = {_attributes(p).get("error.type", ""): p
                 for p in metrics_by_name["gen_ai.server.request.duration"].histogram.data_points}
    assert metrics_by_name["gen_ai.server.request.duration"].unit == "s"
    assert set(durations) == {"", "TimeoutError"}
    duration = durations[""]
    assert _attributes(duration) == {"gen_ai.request.model": "llama", "gen_ai.operation.name": "chat",
                                     "gen_ai.provider.name": "vllm-sidecar", "fleetscope.engine": "vllm-sidecar",
                                     "fleetscope.outcome": "success"}
    assert duration.count == 1 and sum(duration.bucket_counts) == 1
    assert durations["TimeoutError"].count == 1
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


def test_the_prometheus_page_and_otlp_output_agree():
    metrics = InferenceMetrics(engine="vllm", provider="acme")
    _traffic(metrics)
    with metrics.track("llama", "chat") as request:
        request.reject("429")
    with metrics.track("llama", "chat") as request:
        request.output_token(3)
        request.cancel()
    data = metrics_data(metrics, Resource.create({}))
    (scope,) = data.resource_metrics[0].scope_metrics
    otlp = {}
    for metric in scope.metrics:
        for point in metric.data.data_points:
            attributes = dict(point.attributes)
            key = (metric.name, attributes.get("fleetscope.outcome", ""), attributes.get("error.type", ""),
                   attributes.get("gen_ai.token.type", ""))
            otlp[key] = point.count if hasattr(point, "bucket_counts") else point.value
            assert attributes["gen_ai.provider.name"] == "acme"
    page = {}
    for family in InferenceCollector(metrics).collect():
        for sample in family.samples:
            if sample.name.endswith(("_count", "_total")) or family.type == "gauge":
                page[(sample.name, sample.labels.get("outcome", ""), sample.labels.get("error_type", ""),
                      sample.labels.get("token_type", ""))] = sample.value
    durations = {(k[1], k[2]): v for k, v in page.items()
                 if k[0] == "fleetscope_inference_request_duration_seconds_count"}
    # error.type is the error's class, or the outcome where it has none; a cancellation is no error.
    assert durations == {("success", ""): 1, ("error", "TimeoutError"): 1, ("rejected", "429"): 1, ("cancelled", ""): 1}
    assert {(k[1], k[2]): v for k, v in otlp.items() if k[0] == "gen_ai.server.request.duration"} == {
        ("success", ""): 1, ("error", "TimeoutError"): 1, ("rejected", "429"): 1, ("cancelled", ""): 1}
    requests = {(k[1], k[2]): v for k, v in page.items() if k[0] == "fleetscope_inference_requests_total" and v}
    assert requests == {(k[1], k[2]): v for k, v in otlp.items() if k[0] == "fleetscope.inference.requests"}
    # Time to first token: the successful request only, on both (the cancelled one streamed tokens too).
    assert page[("fleetscope_inference_time_to_first_token_seconds_count", "", "", "")] == 1
    assert otlp[("gen_ai.server.time_to_first_token", "", "", "")] == 1
    for token_type in ("input", "output"):
        assert (page[("fleetscope_inference_request_tokens_count", "", "", token_type)]
                == otlp[("gen_ai.client.token.usage", "", "", token_type)])
