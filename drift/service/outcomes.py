"""Ground truth in, model quality out: the request ids of outputs, label batches, and a window's realized and
estimated quality (fleetscope.drift.model_quality, fleetscope.drift.performance_estimation)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from fleetscope.catalog import cumulative_buckets
from fleetscope.drift import catalog, model_quality, performance_estimation
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.model_quality import Quality
from fleetscope.drift.performance_estimation import Calibration, Estimate
from fleetscope.drift.segments import segment_label
from fleetscope.drift.service.config import ModelConfig, QualityConfig
from fleetscope.drift.service.decode import BadBatch, BodyLimits, conform, conform_apart, read_table

LABEL_DELAY_BUCKETS = catalog.LABEL_DELAY.buckets
LABEL_OUTCOMES = ("joined", "prejoined", "unknown_request", "beyond_horizon", "duplicate")


class DelayHistogram:
    """Label delays (seconds from an output to its label) in LABEL_DELAY_BUCKETS, as Prometheus reads them."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LABEL_DELAY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, delays: list[float]) -> None:
        if not delays:
            return
        values = np.maximum(np.asarray(delays, dtype=float), 0.0)
        for index, count in enumerate(np.bincount(np.searchsorted(LABEL_DELAY_BUCKETS, values),
                                                  minlength=len(self.counts))):
            self.counts[index] += int(count)
        self.total += float(values.sum())

    def buckets(self) -> list[tuple[float, int]]:
        return cumulative_buckets((*LABEL_DELAY_BUCKETS, math.inf), self.counts)


ACTUAL = "actual"  # a label batch's column of actual values
TIME = "output_time"  # a pre-joined batch's optional column: when the output was made (Unix seconds)


def conform_outputs(config: ModelConfig, table: Any, limits: BodyLimits,
                    columns: Mapping[str, ColumnKind] | None = None) -> tuple[pa.Table, list[str | None] | None]:
    """Outputs as sent, conformed to the model's columns (or `columns`: the model's, with what its reference sets)
    in one pass with the request id column split off: the table, and the ids (text, None where a row has none)
    when the batch holds that column."""
    columns = config.columns if columns is None else columns
    name = config.quality.request_id if config.quality is not None else None
    if name is None or name not in table.column_names:
        return conform(table, columns, limits), None
    alone = f"the batch holds only request ids ({name!r}); send the outputs with them"
    conformed, ids = conform_apart(table, columns, name, limits, alone)
    return conformed, ids.to_pylist()


def output_rows(config: ModelConfig, table: pa.Table, ids: list[str | None] | None) -> list[tuple]:
    """(request id, segment, prediction, confidence, position in the batch) of each stored output that has a
    request id."""
    quality = config.quality
    assert quality is not None
    if ids is None or not any(ids):
        return []
    segments = _segments(config, table)
    predictions = table[quality.prediction].to_pylist()
    confidences = table[quality.confidence].to_pylist() if quality.confidence else [None] * table.num_rows
    return [(request, segment, prediction, confidence, position) for position, (request, segment, prediction,
            confidence) in enumerate(zip(ids, segments, predictions, confidences, strict=True)) if request is not None]


def read_labels(config: ModelConfig, body: bytes, content_type: str, limits: BodyLimits) -> tuple[str, list[tuple]]:
    """A label batch: ("joined", [(request id, actual)]) when it names request ids, else ("prejoined", [(output
    time or None, segment, prediction, confidence, actual)]). BadBatch naming the row and column of a bad value."""
    quality = config.quality
    if quality is None:
        raise BadBatch(409, "no_quality", f"model {config.name!r} has no quality section in the config: name its "
                                          "task, prediction and request_id columns there to take labels")
    table = read_table(body, content_type, limits)
    actual_kind = ColumnKind.CATEGORICAL if quality.classification else ColumnKind.NUMERICAL
    names = table.column_names
    if quality.request_id is not None and quality.request_id in names:
        schema = {quality.request_id: ColumnKind.CATEGORICAL, ACTUAL: actual_kind}
        checked = conform(table, schema, limits)
        _require_values(checked, schema)
        return "joined", list(zip(checked[quality.request_id].to_pylist(), checked[ACTUAL].to_pylist(), strict=True))
    schema = {quality.prediction: config.columns[quality.prediction], ACTUAL: actual_kind,
              **{segment: ColumnKind.CATEGORICAL for segment in config.segments}}
    if quality.confidence:
        schema[quality.confidence] = ColumnKind.NUMERICAL
    if TIME in names:
        schema[TIME] = ColumnKind.NUMERICAL
    if quality.request_id is not None and quality.request_id not in names and quality.prediction not in names:
        raise BadBatch(400, "schema", f"a label batch holds {quality.request_id!r} and {ACTUAL!r} (joined to stored "
                                      f"outputs), or {', '.join(s for s in schema if s != TIME)} (pre-joined)")
    checked = conform(table, schema, limits)
    _require_values(checked, {quality.prediction: None, ACTUAL: None})
    segments = _segments(config, checked)
    times = checked[TIME].to_pylist() if TIME in schema else [None] * checked.num_rows
    confidences = checked[quality.confidence].to_pylist() if quality.confidence else [None] * checked.num_rows
    return "prejoined", list(zip(times, segments, checked[quality.prediction].to_pylist(), confidences,
                                 checked[ACTUAL].to_pylist(), strict=True))


