"""OTLP export of the SDK's metrics under OpenTelemetry's GenAI semantic-convention names.

The points are built from the SDK's own aggregation and handed to the OpenTelemetry SDK's
OTLP exporters (HTTP/protobuf or gRPC), with cumulative temporality and the process's
OpenTelemetry Resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). Recording through
OpenTelemetry's own instruments would cost about 10 µs a measurement here, eight of them a
request; see benchmarks/inference_sdk.py.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from opentelemetry.sdk.metrics._internal.exemplar import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from fleetscope import __version__
from fleetscope.exporters.inference.series import HistogramSnapshot, SeriesSnapshot
from fleetscope.exporters.inference.tracking import InferenceMetrics

log = logging.getLogger(__name__)

SCOPE = InstrumentationScope("fleetscope.exporters.inference", __version__)
CUMULATIVE = AggregationTemporality.CUMULATIVE

# The outcomes that are OpenTelemetry errors: error.type is set on them. A cancellation is the client's
# choice, not a failure of the operation, so it carries fleetscope.outcome only.
ERROR_OUTCOMES = ("error", "rejected", "client_error")
DURATION = ("gen_ai.server.request.duration", "s", "Time from a request's arrival to its last byte.")
# (name, unit, description, which histogram of a SeriesSnapshot, extra attributes)
HISTOGRAMS: tuple[tuple[str, str, str, str, dict[str, str]], ...] = (
    ("gen_ai.server.time_to_first_token", "s", "Time to the first output token of successful requests.",
     "time_to_first_token", {}),
    ("gen_ai.server.time_per_output_token", "s", "Mean time per output token after the first, successful requests.",
     "time_per_output_token", {}),
    ("fleetscope.inference.queue.duration", "s", "Time a request waited before the model started on it.",
     "queue", {}),
    ("gen_ai.client.token.usage", "{token}", "Tokens per request.", "input_tokens", {"gen_ai.token.type": "input"}),
    ("gen_ai.client.token.usage", "{token}", "Tokens per request.", "output_tokens",
     {"gen_ai.token.type": "output"}),
)


def attributes(metrics: InferenceMetrics, series: SeriesSnapshot) -> dict[str, str]:
    return {"gen_ai.request.model": series.model, "gen_ai.operation.name": series.operation,
            "gen_ai.provider.name": metrics.provider, "fleetscope.engine": metrics.engine}


def outcome_attributes(outcome: str, error_type: str) -> dict[str, str]:
    error = {"error.type": error_type or outcome} if outcome in ERROR_OUTCOMES else {}
    return {"fleetscope.outcome": outcome, **error}


def metrics_data(metrics: InferenceMetrics, resource: Resource, now_ns: int | None = None) -> MetricsData:
    now_ns = now_ns or time.time_ns()
    start_ns = int(metrics.created * 1e9)
    snapshots = metrics.snapshot()
    name, unit, description = DURATION
    points: dict[str, tuple[str, str, list[HistogramDataPoint]]] = {name: (unit, description, [
        _histogram_point({**attributes(metrics, series), **outcome_attributes(*key)}, duration, start_ns, now_ns)
        for series in snapshots for key, duration in sorted(series.durations.items())])}
    for name, unit, description, field, extra in HISTOGRAMS:
        entry = points.setdefault(name, (unit, description, []))
        for series in snapshots:
            entry[2].append(_histogram_point({**attributes(metrics, series), **extra}, getattr(series, field),
                                             start_ns, now_ns))
    out = [Metric(name, description, unit, Histogram(data, CUMULATIVE)) for name, (unit, description, data)
           in points.items()]
    requests = [NumberDataPoint({**attributes(metrics, series), **outcome_attributes(outcome, error_type)},
                                start_ns, now_ns, count)
                for series in snapshots for (outcome, error_type), count in sorted(series.requests.items())]
    out.append(Metric("fleetscope.inference.requests", "Requests finished, by outcome.", "{request}",
                      Sum(requests, CUMULATIVE, is_monotonic=True)))
    in_flight = [NumberDataPoint(attributes(metrics, series), start_ns, now_ns, series.in_flight)
                 for series in snapshots]
    out.append(Metric("fleetscope.inference.requests.in_flight", "Requests started and not yet finished.",
                      "{request}", Sum(in_flight, CUMULATIVE, is_monotonic=False)))
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(SCOPE, out, "")], "")])


def _histogram_point(attrs: dict[str, str], histogram: HistogramSnapshot, start_ns: int,
                     now_ns: int) -> HistogramDataPoint:
    exemplars = [Exemplar(None, seen.value, int(seen.timestamp * 1e9), seen.span_id, seen.trace_id)
                 for seen in histogram.exemplars if seen is not None]
    # min and max are not tracked (they would cost the hot path two comparisons per value). OTLP's are
    # optional and the exporters leave None out, but the SDK's dataclass types them float.
    return HistogramDataPoint(attrs, start_ns, now_ns, histogram.count, histogram.total, list(histogram.counts),
                              list(histogram.bounds), None, None, exemplars)  # type: ignore[arg-type]


def exporter_from_environment() -> MetricExporter | None:
    """The OTLP exporter the standard OTEL_EXPORTER_OTLP_* variables ask for, or None when none is set."""
    if not (os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        return HttpExporter()
    raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use grpc or http/protobuf")


class OtlpPusher:
    """Exports the metrics every `interval` seconds from a daemon thread, and once more on close()."""

    def __init__(self, metrics: InferenceMetrics, exporter: MetricExporter, interval: float = 10.0,
                 resource: Resource | None = None):
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.metrics = metrics
        self.exporter = exporter
        self.interval = interval
        self.resource = resource or Resource.create()
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleetscope-otlp", daemon=True)

    def start(self) -> OtlpPusher:
        self._thread.start()
        return self

    def export(self) -> bool:
        try:
            result = self.exporter.export(metrics_data(self.metrics, self.resource))
        except Exception:  # an exporter must never take the model server down
            log.exception("OTLP export failed")
            result = MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self.failures += 1
        return result is MetricExportResult.SUCCESS

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        self.export()
        self.exporter.shutdown()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.export()
