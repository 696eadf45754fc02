"""Evidently's statistical tests, one function each, in a registry by Evidently's name.

Each test takes the prepared reference and current columns and returns a score; whether
that score means drift is the test's own comparison with the threshold, as in
evidently.legacy.calculations.stattests (where the formulas and defaults come from). The
tests that DataDriftPreset picks by default (ks, z, chisquare, wasserstein, jensenshannon)
work from the prepared, sorted and counted columns, so they never sort or count the
reference again.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial import distance

from fleetscope.drift import cvm_exact
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.prepared import PreparedColumn, distinct_union_count
from fleetscope.drift.wasserstein import wasserstein_distance

NUM, CAT = ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL
# Evidently bins numerical columns with more distinct reference values than this by
# Sturges' rule, and treats the rest as categories (stattests.utils.get_binned_data).
BINNING_UNIQUE_LIMIT = 20

Score = Callable[[PreparedColumn, PreparedColumn], float]


@dataclass(frozen=True)
class StatTest:
    name: str
    kinds: tuple[ColumnKind, ...]
    default_threshold: float
    compare: Callable[[float, float], bool]  # (score, threshold) -> drifted
    score: Score

    def drifted(self, score: float, threshold: float) -> bool:
        return bool(self.compare(score, threshold))


REGISTRY: dict[str, StatTest] = {}


def register(name: str, kinds: tuple[ColumnKind, ...], default_threshold: float,
             compare: Callable[[float, float], bool]) -> Callable[[Score], Score]:
    def add(score: Score) -> Score:
        REGISTRY[name] = StatTest(name, kinds, default_threshold, compare, score)
        return score
    return add


def get(name: str, kind: ColumnKind) -> StatTest:
    test = REGISTRY.get(name)
    if test is None:
        raise ValueError(f"unknown drift method {name!r}; known methods: {', '.join(sorted(REGISTRY))}")
    if kind not in test.kinds:
        raise ValueError(f"drift method {name!r} does not apply to {kind.name.lower()} columns")
    return test


def default_for(reference: PreparedColumn, current: PreparedColumn) -> StatTest:
    """The test Evidently 0.7 chooses (stattests.registry._get_default_stattest)."""
    distinct = distinct_union_count(reference, current, limit=5)
    if reference.size <= 1000:
        if reference.kind is NUM and distinct > 5:
            return REGISTRY["ks"]
        return REGISTRY["chisquare"] if distinct > 2 else REGISTRY["z"]
    if reference.kind is NUM and distinct > 5:
        return REGISTRY["wasserstein"]
    return REGISTRY["jensenshannon"]


# -- helpers shared by several tests ---------------------------------------------------

def _union_keys(reference: PreparedColumn, current: PreparedColumn) -> list:
    """The distinct values of both sides in Evidently's order (get_unique_not_nan_values_list_from_series, in
    evidently/legacy/calculations/stattests/utils.py): a set's order follows the order its values went in, and the
    tests' sums add in this order."""
    return list(set(reference.first_seen) | set(current.first_seen))


def _counts(column: PreparedColumn, keys: list) -> np.ndarray:
    counts = column.counts
    return np.array([counts.get(key, 0) for key in keys], dtype=np.float64)


