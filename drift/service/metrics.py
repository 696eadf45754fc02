"""The service's /metrics page: counters read at scrape time, evaluations' series rendered once per evaluation."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from fleetscope.catalog import FamilySet
from fleetscope.drift import catalog
from fleetscope.drift.service.outcomes import LABEL_OUTCOMES, DelayHistogram
from fleetscope.drift.service.service import DriftService
from fleetscope.self_metrics import SelfCollector


class DriftCollector:
    """The page's counters and gauges, read from the service at each scrape: bounded by the number of models
    (limits.max_models), their columns and the refusal reasons."""

    def __init__(self, service: DriftService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service, families = self.service, FamilySet()
        for name in service.models():
            latest = service.model(name).latest
            if latest is not None:
                families.add(catalog.EVALUATION_DURATION, {"model": name}, latest.duration)
                families.add(catalog.SERIES_DROPPED, {"model": name}, latest.series_dropped)
            if name in service.last_success:
                families.add(catalog.LAST_EVALUATION, {"model": name}, service.last_success[name])
            families.add(catalog.ROWS_ACCEPTED, {"model": name}, service.rows_accepted[name])
            families.add(catalog.PROFILES_ACCEPTED, {"model": name}, service.profiles_accepted[name])
            families.add(catalog.PROFILE_INTERVALS_UNUSABLE, {"model": name}, service.unusable_intervals[name])
            if service.model(name).config.quality is not None:
                _add_labels(families, service, name)
        for (name, outcome), count in sorted(service.evaluations.items()):
            families.add(catalog.EVALUATIONS, {"model": name, "outcome": outcome}, count)
        for (name, reason), count in sorted(service.rows_rejected.items()):
            families.add(catalog.ROWS_REJECTED, {"model": name, "reason": reason}, count)
        for (name, reason), count in sorted(service.batches_rejected.items()):
            families.add(catalog.BATCHES_REJECTED, {"model": name, "reason": reason}, count)
        for name, config in service.models().items():  # 0 from the start, so that increase() sees the first
            for column in config.columns:
                families.add(catalog.ROWS_REFUSED_BY_COLUMN, {"model": name, "column": column},
                             service.rows_refused_by_column[name, column])
        families.add(catalog.MODELS, {}, len(service.models()))
        families.add(catalog.STORE_SIZE, {}, service.store.size_bytes())
        store = service.store  # its limits, what it holds, and what storage.when_full: drop_oldest deleted
        families.add(catalog.STORAGE_LIMIT, {"scope": "store"}, store.limits.max_bytes)
        families.add(catalog.STORAGE_LIMIT, {"scope": "model"}, store.limits.model_quota)
        families.add(catalog.STORAGE_USED, {}, store.used_bytes())
        for name in service.models():  # 0 from the start, so that increase() sees the first eviction
            families.add(catalog.STORAGE_MODEL_BYTES, {"model": name}, store.model_bytes(name))
            families.add(catalog.STORAGE_EVICTED, {"model": name}, store.evicted_bytes[name])
        families.add(catalog.SERIES_LIMIT, {}, service.series.limit)
        yield from families.metrics()


def _add_labels(families: FamilySet, service: DriftService, model: str) -> None:
    labels = {"model": model}
    for outcome in LABEL_OUTCOMES:  # 0 from the start, so that increase() sees the first
        families.add(catalog.LABELS, {**labels, "outcome": outcome}, service.labels[model, outcome])
    delays = service.label_delays.get(model) or DelayHistogram()
    families.add_histogram(catalog.LABEL_DELAY, labels, delays.buckets(), delays.total)
    last = service.store.last_label_time(model)
    if last is not None:
        families.add(catalog.LAST_LABEL, labels, last)


class MetricsPage:
    """The service's /metrics page: the counters read at each scrape, and the evaluations' series (nearly all of
    the page, at most limits.max_series) rendered once after they change and then served to every scrape as they
    are. At most max_renders scrapes read the service at once; the others wait for one of them, up to wait."""

    def __init__(self, service: DriftService, max_renders: int = 2, wait: float = 30.0) -> None:
        self.service = service
        self._counters = CollectorRegistry(auto_describe=False)
        self._counters.register(DriftCollector(service))
        self._counters.register(SelfCollector())
        self._renders = threading.BoundedSemaphore(max_renders)
        self._wait = wait
        self._lock = threading.Lock()  # one rendering of the evaluations at a time
        self._rendered: tuple[tuple, bytes] = ((), b"")  # (the admissions it shows, by serial; their exposition)

    def render(self) -> bytes:
        """The page; TimeoutError when no render slot came free within the wait."""
        if not self._renders.acquire(timeout=self._wait):
            raise TimeoutError("every /metrics render slot stayed busy")
        try:
            return generate_latest(self._counters) + self._evaluations()
        finally:
            self._renders.release()

    def _evaluations(self) -> bytes:
        admitted = [self.service.model(name).series for name in self.service.models()]
        shown = tuple(series.serial for series in admitted)
        with self._lock:
            if self._rendered[0] != shown:
                families = FamilySet()
                for series in admitted:
                    families.update(series.families)
                registry = CollectorRegistry(auto_describe=False)
                registry.register(_Fixed(families.metrics()))
                self._rendered = (shown, generate_latest(registry))
            return self._rendered[1]


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)
