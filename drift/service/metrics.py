"""The service's /metrics page, read from its state at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from fleetscope.catalog import FamilySet
from fleetscope.drift import catalog
from fleetscope.drift.comparison import DriftResult
from fleetscope.drift.model_quality import Quality
from fleetscope.drift.quality import ColumnQuality
from fleetscope.drift.service.outcomes import LABEL_OUTCOMES, DelayHistogram, WindowQuality
from fleetscope.drift.service.service import DriftService


class DriftCollector:
    def __init__(self, service: DriftService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service, families = self.service, FamilySet()
        for name in service.models():
            latest = service.model(name).latest
            if latest is not None and latest.outcome == "success" and latest.result is not None:
                _add_result(families, {"model": name}, latest.result, latest.current_rows, latest.reference_rows)
                _add_quality(families, name, latest.quality)
                for label, result in latest.segments.items():
                    rows = latest.segment_rows[label]
                    _add_result(families, {"model": name, "segment": label}, result, *rows)
            if latest is not None:
                families.add(catalog.EVALUATION_DURATION, {"model": name}, latest.duration)
            if name in service.last_success:
                families.add(catalog.LAST_EVALUATION, {"model": name}, service.last_success[name])
            families.add(catalog.ROWS_ACCEPTED, {"model": name}, service.rows_accepted[name])
            families.add(catalog.PROFILES_ACCEPTED, {"model": name}, service.profiles_accepted[name])
            if service.model(name).config.quality is not None:
                _add_model_quality(families, service, name, latest.model_quality if latest is not None else None)
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
        yield from families.metrics()


def _add_result(families: FamilySet, labels: dict[str, str], result: DriftResult, current_rows: int,
                reference_rows: int) -> None:
    for column, drift in result.columns.items():
        method_labels = {**labels, "column": column, "method": drift.method}
        families.add(catalog.SCORE, method_labels, drift.score)
        families.add(catalog.SCORE_ERROR_BOUND, method_labels, drift.error_bound)
        families.add(catalog.THRESHOLD, method_labels, drift.threshold)
        families.add(catalog.DETECTED, {**labels, "column": column}, drift.drifted)
    families.add(catalog.SHARE, labels, result.drifted_share)
    families.add(catalog.DATASET_DETECTED, labels, result.dataset_drifted)
    families.add(catalog.WINDOW_ROWS, {**labels, "window": "current"}, current_rows)
    families.add(catalog.WINDOW_ROWS, {**labels, "window": "reference"}, reference_rows)


def _add_quality(families: FamilySet, model: str, quality: dict[str, ColumnQuality]) -> None:
    for column, found in quality.items():
        labels = {"model": model, "column": column}
        families.add(catalog.MISSING, labels, found.missing_share)
        if found.new_category_share is not None:
            families.add(catalog.NEW_CATEGORIES, labels, found.new_category_share)
        if found.out_of_range_share is not None:
            families.add(catalog.OUT_OF_RANGE, labels, found.out_of_range_share)


def _add_model_quality(families: FamilySet, service: DriftService, model: str, window: WindowQuality | None) -> None:
    labels = {"model": model}
    for outcome in LABEL_OUTCOMES:  # 0 from the start, so that increase() sees the first
        families.add(catalog.LABELS, {**labels, "outcome": outcome}, service.labels[model, outcome])
    delays = service.label_delays.get(model) or DelayHistogram()
    families.add_histogram(catalog.LABEL_DELAY, labels, delays.buckets(), delays.total)
    last = service.store.last_label_time(model)
    if last is not None:
        families.add(catalog.LAST_LABEL, labels, last)
    if window is None:
        return
    families.add(catalog.QUALITY_WINDOW_ROWS, {**labels, "rows": "outputs"}, window.outputs)
    families.add(catalog.QUALITY_WINDOW_ROWS, {**labels, "rows": "labelled"}, window.labelled)
    if window.coverage is not None:
        families.add(catalog.LABEL_COVERAGE, labels, window.coverage)
    max_classes = service.limits.max_classes
    if window.quality is not None:
        _add_quality_figures(families, labels, window.quality, max_classes)
        for segment, (outputs, labelled, found) in window.segments.items():
            families.add(catalog.LABEL_COVERAGE, {**labels, "segment": segment}, labelled / outputs)
            if found is not None:
                _add_quality_figures(families, {**labels, "segment": segment}, found, max_classes, confusion=False)
    if window.estimated:
        families.add(catalog.QUALITY_WINDOW_ROWS, {**labels, "rows": "calibration"}, window.calibration_rows)
    for metric, estimate in window.estimated.items():
        families.add(catalog.QUALITY_ESTIMATED, {**labels, "metric": metric}, estimate.value)
        families.add(catalog.QUALITY_ESTIMATED_BOUND, {**labels, "metric": metric, "bound": "lower"}, estimate.lower)
        families.add(catalog.QUALITY_ESTIMATED_BOUND, {**labels, "metric": metric, "bound": "upper"}, estimate.upper)


def _add_quality_figures(families: FamilySet, labels: dict[str, str], quality: Quality, max_classes: int,
                         confusion: bool = True) -> None:
    for metric, value in quality.overall.items():
        families.add(catalog.QUALITY, {**labels, "metric": metric}, value)
    if quality.classes > max_classes:  # class names are the model's outputs: bounded, or left out
        return
    for name, figures in quality.per_class.items():
        for metric, value in figures.items():
            families.add(catalog.QUALITY, {**labels, "metric": metric, "class": name}, value)
    if confusion:
        for (actual, predicted), rows in quality.confusion.items():
            families.add(catalog.CONFUSION, {**labels, "actual": actual, "predicted": predicted}, rows)


def registry_for(service: DriftService) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DriftCollector(service))
    return registry
