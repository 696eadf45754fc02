"""Realized model quality: predictions against the ground truth that arrived for them.

Each measure is computed as scikit-learn 1.9 computes it (and so as Evidently's classification and regression
presets report it), from NumPy arrays (and SciPy's ranks), so that the service needs scikit-learn only to
estimate (CBPE's isotonic calibration). Undefined values follow scikit-learn's `zero_division=0`: a class never
predicted has precision 0. ROC AUC and log loss need the probability of the positive class, so they are given for binary
classifiers whose confidence is that probability; ROC AUC also needs both classes among the actual values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION = ("mae", "rmse", "mape", "r2", "mean_error")
MEASURES = CLASSIFICATION + REGRESSION


@dataclass
class Quality:
    """One window's realized quality. `overall` holds accuracy, the macro averages (precision, recall, f1 over
    every class seen among the actual and predicted values) and the probability measures, or the regression
    measures; `per_class` precision, recall and f1 by class; `confusion` the rows by (actual, predicted)."""
    rows: int
    overall: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    classes: int = 0


def classification(actual: np.ndarray, predicted: np.ndarray, positive: str | None = None,
                   positive_probability: np.ndarray | None = None) -> Quality:
    """actual and predicted: class names (str). positive and positive_probability: for a binary classifier, the
    positive class and each row's probability of it (NaN where the row has none)."""
    classes, codes = np.unique(np.concatenate([actual, predicted]).astype(str), return_inverse=True)
    count = len(classes)
    actual_codes, predicted_codes = codes[:len(actual)], codes[len(actual):]
    confusion = np.bincount(actual_codes * count + predicted_codes, minlength=count * count).reshape(count, count)
    true_positive = np.diag(confusion).astype(float)
    predicted_as = confusion.sum(axis=0).astype(float)
    actually = confusion.sum(axis=1).astype(float)
    precision = _ratio(true_positive, predicted_as)
    recall = _ratio(true_positive, actually)
    f1 = _ratio(2 * true_positive, predicted_as + actually)
    quality = Quality(rows=len(actual), classes=count)
    quality.overall = {"accuracy": float(true_positive.sum() / len(actual)), "precision": float(precision.mean()),
                       "recall": float(recall.mean()), "f1": float(f1.mean())}
    quality.per_class = {str(name): {"precision": float(precision[index]), "recall": float(recall[index]),
                                     "f1": float(f1[index])} for index, name in enumerate(classes)}
    quality.confusion = {(str(classes[row]), str(classes[column])): int(confusion[row, column])
                         for row, column in zip(*np.nonzero(confusion), strict=True)}
    if positive is not None and positive_probability is not None:
        probability = np.asarray(positive_probability, dtype=float)
        known = ~np.isnan(probability)
        if known.all():
            is_positive = (np.asarray(actual).astype(str) == positive).astype(float)
            quality.overall["log_loss"] = log_loss(is_positive, probability)
            if 0 < is_positive.sum() < len(is_positive):
                quality.overall["roc_auc"] = roc_auc(is_positive, probability)
    return quality


def regression(actual: np.ndarray, predicted: np.ndarray) -> Quality:
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    error = predicted - actual
    residual = float(np.sum(error ** 2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    # scikit-learn's r2_score(force_finite=True): a constant actual scores 1 when predicted exactly, else 0
    r2 = (1.0 if residual == 0 else 0.0) if total == 0 else 1.0 - residual / total
    epsilon = np.finfo(np.float64).eps
    return Quality(rows=len(actual), overall={
        "mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
        "mape": float(np.mean(np.abs(error) / np.maximum(np.abs(actual), epsilon))), "r2": r2,
        "mean_error": float(np.mean(error))})  # Evidently's: prediction minus actual


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve: the Mann-Whitney statistic, ties counted half, as roc_auc_score gives."""
    return float(roc_auc_of_rows(np.asarray(is_positive, dtype=float)[np.newaxis, :], score)[0])


def roc_auc_of_rows(is_positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """roc_auc of each row of is_positive (a labelling of the same scored rows) at once, from the scores' ranks
    computed once; NaN for a row without both classes."""
    ranks = stats.rankdata(score)  # "average": a tie shares the mean of its ranks
    positives = is_positive.sum(axis=1)
    negatives = is_positive.shape[1] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        area = (is_positive @ ranks - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), area, np.nan)


def log_loss(is_positive: np.ndarray, probability: np.ndarray) -> float:
    """scikit-learn's log_loss of a binary classifier: probabilities clipped to [eps, 1 - eps]."""
    epsilon = np.finfo(np.float64).eps
    clipped = np.clip(probability, epsilon, 1 - epsilon)
    return float(-np.mean(is_positive * np.log(clipped) + (1 - is_positive) * np.log(1 - clipped)))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
