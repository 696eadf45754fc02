"""The training SDK's metrics for Prometheus: a prometheus_client collector, and a pull page of the job's own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from fleetscope.catalog import FamilySet, cumulative_buckets
from fleetscope.exporters.catalog import training as spec
from fleetscope.exporters.training.tracking import TrainingMetrics

_INF = (float("inf"),)


class TrainingCollector:
    """Register with any prometheus_client registry: `registry.register(TrainingCollector(metrics))`."""

    def __init__(self, metrics: TrainingMetrics):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        seen = self.metrics.snapshot()
        state = seen.state
        labels = {"training_job": seen.job, "rank": str(seen.rank), "hostname": seen.hostname}
        families = FamilySet()
        families.add(spec.STEPS, labels, state.steps)
        families.add(spec.SAMPLES, labels, state.samples)
        families.add(spec.TOKENS, labels, state.tokens)
        families.add(spec.RESTARTS, labels, state.restarts)
        for phase, seconds in zip(spec.PHASES, state.phases, strict=True):
            families.add(spec.PHASE_SECONDS, {**labels, "phase": phase}, seconds)
        families.add(spec.JOB_START, labels, state.job_start)
        if state.last_checkpoint:
            families.add(spec.LAST_CHECKPOINT, labels, state.last_checkpoint)
        if state.last_step:
            families.add(spec.LAST_STEP, labels, state.last_step)
        step = seen.step_duration
        families.add_histogram(spec.STEP_DURATION, labels, cumulative_buckets(step.bounds + _INF, step.counts),
                               step.total)
        for operation, histogram in seen.checkpoint_duration.items():
            families.add_histogram(spec.CHECKPOINT_DURATION, {**labels, "operation": operation},
                                   cumulative_buckets(histogram.bounds + _INF, histogram.counts), histogram.total)
        yield from families.metrics()


def registry_for(metrics: TrainingMetrics, *collectors: Collector) -> CollectorRegistry:
    """A registry serving the SDK's metrics and any other collectors the job has."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrainingCollector(metrics))
    for collector in collectors:
        registry.register(collector)
    return registry


def serve(metrics: TrainingMetrics, port: int, address: str = "0.0.0.0") -> tuple[object, object]:
    """Serves the metrics on http://address:port/metrics. Returns prometheus_client's (server, thread); call
    server.shutdown() to stop."""
    return start_http_server(port, address, registry=registry_for(metrics))