@dataclass
class WindowQuality:
    """A model's quality over the outputs of one window."""
    since: float
    until: float
    outputs: int = 0  # outputs that arrived in the window (with a request id, or pre-joined)
    labelled: int = 0
    quality: Quality | None = None
    segments: dict[str, tuple[int, int, Quality | None]] = field(default_factory=dict)  # (outputs, labelled, ...)
    estimated: dict[str, Estimate] = field(default_factory=dict)
    calibration_rows: int = 0
    message: str = ""

    @property
    def coverage(self) -> float | None:
        return self.labelled / self.outputs if self.outputs else None

    def to_json(self) -> dict:
        document: dict[str, Any] = {"since": self.since, "until": self.until, "outputs": self.outputs,
                                    "labelled": self.labelled, "coverage": self.coverage, "message": self.message}
        if self.quality is not None:
            document["realized"] = _quality_json(self.quality)
        document["segments"] = {label: {"outputs": outputs, "labelled": labelled,
                                        **({"realized": _quality_json(found)} if found else {})}
                                for label, (outputs, labelled, found) in self.segments.items()}
        if self.estimated:
            document["estimated"] = {name: {"value": estimate.value, "lower": estimate.lower, "upper": estimate.upper}
                                     for name, estimate in self.estimated.items()}
            document["calibration_rows"] = self.calibration_rows
        return document


def evaluate(store, config: ModelConfig, now: float, max_segments: int) -> WindowQuality:
    """Realized quality of the window's labelled outputs, per segment too, and CBPE's estimate of the window."""
    quality = config.quality
    assert quality is not None
    window = WindowQuality(now - quality.window, now)
    found = store.outcomes_between(config.name, window.since, window.until)
    window.outputs = len(found)
    if not found:
        window.message = "no outputs in the quality window"
        return window
    segment, predicted, confidence, actual = (np.array(column, dtype=object) for column in zip(*found, strict=True))
    labelled = np.array([value is not None for value in actual])
    window.labelled = int(labelled.sum())
    # an output without a prediction (null) has nothing to judge: counted as labelled, left out of the figures
    labelled &= np.array([value is not None for value in predicted])
    window.quality = _realized(quality, predicted[labelled], confidence[labelled], actual[labelled])
    if config.segments:
        labels, sizes = np.unique(segment.astype(str), return_counts=True)
        for label in labels[np.argsort(-sizes, kind="stable")][:max_segments]:
            rows = segment == label
            chosen = rows & labelled
            window.segments[str(label)] = (int(rows.sum()), int(chosen.sum()), _realized(
                quality, predicted[chosen], confidence[chosen], actual[chosen]))
    if quality.confidence:
        _estimate(store, config, predicted, confidence, window)
    if window.labelled == 0:
        window.message = "no labels yet for the outputs of the quality window"
    return window


def _realized(quality: QualityConfig, predicted: np.ndarray, confidence: np.ndarray,
              actual: np.ndarray) -> Quality | None:
    if len(actual) == 0:
        return None
    if not quality.classification:
        return model_quality.regression(actual.astype(float), predicted.astype(float))
    probability = _floats(confidence) if quality.confidence_of == "positive" else None
    return model_quality.classification(actual.astype(str), predicted.astype(str), quality.positive, probability)


def _estimate(store, config: ModelConfig, predicted: np.ndarray, confidence: np.ndarray,
              window: WindowQuality) -> None:
    quality = config.quality
    assert quality is not None and quality.confidence is not None
    scored = np.array([value is not None for value in confidence]) & np.array([value is not None
                                                                                for value in predicted])
    reference = [row for row in store.labelled_before(config.name, window.since, quality.calibration_rows)
                 if row[0] is not None and row[1] is not None]
    window.calibration_rows = len(reference)
    if len(reference) < performance_estimation.MIN_CALIBRATION_ROWS:
        window.message = (f"{len(reference)} labelled outputs before the window to calibrate on; estimates need "
                          f"{performance_estimation.MIN_CALIBRATION_ROWS}")
        return
    if not scored.any():
        window.message = "no output of the quality window has a prediction and a confidence to estimate from"
        return
    reference_predicted, reference_score, reference_actual = (np.array(column, dtype=object)
                                                              for column in zip(*reference, strict=True))
    score = confidence[scored].astype(float)
    seed = int(window.until) & 0xFFFFFFFF  # the same window gives the same band
    if quality.confidence_of == "positive":
        calibration = Calibration(reference_score.astype(float), reference_actual.astype(str) == quality.positive)
        window.estimated = performance_estimation.estimate_binary(
            predicted[scored].astype(str) == quality.positive, score, calibration, seed)
    else:
        calibration = Calibration(reference_score.astype(float),
                                  reference_actual.astype(str) == reference_predicted.astype(str))
        window.estimated = {"accuracy": performance_estimation.estimate_accuracy(score, calibration, seed)}


def _floats(values: np.ndarray) -> np.ndarray:
    """Numbers as float64, NaN where there is none (a null confidence)."""
    return np.array([np.nan if value is None else value for value in values], dtype=float)


def _segments(config: ModelConfig, table: pa.Table) -> list[str]:
    if not config.segments:
        return [""] * table.num_rows
    columns = [table[name].to_pylist() for name in config.segments]
    return [segment_label(config.segments, values) for values in zip(*columns, strict=True)]


def _require_values(table: pa.Table, schema: dict) -> None:
    for name in schema:
        column = table[name]
        if column.null_count:
            index = column.to_pylist().index(None)
            raise BadBatch(400, "missing_value", f"row {index}, column {name!r}: a label needs a value here",
                           table.num_rows)


def _quality_json(quality: Quality) -> dict:
    document: dict[str, Any] = {"rows": quality.rows, **quality.overall}
    if quality.per_class:
        document["classes"] = quality.per_class
        document["confusion"] = [{"actual": actual, "predicted": predicted, "rows": rows}
                                 for (actual, predicted), rows in sorted(quality.confusion.items())]
    return document
