"""One evaluation of one model: its windows read from the store, compared as a whole and
per segment, and the outcome kept for the API, the metrics and the report."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from fleetscope.drift import multivariate, quality
from fleetscope.drift.comparison import DriftResult, PreparedReference, compare
from fleetscope.drift.multivariate import MultivariateDrift, MultivariateError, Reconstruction
from fleetscope.drift.quality import ColumnQuality
from fleetscope.drift.samples import Sample
from fleetscope.drift.segments import segment_label
from fleetscope.drift.service.config import ModelConfig
from fleetscope.drift.service.outcomes import WindowQuality
from fleetscope.drift.service.store import RowRange


@dataclass
class Evaluation:
    model: str
    evaluated_at: float
    outcome: str  # success, no_data or error
    message: str = ""
    duration: float = 0.0
    current: RowRange = RowRange(0, 0)
    reference: RowRange | None = None  # rows of a rolling reference; None for a fixed one
    current_rows: int = 0
    reference_rows: int = 0
    result: DriftResult | None = None
    segments: dict[str, DriftResult] = field(default_factory=dict)
    segment_rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # label: (current, reference)
    skipped_segments: dict[str, str] = field(default_factory=dict)
    profiled: bool = False  # compared from profiles: windows are of intervals, not row numbers
    current_intervals: int = 0
    unusable_intervals: int = 0  # stored intervals of either window that could not be read or merged, left out
    quality: dict[str, ColumnQuality] = field(default_factory=dict)  # of the model as a whole
    samples: tuple[Sample | None, Sample | None] | None = None  # fed profiles: (reference, current) rows kept
    model_quality: WindowQuality | None = None  # of a model whose quality is measured (config: quality)
    series_dropped: int = 0  # of its series, those left off /metrics for limits.max_series
    # multivariate drift (config: multivariate), by segment label ("" the model as a whole), then by method; a method
    # that could not be computed on the data is left out with the reason, by segment label and method
    multivariate: dict[str, dict[str, MultivariateDrift]] = field(default_factory=dict)
    multivariate_skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    # a regression model's estimated errors (DLE): the range of the realized error before the window, by measure
    estimated_thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        document: dict[str, Any] = {
            "model": self.model, "outcome": self.outcome, "evaluated_at": self.evaluated_at,
            "duration_seconds": self.duration, "message": self.message,
            "mode": "profiles" if self.profiled else "rows",
            "current": ({"rows": self.current_rows, "intervals": self.current_intervals,
                         "unusable_intervals": self.unusable_intervals} if self.profiled else
                        {"rows": self.current_rows, "first_row": self.current.first, "end_row": self.current.end}),
            "reference": {"rows": self.reference_rows, "kind": "fixed" if self.reference is None else "rolling"},
        }
        if self.reference is not None and not self.profiled:
            document["reference"].update(first_row=self.reference.first, end_row=self.reference.end)
        if self.result is not None:
            document.update(_result_json(self.result))
            document["segments"] = {
                label: {"current_rows": self.segment_rows[label][0], "reference_rows": self.segment_rows[label][1],
                        **_result_json(result)}
                for label, result in self.segments.items()}
            document["skipped_segments"] = self.skipped_segments
            document["quality"] = {column: {key: value for key, value in asdict(found).items() if value is not None}
                                   for column, found in self.quality.items()}
        if self.multivariate or self.multivariate_skipped:
            document["multivariate"] = _multivariate_json(self.multivariate.get("", {}),
                                                          self.multivariate_skipped.get("", {}))
            for label in sorted((set(self.multivariate) | set(self.multivariate_skipped)) - {""}):
                if label in document.get("segments", {}):
                    document["segments"][label]["multivariate"] = _multivariate_json(
                        self.multivariate.get(label, {}), self.multivariate_skipped.get(label, {}))
        if self.model_quality is not None:
            document["model_quality"] = self.model_quality.to_json()
            if self.estimated_thresholds:
                document["model_quality"]["estimated_thresholds"] = {
                    measure: {"lower": lower, "upper": upper}
                    for measure, (lower, upper) in self.estimated_thresholds.items()}
        if self.series_dropped:
            document["series_dropped"] = {"series": self.series_dropped, "reason": "limits.max_series: the /metrics "
                                          "page is full; the largest segments were kept"}
        return document


def _result_json(result: DriftResult) -> dict:
    return {
        "drift_share": result.drift_share, "drifted_share": result.drifted_share,
        "dataset_drifted": result.dataset_drifted,
        "uncertain_columns": sum(not drift.decided for drift in result.columns.values()),
        "uncertain_columns_counted": getattr(result, "count_uncertain", True),
        "columns": {name: {"kind": drift.kind.name.lower(), "method": drift.method, "score": drift.score,
                           "threshold": drift.threshold, "drifted": drift.drifted, "certain": drift.decided,
                           "approximate": drift.approximate, "error_bound": drift.error_bound,
                           "current_rows": drift.current_rows, "reference_rows": drift.reference_rows}
                    for name, drift in result.columns.items()},
        "skipped_columns": result.skipped,
    }


def _multivariate_json(found: dict[str, MultivariateDrift], skipped: dict[str, str]) -> dict:
    return {"methods": {method: {"value": drift.value, "lower": drift.lower, "upper": drift.upper,
                                 "drifted": drift.drifted,
                                 # NaN for a window of one row: JSON has no NaN
                                 "sampling_error": (drift.sampling_error if drift.sampling_error is not None
                                                    and math.isfinite(drift.sampling_error) else None),
                                 "current_rows": drift.current_rows, "reference_rows": drift.reference_rows}
                        for method, drift in found.items()},
            "skipped_methods": skipped}


class PreparedCache:
    """A fixed reference as read from the store, and prepared per segment, kept until the
    reference changes (its version is when it was set)."""

    def __init__(self) -> None:
        self.version: object = None
        self.prepared: dict[str, PreparedReference] = {}
        self._frame: pd.DataFrame | None = None
        self.reconstructions: dict[str, Reconstruction | MultivariateError] = {}  # by segment label and columns

    def _at(self, version: object) -> None:
        if version != self.version:
            self.version, self.prepared, self._frame = version, {}, None
            self.reconstructions = {}

    def reconstruction(self, version: object, label: str, reference: pd.DataFrame,
                       kinds: dict) -> Reconstruction:
        """The PCA fitted on the reference (or the reason it cannot be), fitted once per reference version."""
        self._at(version)
        key = f"{label}\0{','.join(kinds)}"
        if key not in self.reconstructions:
            try:
                self.reconstructions[key] = Reconstruction(reference, kinds)
            except MultivariateError as error:
                self.reconstructions[key] = error
        found = self.reconstructions[key]
        if isinstance(found, MultivariateError):
            raise found
        return found

    def frame(self, version: object, load: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        self._at(version)
        if self._frame is None:
            self._frame = load()
        return self._frame

    def get(self, version: object, label: str, frame: pd.DataFrame, kinds: dict) -> PreparedReference:
        self._at(version)
        key = f"{label}\0{','.join(kinds)}"
        if key not in self.prepared:
            self.prepared[key] = PreparedReference(frame, kinds)
        return self.prepared[key]


def run(config: ModelConfig, current: pd.DataFrame, reference: pd.DataFrame, max_segments: int,
        cache: PreparedCache | None, version: object, evaluation: Evaluation) -> Evaluation:
    """Fills `evaluation` with the comparison of `current` against `reference`."""
    evaluation.current_rows, evaluation.reference_rows = len(current), len(reference)
    evaluation.result = _compare(config, current, reference, dict(config.columns), "", cache, version)
    evaluation.quality = quality.from_frames(reference, current, config.columns)
    if config.segments:
        kinds = {name: kind for name, kind in config.columns.items() if name not in config.segments}
        sizes = current.groupby(list(config.segments), dropna=False, sort=False).size()
        sizes = sizes.sort_values(ascending=False, kind="stable")
        current_groups = current.groupby(list(config.segments), dropna=False, sort=False)
        reference_groups = reference.groupby(list(config.segments), dropna=False, sort=False)
        for position, (values, _) in enumerate(sizes.items()):
            values = values if isinstance(values, tuple) else (values,)
            label = segment_label(config.segments, values)
            if position >= max_segments:
                evaluation.skipped_segments[label] = f"beyond limits.max_segments ({max_segments}), by rows"
                continue
            try:
                segment_reference = reference_groups.get_group(values)
            except KeyError:
                evaluation.skipped_segments[label] = "the reference has no rows for this segment"
                continue
            segment_current = current_groups.get_group(values)
            evaluation.segments[label] = _compare(config, segment_current, segment_reference, kinds, label, cache,
                                                  version)
            evaluation.segment_rows[label] = (len(segment_current), len(segment_reference))
            _multivariate(config, segment_current, segment_reference, label, cache, version, evaluation)
    if config.multivariate is not None:
        _multivariate(config, current, reference, "", cache, version, evaluation)
    evaluation.outcome = "success"
    return evaluation


def _compare(config: ModelConfig, current: pd.DataFrame, reference: pd.DataFrame, kinds: dict, label: str,
             cache: PreparedCache | None, version: object) -> DriftResult:
    # A column with no values on one side cannot be compared (Evidently raises); say so instead.
    present_current, present_reference = current.count(), reference.count()
    kinds, skipped = dict(kinds), {}
    for name in list(kinds):
        if present_current[name] == 0 or present_reference[name] == 0:
            side = "current window" if present_current[name] == 0 else "reference"
            skipped[name] = f"no values in the {side}"
            del kinds[name]
    prepared = cache.get(version, label, reference, kinds) if cache is not None else PreparedReference(reference,
                                                                                                      kinds)
    result = compare(prepared, current, methods=config.methods, thresholds=config.thresholds,
                     drift_share=config.drift_share)
    return DriftResult(result.columns, result.drift_share, {**result.skipped, **skipped})


def _multivariate(config: ModelConfig, current: pd.DataFrame, reference: pd.DataFrame, label: str,
                  cache: PreparedCache | None, version: object, evaluation: Evaluation) -> None:
    """Multivariate drift of the model as a whole (label "") or of a segment, whose own columns are left out."""
    if config.multivariate is None:
        return
    kinds = {name: config.columns[name] for name in config.multivariate.columns
             if not (label and name in config.segments)}
    found, skipped = {}, {}
    for method in config.multivariate.methods:
        try:
            if method == "reconstruction":
                fitted = (cache.reconstruction(version, label, reference, kinds) if cache is not None
                          else Reconstruction(reference, kinds))
                found[method] = fitted.compare(current)
            else:
                found[method] = multivariate.classifier_auc(reference, current, kinds,
                                                            seed=int(evaluation.evaluated_at) & 0xFFFFFFFF)
        except MultivariateError as error:
            skipped[method] = str(error)
    if found:
        evaluation.multivariate[label] = found
    if skipped:
        evaluation.multivariate_skipped[label] = skipped
