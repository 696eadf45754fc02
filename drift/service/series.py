"""The series a model's latest evaluation puts on the drift service's /metrics page, built once per evaluation
and admitted within limits.max_series: however many models, columns and segment values clients create, the page
never holds more, and what is left out is counted, said in /drift and logged."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.drift import catalog
from fleetscope.drift.comparison import DriftResult
from fleetscope.drift.model_quality import Quality
from fleetscope.drift.multivariate import MultivariateDrift
from fleetscope.drift.quality import ColumnQuality
from fleetscope.drift.service.evaluation import Evaluation
from fleetscope.drift.service.outcomes import WindowQuality

_log = log.get("fleetscope.drift")

def blocks(evaluation: Evaluation, max_classes: int) -> list[FamilySet]:
    """The evaluation's series in the order they are kept when not all fit: the model as a whole, its measured
    quality, then each segment (the largest first), then each segment's quality. A block is kept whole or not
    at all, so a segment on the page always has all its series."""
    model, found = evaluation.model, []
    if evaluation.outcome == "success" and evaluation.result is not None:
        whole = FamilySet()
        _add_result(whole, {"model": model}, evaluation.result, evaluation.current_rows, evaluation.reference_rows)
        _add_data_quality(whole, model, evaluation.quality)
        _add_multivariate(whole, {"model": model}, evaluation.multivariate.get("", {}))
        found.append(whole)
    window = evaluation.model_quality
    if window is not None:
        whole_quality = FamilySet()
        _add_window_quality(whole_quality, {"model": model}, window, max_classes)
        for metric, bounds in evaluation.estimated_thresholds.items():
            for bound, value in zip(("lower", "upper"), bounds, strict=True):
                whole_quality.add(catalog.QUALITY_ESTIMATED_THRESHOLD, {"model": model, "metric": metric,
                                                                         "bound": bound}, value)
        found.append(whole_quality)
    for label, result in evaluation.segments.items():
        segment = FamilySet()
        _add_result(segment, {"model": model, "segment": label}, result, *evaluation.segment_rows[label])
        _add_multivariate(segment, {"model": model, "segment": label}, evaluation.multivariate.get(label, {}))
        found.append(segment)
    if window is not None and window.quality is not None:
        for label, (outputs, labelled, quality) in window.segments.items():
            segment = FamilySet()
            labels = {"model": model, "segment": label}
            segment.add(catalog.LABEL_COVERAGE, labels, labelled / outputs)
            if quality is not None:
                _add_quality_figures(segment, labels, quality, max_classes, confusion=False)
            found.append(segment)
    return found


_SERIALS = itertools.count(1)


@dataclass(frozen=True)
class Admitted:
    families: FamilySet = field(default_factory=FamilySet)  # what the page serves of the evaluation
    dropped: int = 0  # series left out for limits.max_series
    serial: int = 0  # unique to each admission: the page renders again when a model's changes


class SeriesBudget:
    """limits.max_series shared by the page's series: the most its counters can be, set aside, and each model's
    admitted evaluation series. A model's new evaluation may take what the others leave; what does
    not fit is left out, whole blocks at a time, so series already on the page are never pushed off by a newcomer."""

    def __init__(self, limit: int, reserved: int) -> None:
        self.limit = limit
        self.reserved = reserved  # for the page's counters, read at each scrape: the most they can be
        self._admitted: dict[str, int] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, model: str, found: list[FamilySet]) -> Admitted:
        with self._lock:
            room = self.limit - self.reserved - sum(count for name, count in self._admitted.items() if name != model)
            kept, dropped = FamilySet(), 0
            for block in found:
                if dropped or len(kept) + len(block) > room:
                    dropped += len(block)
                else:
                    kept.update(block)
            self._admitted[model] = len(kept)
        if dropped and model not in self._warned:
            self._warned.add(model)
            _log.warning("limits.max_series reached: series of the model's evaluations are left off /metrics",
                         extra={"model": model, "dropped": dropped, "max_series": self.limit})
        elif not dropped:
            self._warned.discard(model)
        return Admitted(kept, dropped, next(_SERIALS))


def _add_result(families: FamilySet, labels: dict[str, str], result: DriftResult, current_rows: int,
                reference_rows: int) -> None:
    for column, drift in result.columns.items():
        method_labels = {**labels, "column": column, "method": drift.method}
        families.add(catalog.SCORE, method_labels, drift.score)
        families.add(catalog.SCORE_ERROR_BOUND, method_labels, drift.error_bound)
        families.add(catalog.THRESHOLD, method_labels, drift.threshold)
        families.add(catalog.DETECTED, {**labels, "column": column}, drift.drifted)
        families.add(catalog.DECISION_CERTAIN, {**labels, "column": column}, drift.decided)
    families.add(catalog.SHARE, labels, result.drifted_share)
    uncertain = sum(not drift.decided for drift in result.columns.values())
    families.add(catalog.UNCERTAIN_SHARE, labels, uncertain / len(result.columns) if result.columns else 0.0)
    families.add(catalog.DATASET_DETECTED, labels, result.dataset_drifted)
    families.add(catalog.WINDOW_ROWS, {**labels, "window": "current"}, current_rows)
    families.add(catalog.WINDOW_ROWS, {**labels, "window": "reference"}, reference_rows)


def _add_multivariate(families: FamilySet, labels: dict[str, str], found: dict[str, MultivariateDrift]) -> None:
    """Each method's value, its band's ends (a missing end has no series) and whether it is outside them."""
    specs = {"reconstruction": (catalog.MULTIVARIATE_RECONSTRUCTION_SCORE, catalog.MULTIVARIATE_RECONSTRUCTION_BOUND),
             "classifier": (catalog.MULTIVARIATE_CLASSIFIER_AUC, catalog.MULTIVARIATE_CLASSIFIER_BOUND)}
    for method, drift in found.items():
        value_spec, bound_spec = specs[method]
        families.add(value_spec, labels, drift.value)
        for bound, value in (("lower", drift.lower), ("upper", drift.upper)):
            if value is not None:
                families.add(bound_spec, {**labels, "bound": bound}, value)
        families.add(catalog.MULTIVARIATE_DETECTED, {**labels, "method": method}, drift.drifted)


def _add_data_quality(families: FamilySet, model: str, quality: dict[str, ColumnQuality]) -> None:
    for column, found in quality.items():
        labels = {"model": model, "column": column}
        families.add(catalog.MISSING, labels, found.missing_share)
        if found.new_category_share is not None:
            families.add(catalog.NEW_CATEGORIES, labels, found.new_category_share)
        if found.out_of_range_share is not None:
            families.add(catalog.OUT_OF_RANGE, labels, found.out_of_range_share)


def _add_window_quality(families: FamilySet, labels: dict[str, str], window: WindowQuality, max_classes: int) -> None:
    families.add(catalog.QUALITY_WINDOW_ROWS, {**labels, "rows": "outputs"}, window.outputs)
    families.add(catalog.QUALITY_WINDOW_ROWS, {**labels, "rows": "labelled"}, window.labelled)
    if window.coverage is not None:
        families.add(catalog.LABEL_COVERAGE, labels, window.coverage)
    if window.quality is not None:
        _add_quality_figures(families, labels, window.quality, max_classes)
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
