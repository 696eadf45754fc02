"""Classifier quality estimated before labels arrive: confidence-based performance estimation (CBPE).

As NannyML 0.13.1 does it (nannyml/performance_estimation/confidence_based/metrics.py and
nannyml/calibration.py): the model's scores are calibrated on labelled rows (isotonic regression, used only where
cross-validation shows it lowers the expected calibration error), and a window's expected confusion matrix is
read from the calibrated probabilities; each estimate is the measure of that matrix.

Two kinds of confidence are taken:
- a binary classifier's probability of its positive class: accuracy, precision, recall, F1 and ROC AUC;
- any classifier's confidence in the class it predicted (the iris example's): accuracy, the calibrated
  probability of being right averaged over the window (CBPE's accuracy on the "prediction is right" problem).

The band is +/- 3 standard deviations (NannyML's width, 3 sampling errors) of the measure over labels drawn from
the calibrated probabilities, by simulation: what the realized value will scatter over once the window's labels
are in, if the calibration holds. Past SIMULATED_ROWS rows the draws are of a uniform sample of the window, and
the deviation is scaled to the window's size by sqrt(sample / rows), as a mean's is. It does not cover a
calibration that no longer holds (concept drift); realized quality, once labels arrive, is what checks that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fleetscope.drift.model_quality import roc_auc, roc_auc_of_rows

BAND_DEVIATIONS = 3.0  # nannyml.sampling_error.SAMPLING_ERROR_RANGE
SIMULATIONS = 200
SIMULATED_ROWS = 5_000  # rows a simulation draws labels for: 200 x 5,000 draws whatever the window's size
MIN_CALIBRATION_ROWS = 20  # nannyml's ECE needs 2 bins of at least 2 rows in each of 10 test splits of 10%


@dataclass(frozen=True)
class Estimate:
    value: float
    lower: float
    upper: float


class Calibration:
    """Scores to probabilities, fitted on labelled rows (score, 1 where the event happened)."""

    def __init__(self, scores: np.ndarray, happened: np.ndarray) -> None:
        scores, happened = np.asarray(scores, dtype=float), np.asarray(happened, dtype=int)
        self._regressor = None
        if _needs_calibration(happened, scores):
            self._regressor = _isotonic().fit(scores, happened)

    @property
    def calibrated(self) -> bool:
        """Whether the scores are mapped (False: they were calibrated well enough already)."""
        return self._regressor is not None

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        return scores if self._regressor is None else self._regressor.predict(scores)


def estimate_binary(predicted_positive: np.ndarray, score: np.ndarray, calibration: Calibration,
                    seed: int = 0) -> dict[str, Estimate]:
    """Accuracy, precision, recall, F1 and ROC AUC of a binary classifier on a window: predicted_positive is 1
    where it predicted the positive class, score its (uncalibrated) probability of that class."""
    predicted = np.asarray(predicted_positive, dtype=float)
    score = np.asarray(score, dtype=float)
    probability = calibration(score)
    by_score = np.argsort(score, kind="mergesort")[::-1]
    estimated = {name: float(values[0]) for name, values in _confusion_measures(probability[np.newaxis, :],
                                                                                predicted).items()}
    estimated["roc_auc"] = _expected_auc(probability[by_score])
    rows, scale = _simulated_rows(len(score), seed)
    drawn = _draws(probability[rows], seed)
    simulated = {**_confusion_measures(drawn, predicted[rows]), "roc_auc": roc_auc_of_rows(drawn, score[rows])}
    return {name: _banded(value, simulated[name], scale) for name, value in estimated.items()
            if not np.isnan(value)}


def _confusion_measures(positive: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 of each row of `positive` (draws by rows: 1 where a row's class is
    positive, or its probability, which gives the expected confusion matrix) against the predictions."""
    true_positive = positive @ predicted
    false_positive = predicted.sum() - true_positive
    false_negative = positive.sum(axis=1) - true_positive
    true_negative = positive.shape[1] - true_positive - false_positive - false_negative
    return {"accuracy": (true_positive + true_negative) / positive.shape[1],
            "precision": _safe(true_positive, true_positive + false_positive),
            "recall": _safe(true_positive, true_positive + false_negative),
            "f1": _safe(true_positive, true_positive + 0.5 * (false_positive + false_negative))}