def sturges_edges(reference: PreparedColumn, current: PreparedColumn) -> np.ndarray:
    """np.histogram_bin_edges(concat(reference, current), "sturges"), without the concat."""
    low = min(reference.low, current.low)
    high = max(reference.high, current.high)
    width = (high - low) / (math.log2(reference.size + current.size) + 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    bins = int(math.ceil((high - low) / width)) if width else 1
    return np.linspace(low, high, bins + 1, endpoint=True)


def binned_percents(reference: PreparedColumn, current: PreparedColumn,
                    fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shares per bin or per category (stattests.utils.get_binned_data)."""
    if reference.kind is NUM and reference.unique_count > BINNING_UNIQUE_LIMIT:
        edges = sturges_edges(reference, current)
        reference_shares = reference.histogram(edges) / reference.size
        current_shares = current.histogram(edges) / current.size
    else:
        keys = _union_keys(reference, current)
        reference_shares = _counts(reference, keys) / reference.size
        current_shares = _counts(current, keys) / current.size
    if fill_zeroes:
        for shares in (reference_shares, current_shares):
            smallest = shares[shares != 0].min()
            np.place(shares, shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return reference_shares, current_shares


# -- the tests --------------------------------------------------------------------------

@register("ks", (NUM,), 0.05, operator.le)
def ks(reference: PreparedColumn, current: PreparedColumn) -> float:
    return float(stats.ks_2samp(reference.sorted, current.sorted)[1])


@register("z", (CAT,), 0.05, operator.lt)
def z(reference: PreparedColumn, current: PreparedColumn) -> float:
    if reference.unique_count == 1 and current.unique_count == 1 and reference.uniques == current.uniques:
        return 1.0
    first = sorted(_union_keys(reference, current))[0]
    n1, n2 = reference.size, current.size
    p1 = (n1 - reference.counts.get(first, 0)) / n1
    p2 = (n2 - current.counts.get(first, 0)) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(statistic))))


@register("chisquare", (CAT,), 0.05, operator.lt)
def chisquare(reference: PreparedColumn, current: PreparedColumn) -> float:
    keys = _union_keys(reference, current)
    expected = _counts(reference, keys) * (current.size / reference.size)
    return float(stats.chisquare(_counts(current, keys), expected)[1])


@register("wasserstein", (NUM,), 0.1, operator.ge)
def wasserstein(reference: PreparedColumn, current: PreparedColumn) -> float:
    """First Wasserstein distance over the reference's standard deviation (at least 0.001)."""
    return wasserstein_distance(reference.sorted, current.sorted) / max(reference.std, 0.001)


@register("jensenshannon", (CAT, NUM), 0.1, operator.ge)
def jensenshannon(reference: PreparedColumn, current: PreparedColumn) -> float:
    return float(distance.jensenshannon(*binned_percents(reference, current, fill_zeroes=False)))


@register("psi", (CAT, NUM), 0.1, operator.ge)
def psi(reference: PreparedColumn, current: PreparedColumn) -> float:
    reference_shares, current_shares = binned_percents(reference, current, fill_zeroes=True)
    return float(np.sum((reference_shares - current_shares) * np.log(reference_shares / current_shares)))


@register("kl_div", (CAT, NUM), 0.1, operator.ge)
def kl_div(reference: PreparedColumn, current: PreparedColumn) -> float:
    return float(stats.entropy(*binned_percents(reference, current, fill_zeroes=True)))


@register("hellinger", (CAT, NUM), 0.1, operator.ge)
def hellinger(reference: PreparedColumn, current: PreparedColumn) -> float:
    keys = _union_keys(reference, current)
    # Added one term at a time, in Evidently's order, as Evidently adds them.
    overlap = 0.0
    if reference.kind is CAT:
        for p, q in zip((_counts(reference, keys) / reference.size).tolist(),
                        (_counts(current, keys) / current.size).tolist(), strict=True):
            overlap += math.sqrt(p * q)
    else:
        edges = np.histogram_bin_edges(np.asarray(keys), bins="sturges")
        reference_density = np.histogram(reference.sorted, bins=edges, density=True)[0]
        current_density = np.histogram(current.sorted, bins=edges, density=True)[0]
        width = float((edges.max() - edges.min()) / (len(edges) - 1))
        for p, q in zip(reference_density.tolist(), current_density.tolist(), strict=True):
            overlap += math.sqrt(p * q) * width
    return math.sqrt(1 - float(np.clip(overlap, 0, 1)))


@register("anderson", (NUM,), 0.1, operator.lt)
def anderson(reference: PreparedColumn, current: PreparedColumn) -> float:
    return float(stats.anderson_ksamp([reference.series.to_numpy(), current.series.to_numpy()])[2])


@register("cramer_von_mises", (NUM,), 0.1, operator.le)
def cramer_von_mises(reference: PreparedColumn, current: PreparedColumn) -> float:
    if max(reference.size, current.size) > cvm_exact.EXACT_LIMIT or min(reference.size, current.size) < 2:
        return float(stats.cramervonmises_2samp(reference.sorted, current.sorted).pvalue)
    return cvm_exact.exact_pvalue(cvm_exact.statistic_u(reference.sorted, current.sorted), reference.size,
                                  current.size)


@register("ed", (NUM,), 0.1, operator.gt)
def energy_distance(reference: PreparedColumn, current: PreparedColumn) -> float:
    return float(stats.energy_distance(reference.series.to_numpy(), current.series.to_numpy()))


@register("t_test", (NUM,), 0.05, operator.lt)
def t_test(reference: PreparedColumn, current: PreparedColumn) -> float:
    return float(stats.ttest_ind(reference.series.to_numpy(), current.series.to_numpy())[1])


@register("mannw", (NUM,), 0.05, operator.lt)
def mann_whitney(reference: PreparedColumn, current: PreparedColumn) -> float:
    return float(stats.mannwhitneyu(reference.series.to_numpy(), current.series.to_numpy(),
                                    alternative="less")[1])


@register("es", (NUM,), 0.05, operator.lt)
def epps_singleton(reference: PreparedColumn, current: PreparedColumn) -> float:
    if stats.iqr(np.hstack((reference.sorted, current.sorted))) == 0:
        raise ValueError("the Epps-Singleton test needs variability: the interquartile range of the data is zero")
    return float(stats.epps_singleton_2samp(reference.series.to_numpy(), current.series.to_numpy())[1])


@register("g_test", (CAT,), 0.1, operator.lt)
def g_test(reference: PreparedColumn, current: PreparedColumn) -> float:
    keys = _union_keys(reference, current)
    return float(stats.power_divergence(_counts(current, keys), _counts(reference, keys),
                                        lambda_="log-likelihood")[1])


@register("fisher_exact", (CAT,), 0.1, operator.lt)
def fisher_exact(reference: PreparedColumn, current: PreparedColumn) -> float:
    if reference.size != current.size:
        raise ValueError("Fisher's exact test needs reference and current windows of equal length")
    if reference.unique_count > 2 or current.unique_count > 2:
        raise ValueError("Fisher's exact test needs binary data: found more than 2 categories")
    keys = _union_keys(reference, current)
    second = keys[1] if len(keys) > 1 else object()
    table = np.array([[current.counts.get(second, 0), current.size - current.counts.get(second, 0)],
                      [reference.counts.get(second, 0), reference.size - reference.counts.get(second, 0)]])
    return float(stats.fisher_exact(table)[1])
