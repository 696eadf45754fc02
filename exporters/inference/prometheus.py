"""The SDK's metrics for Prometheus: a prometheus_client collector, and a pull page of its own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from fleetscope.catalog import FamilySet, MetricSpec
from fleetscope.exporters.catalog import inference as spec
from fleetscope.exporters.inference.series import Exemplar as SeenExemplar
from fleetscope.exporters.inference.series import HistogramSnapshot
from fleetscope.exporters.inference.tracking import InferenceMetrics


class InferenceCollector:
    """Register with any prometheus_client registry: `registry.register(InferenceCollector(metrics))`."""

    def __init__(self, metrics: InferenceMetrics):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        families = FamilySet()
        for series in self.metrics.snapshot():
            labels = {"model": series.model, "operation": series.operation, "engine": self.metrics.engine}
            for (outcome, error_type), duration in sorted(series.durations.items()):
                _histogram(families, spec.REQUEST_DURATION, {**labels, "outcome": outcome, "error_type": error_type},
                           duration)
            _histogram(families, spec.QUEUE_DURATION, labels, series.queue)
            _histogram(families, spec.TIME_TO_FIRST_TOKEN, labels, series.time_to_first_token)
            _histogram(families, spec.TIME_PER_OUTPUT_TOKEN, labels, series.time_per_output_token)
            _histogram(families, spec.REQUEST_TOKENS, {**labels, "token_type": "input"}, series.input_tokens)
            _histogram(families, spec.REQUEST_TOKENS, {**labels, "token_type": "output"}, series.output_tokens)
            # Every outcome from the start, so that rate() and ratios see a zero rather than nothing.
            requests = {("success", ""): 0, ("error", ""): 0, **series.requests}
            for (outcome, error_type), count in sorted(requests.items()):
                families.add(spec.REQUESTS, {**labels, "outcome": outcome, "error_type": error_type}, count)
            families.add(spec.IN_FLIGHT, labels, series.in_flight)
        for uuid in self.metrics.gpus:
            families.add(spec.GPU_INFO, {"engine": self.metrics.engine, "hostname": self.metrics.hostname,
                                         "uuid": uuid}, 1)
        yield from families.metrics()


def _histogram(families: FamilySet, metric: MetricSpec, labels: dict[str, str], histogram: HistogramSnapshot) -> None:
    families.add_histogram(metric, labels, histogram.cumulative(), histogram.total,
                           [_exemplar(seen) for seen in histogram.exemplars])


def _exemplar(seen: SeenExemplar | None) -> Exemplar | None:
    if seen is None:
        return None
    return Exemplar({"trace_id": f"{seen.trace_id:032x}", "span_id": f"{seen.span_id:016x}"}, seen.value,
                    seen.timestamp)


def registry_for(metrics: InferenceMetrics, *collectors: Collector) -> CollectorRegistry:
    """A registry serving the SDK's metrics and any other collectors the server has."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InferenceCollector(metrics))
    for collector in collectors:
        registry.register(collector)
    return registry


def serve(metrics: InferenceMetrics, port: int, address: str = "0.0.0.0") -> tuple[object, object]:
    """Serves the metrics on http://address:port/metrics (OpenMetrics, with exemplars, when asked for).

    Returns prometheus_client's (server, thread); call server.shutdown() to stop."""
    return start_http_server(port, address, registry=registry_for(metrics))