def estimate_accuracy(confidence: np.ndarray, calibration: Calibration, seed: int = 0) -> Estimate:
    """Accuracy of any classifier from its confidence in what it predicted, calibrated on whether it was right."""
    probability = calibration(np.asarray(confidence, dtype=float))
    rows, scale = _simulated_rows(len(probability), seed)
    return _banded(float(probability.mean()), _draws(probability[rows], seed).mean(axis=1), scale)


def _simulated_rows(count: int, seed: int) -> tuple[np.ndarray, float]:
    """The rows the band's simulation draws for, and the factor that scales its deviation to all rows."""
    if count <= SIMULATED_ROWS:
        return np.arange(count), 1.0
    return np.random.default_rng(seed).choice(count, SIMULATED_ROWS, replace=False), math.sqrt(SIMULATED_ROWS / count)


def _expected_auc(probability: np.ndarray) -> float:
    """NannyML's estimate_roc_auc: the area under the ROC curve of expected true and false positives, from the
    calibrated probabilities ordered by score, highest first (rounded to 5 places, as NannyML rounds them)."""
    expected = np.cumsum(probability)
    true_positive = np.round(np.concatenate(([0.0], expected)), 5)
    false_positive = np.round(np.concatenate(([0.0], np.arange(1, len(probability) + 1) - expected)), 5)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.trapezoid(true_positive / true_positive[-1], false_positive / false_positive[-1]))


def _draws(probability: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((SIMULATIONS, len(probability))) < probability).astype(float)


def _banded(value: float, simulated: np.ndarray, scale: float = 1.0) -> Estimate:
    spread = BAND_DEVIATIONS * scale * float(np.nanstd(simulated)) if np.isfinite(simulated).any() else 0.0
    return Estimate(value, max(0.0, value - spread), min(1.0, value + spread))


def _safe(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float), where=denominator != 0)


def _isotonic():
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(out_of_bounds="clip", increasing=True)


def _needs_calibration(happened: np.ndarray, scores: np.ndarray, bins: int = 10, splits: int = 10) -> bool:
    """nannyml.calibration.needs_calibration: calibrate where, over stratified 90/10 splits, isotonic regression
    fitted on the 90% lowers the expected calibration error on the 10%."""
    from sklearn.model_selection import StratifiedShuffleSplit

    if len(np.unique(happened)) == 1 or roc_auc(happened, scores) > 0.999:
        return False
    tests, before, after = [], [], []
    for train, test in StratifiedShuffleSplit(n_splits=splits, test_size=0.1, random_state=42).split(scores,
                                                                                                       happened):
        fitted = _isotonic().fit(scores[train], happened[train])
        tests.append(happened[test])
        before.append(scores[test])
        after.append(fitted.predict(scores[test]))
    truth = np.concatenate(tests)
    edges = _bin_edges(len(truth), bins)
    return _calibration_error(truth, np.concatenate(before), edges) > _calibration_error(truth, np.concatenate(after),
                                                                                         edges)


def _bin_edges(length: int, bins: int) -> list[tuple[int, int]]:
    if length <= 2 * bins:
        bins = max(2, length // 2)
    width = length // bins
    edges = np.asarray(range(0, length + 1, width))
    edges[-1] = length
    return list(zip(edges[:-1], edges[1:], strict=True))


def _calibration_error(truth: np.ndarray, scores: np.ndarray, edges: list[tuple[int, int]]) -> float:
    order = scores.argsort()
    scores, truth = scores[order], truth[order]
    return float(sum((right - left) / len(scores) * abs(scores[left:right].mean() - truth[left:right].mean())
                     for left, right in edges))
