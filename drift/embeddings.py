"""Drift of an embedding column (fixed-length vectors), by each of Evidently 0.7.23's embedding drift methods.

Evidently keeps them in evidently/legacy/metrics/data_drift/embedding_drift_methods.py; EmbeddingsDriftMetric
(legacy/metrics/data_drift/embeddings_drift.py, calculate) picks `model(bootstrap=reference rows < 1000)` when no
method is given. Each function below names the class it reproduces. Evidently's randomness is seeded (a fixed
random_state, or np.random.seed(i) per bootstrap round); the same seeds are used here through
np.random.RandomState, which draws the same numbers, so every score is Evidently's up to the order of
floating-point sums (tests/drift/test_embeddings_parity.py states the tolerance of each).

A vector is a row of a float64 matrix: reference (m x d) and current (n x d), missing vectors already dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import distance as scipy_distance

from fleetscope.drift import stattests
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.prepared import PreparedColumn

# EmbeddingsDriftMetric.calculate: model(bootstrap=data.reference_data.shape[0] < 1000)
BOOTSTRAP_BELOW_ROWS = 1000
N_BOOTSTRAP = 100  # embedding_drift_methods.N_BOOTSTRAP
# The kernel matrix of mmd is summed a block of rows at a time, so that it never takes more than about this many
# bytes (Evidently builds all (m + n)^2 entries at once: 3.2 GB for two windows of 10,000 rows).
MMD_BLOCK_BYTES = 64 * 1024 ** 2


@dataclass(frozen=True)
class Scored:
    score: float
    threshold: float  # the one the decision was made against: the configured one, or a bootstrap percentile
    drifted: bool


@dataclass(frozen=True)
class EmbeddingMethod:
    name: str
    default_threshold: float
    run: Callable[[np.ndarray, np.ndarray, float], Scored]


REGISTRY: dict[str, EmbeddingMethod] = {}


def _register(name: str, default_threshold: float) -> Callable:
    def add(run: Callable[[np.ndarray, np.ndarray, float], Scored]) -> Callable:
        REGISTRY[name] = EmbeddingMethod(name, default_threshold, run)
        return run
    return add


def get(name: str) -> EmbeddingMethod:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"embedding drift method {name!r} is not one of {', '.join(sorted(REGISTRY))}") from None


def default_for(reference_rows: int) -> EmbeddingMethod:
    """Evidently's choice when none is given: the domain classifier, against random classifiers' ROC AUC where
    the reference has fewer than 1000 rows."""
    return REGISTRY["model_bootstrap" if reference_rows < BOOTSTRAP_BELOW_ROWS else "model"]


def score(method: str | None, reference: np.ndarray, current: np.ndarray,
          threshold: float | None) -> tuple[EmbeddingMethod, Scored]:
    """The named method (Evidently's default when None) run on the two matrices."""
    if reference.shape[1] != current.shape[1]:
        raise ValueError(f"the reference's vectors have {reference.shape[1]} components and the current window's "
                         f"{current.shape[1]}: an embedding column keeps one dimension")
    if len(reference) < 2 or len(current) < 2:
        raise ValueError("an embedding column needs at least 2 vectors on each side to be compared")
    chosen = get(method) if method else default_for(len(reference))
    return chosen, chosen.run(reference, current, chosen.default_threshold if threshold is None else threshold)


def matrix(column: pd.Series) -> np.ndarray:
    """The column's vectors (lists or arrays, None for a missing one) as a float64 matrix, missing rows dropped.
    ValueError where the vectors differ in length or hold a value that is not finite."""
    present = [value for value in column.to_numpy() if value is not None and not _is_missing(value)]
    if not present:
        return np.empty((0, 0))
    lengths = {len(value) for value in present}
    if len(lengths) > 1:
        raise ValueError(f"vectors of {len(lengths)} different lengths ({', '.join(map(str, sorted(lengths)[:3]))}"
                         "...): an embedding column keeps one dimension")
    values = np.stack([np.asarray(value, dtype=np.float64) for value in present])
    if not np.isfinite(values).all():
        raise ValueError("a vector holds NaN or an infinity")
    return values


def _is_missing(value: object) -> bool:
    return isinstance(value, float) and value != value


# -- model: ModelDriftMethod.__call__ --------------------------------------------------------------------------

def _domain_classifier_auc(reference: np.ndarray, current: np.ndarray) -> tuple[float, np.ndarray]:
    """ModelDriftMethod: an SGD logistic regression told reference (1) from current (0) on a random half of both,
    its ROC AUC on the other half; and that half's labels. The split is taken over row numbers, as
    train_test_split(..., test_size=0.5, random_state=42, shuffle=True) takes it over the stacked frame, so the
    rows are copied once instead of stacked and then split."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    m = len(reference)
    target = np.concatenate((np.ones(m, dtype=np.int64), np.zeros(len(current), dtype=np.int64)))
    train, test = train_test_split(np.arange(len(target)), test_size=0.5, random_state=42, shuffle=True)
    classifier = SGDClassifier(loss="log_loss", random_state=42)
    classifier.fit(_rows(reference, current, train), target[train])
    probabilities = classifier.predict_proba(_rows(reference, current, test))[:, 1]
    return float(roc_auc_score(target[test], probabilities)), target[test]


def _rows(reference: np.ndarray, current: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """np.vstack((reference, current))[indices] without building the stack."""
    rows = np.empty((len(indices), reference.shape[1]), dtype=np.float64)
    from_reference = indices < len(reference)
    rows[from_reference] = reference[indices[from_reference]]
    rows[~from_reference] = current[indices[~from_reference] - len(reference)]
    return rows


@_register("model", 0.55)
def model(reference: np.ndarray, current: np.ndarray, threshold: float) -> Scored:
    """ModelDriftMethod(bootstrap=None): drifted where the ROC AUC exceeds the threshold."""
    auc, _ = _domain_classifier_auc(reference, current)
    return Scored(auc, threshold, auc > threshold)


@_register("model_bootstrap", 0.95)
def model_bootstrap(reference: np.ndarray, current: np.ndarray, quantile_probability: float) -> Scored:
    """ModelDriftMethod(bootstrap=True): drifted where the ROC AUC exceeds the quantile_probability percentile of
    100 random classifiers' (calc_roc_auc_random, np.random.seed(i) for i in range(100)) on the same labels.
    Its threshold setting is that quantile (0.95 by default); the decision's threshold is the percentile."""
    from sklearn.metrics import roc_auc_score

    auc, labels = _domain_classifier_auc(reference, current)
    random_aucs = [roc_auc_score(labels, np.random.RandomState(seed).rand(len(labels))) for seed in range(100)]
    percentile = float(np.percentile(random_aucs, 100 * quantile_probability))
    return Scored(auc, percentile, auc > percentile)


# -- ratio: RatioDriftMethod.__call__ --------------------------------------------------------------------------

COMPONENT_STATTEST = "wasserstein"  # RatioDriftMethod.component_stattest
COMPONENT_THRESHOLD = 0.1  # RatioDriftMethod.component_stattest_threshold


@_register("ratio", 0.2)
def ratio(reference: np.ndarray, current: np.ndarray, threshold: float) -> Scored:
    """RatioDriftMethod: the share of components drifted by the normed Wasserstein distance (>= 0.1), each
    component compared as a numerical column; drifted where the share exceeds the threshold."""
    test = stattests.get(COMPONENT_STATTEST, ColumnKind.NUMERICAL)
    drifted = 0
    for component in range(reference.shape[1]):
        score = test.score(PreparedColumn(pd.Series(reference[:, component]), ColumnKind.NUMERICAL),
                           PreparedColumn(pd.Series(current[:, component]), ColumnKind.NUMERICAL))
        drifted += test.drifted(score, COMPONENT_THRESHOLD)
    share = drifted / reference.shape[1]
    return Scored(share, threshold, share > threshold)


# -- distance: DistanceDriftMethod.__call__ --------------------------------------------------------------------

DISTANCES = {"euclidean": scipy_distance.euclidean, "cosine": scipy_distance.cosine,
             "cityblock": scipy_distance.cityblock, "chebyshev": scipy_distance.chebyshev}


def _distance_method(metric: str) -> Callable[[np.ndarray, np.ndarray, float], Scored]:
    def run(reference: np.ndarray, current: np.ndarray, threshold: float) -> Scored:
        """DistanceDriftMethod(dist=metric): the distance between the two mean vectors; drifted above the
        threshold."""
        found = float(DISTANCES[metric](reference.mean(axis=0), current.mean(axis=0)))
        return Scored(found, threshold, found > threshold)
    return run


_register("distance", 0.2)(_distance_method("euclidean"))
for _metric in DISTANCES:
    _register(f"distance_{_metric}", 0.2)(_distance_method(_metric))


# -- mmd: MMDDriftMethod.__call__ ------------------------------------------------------------------------------

MMD_SAMPLE = 1000  # MMDDriftMethod: the kernel's width is the median distance between 1000 rows of each


@_register("mmd", 0.015)
def mmd(reference: np.ndarray, current: np.ndarray, threshold: float) -> Scored:
    """MMDDriftMethod(bootstrap=None): the unbiased squared maximum mean discrepancy (MMD2u) under an RBF kernel
    whose gamma is 1 / the squared median distance between up to 1000 sampled rows of each side (sampled as
    DataFrame.sample(random_state=0) samples); the score is max(MMD2u, 0), drifted where MMD2u exceeds the
    threshold. The kernel is summed in blocks of rows (MMD_BLOCK_BYTES), above its diagonal, rather than built
    whole."""
    from sklearn.metrics import pairwise_distances

    m, n = len(reference), len(current)
    distances = pairwise_distances(reference[_sample(m)], current[_sample(n)], metric="euclidean")
    gamma = 1.0 / float(np.median(distances)) ** 2
    within_reference, within_current, across = _kernel_sums(reference, current, gamma)
    mmd2u = (within_reference / (m * (m - 1.0)) + within_current / (n * (n - 1.0)) - 2.0 / (m * n) * across)
    return Scored(max(mmd2u, 0.0), threshold, mmd2u > threshold)


def _sample(rows: int) -> np.ndarray:
    """The rows DataFrame.sample(min(rows, 1000), random_state=0) picks (pandas.core.sample.sample)."""
    return np.random.RandomState(0).choice(rows, size=min(rows, MMD_SAMPLE), replace=False)


def _kernel_sums(reference: np.ndarray, current: np.ndarray, gamma: float) -> tuple[float, float, float]:
    """MMD2u's three sums of the RBF kernel over np.vstack((reference, current)): within the reference and within
    the current window, each without its diagonal, and across the two. The kernel is symmetric: each block of rows
    is taken against the rows from its own on, and the pairs above the diagonal count for both orders, which
    halves the work of Evidently's whole matrix."""
    from sklearn.metrics.pairwise import rbf_kernel

    m = len(reference)
    stacked = np.vstack((reference, current))
    total = len(stacked)
    block = max(1, MMD_BLOCK_BYTES // (8 * total))
    within_reference = within_current = across = 0.0
    for start in range(0, total, block):
        rows = len(stacked[start:start + block])
        kernel = rbf_kernel(stacked[start:start + rows], stacked[start:], gamma=gamma)
        below_or_on_diagonal = np.arange(rows)[:, None] >= np.arange(rows)[None, :]
        kernel[:, :rows][below_or_on_diagonal] = 0.0
        on_reference = min(max(m - start, 0), rows)  # this block's rows that are the reference's
        split = max(m - start, 0)  # the first column that is the current window's
        within_reference += 2.0 * float(kernel[:on_reference, :split].sum())
        across += float(kernel[:on_reference, split:].sum())
        within_current += 2.0 * float(kernel[on_reference:, split:].sum())
    return within_reference, within_current, across
