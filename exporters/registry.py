"""Collectors behind one interface, timed and guarded, as node_exporter does it.

A collector's collect() returns prometheus_client Metrics or raises. The registry turns
each collection into fleetscope_exporter_collector_{success,duration_seconds} and serves
what succeeded; one failing collector never takes the page down.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.metrics_core import Metric

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import exporter as m
from fleetscope.self_metrics import RuntimeCollector, build_labels

_logger = log.get("fleetscope.exporters")


class Collector(Protocol):
    name: str

    def collect(self) -> Iterable[Metric]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Collection:
    collector: str
    metrics: list[Metric] = field(default_factory=list)
    duration_seconds: float = 0.0
    finished_at: float = 0.0
    error: str | None = None
    # When the metrics this collection stands for were last collected successfully.
    last_success_at: float | None = None


def collect_once(collector: Collector) -> Collection:
    """Runs one collection; an exception becomes a failed Collection and a log line."""
    started = time.perf_counter()
    try:
        metrics = list(collector.collect())
        error = None
    except Exception as failure:  # a collector's bug must not take the page down
        metrics, error = [], f"{type(failure).__name__}: {failure}"
        _logger.error("collector failed", extra={"collector": collector.name, "error": error})
        _logger.debug("collector failure traceback", exc_info=True)
    finished = time.time()
    return Collection(collector.name, metrics, time.perf_counter() - started, finished, error,
                      None if error else finished)


class Source(Protocol):
    """Where the registry gets a collector's latest Collection (see scheduling.py)."""

    name: str

    def latest(self) -> Collection: ...

    @property
    def ready(self) -> bool:
        """Whether it has collected once (a source that collects when scraped always is)."""
        ...

    def close(self) -> None: ...


class ExporterRegistry:
    """A prometheus_client collector serving every source plus the exporter's own metrics.

    runtime: the process's own series (process_*, python_*), read at every
    scrape with the exporter's own metrics; None where the page stands for a simulated node, not a process."""

    def __init__(self, sources: Sequence[Source], runtime: RuntimeCollector | None = None):
        self.sources = list(sources)
        self._runtime = runtime
        self._last_success: dict[str, float] = {}

    def snapshot(self) -> tuple[list[Metric], list[Collection]]:
        """The exporter's own metrics, and each source's latest collection."""
        own = FamilySet()
        own.add(m.BUILD_INFO, build_labels(), 1)
        collections = []
        for source in self.sources:
            collection = source.latest()
            collections.append(collection)
            labels = {"collector": source.name}
            own.add(m.COLLECTOR_SUCCESS, labels, 0 if collection.error else 1)
            own.add(m.COLLECTOR_DURATION, labels, collection.duration_seconds)
            if collection.last_success_at is not None:
                self._last_success[source.name] = collection.last_success_at
            if source.name in self._last_success:
                own.add(m.COLLECTOR_LAST_SUCCESS, labels, self._last_success[source.name])
        runtime = list(self._runtime.collect()) if self._runtime is not None else []
        return own.metrics() + runtime, collections

    def not_ready(self) -> list[str]:
        """The sources still waiting for their first collection."""
        return [source.name for source in self.sources if not source.ready]

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.not_ready():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def collect(self) -> Iterator[Metric]:
        own, collections = self.snapshot()
        yield from own
        for collection in collections:
            if not collection.error:
                yield from collection.metrics

    def close(self) -> None:
        for source in self.sources:
            source.close()
