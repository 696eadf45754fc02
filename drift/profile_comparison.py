"""compare_profiles(): drift from profiles, with each column's test chosen as compare() chooses it.

What a profile can give, per test:

- Exact, equal to compare() on the rows: every test of a categorical column while its values are counted
  exactly, and every test of a numerical column while its values are counted exactly (at most
  EXACT_DISTINCT distinct values; up to EXPAND_LIMIT rows the values are rebuilt and the row-mode test runs;
  past it the count-based tests, Wasserstein and KS run on the counts themselves). t_test is exact from the
  profile's moments however many rows there are.
- Approximate, with a bound, from a numerical column's KLL sketch (rank error e at 99% confidence: DataSketches'
  single-sided normalized rank error for the sketch's k, over all ranks) and its logarithmic buckets' exact
  counts (fleetscope.drift.log_buckets; profiles of format version 2):
  * wasserstein: W1 = integral of |F_ref - F_cur| dx. On each side the true F lies, at every x, between a lower
    and an upper bound L(x) <= F(x) <= U(x): the sketch's rank at x -/+ e, the buckets wholly at or below x and
    those starting at or below x, 0 below the exact minimum and 1 from the exact maximum. The score integrates
    the midpoints (L + U) / 2, each within (U - L) / 2 of F, so the distance moves by at most the integral of
    (U - L) / 2 over both sides (the triangle inequality), divided by the reference's exact standard deviation
    as the score is. The sketch bounds F where values lie close together (far from 0 relative to their spread),
    the buckets where they lie far apart (tails): the bound is narrow for both. A side without buckets (format
    version 1) is bounded by its sketch alone, e (max - min).
  * ks: the statistic D moves by at most e_ref + e_cur; the p-value is computed as scipy's ks_2samp
    computes it for D, and its bound is how far it moves over that range of D. A sketch's KS p-value is
    not to be trusted on large samples (whylogs #684): with many rows the p-value's sensitivity to D is
    so high that the bound spans most of [0, 1], and the bound says so instead of a confident p-value.
- Categorical columns are counted exactly up to exact_categories categories (EXACT_CATEGORIES by default; format
  version 5 past V3_EXACT_CATEGORIES, version 3 up to it), so every
  count-based test is exact there. Past that, from a frequent-items sketch, jensenshannon and hellinger are
  bounded by what the sketch knows for certain (its bounds are deterministic, not probabilistic): each value it
  tracks occurred between a lower and an upper count, every other value at most its offset (maximum error), and
  the values neither side reports hold the rest of each side's rows. Both scores are sums over values of a term
  of the two shares: JS divergence of f(p, q) = (p ln(2p/(p+q)) + q ln(2q/(p+q))) / 2, jointly convex, so over
  each value's box of shares it is largest at a corner and smallest at the corner nearest the diagonal (0 where
  the intervals overlap); over the unreported values together it is at least f of their totals (convexity) and
  at most ln 2 / 2 of their shares. Hellinger's overlap sum(sqrt(p q)) grows with every share, and over the
  unreported values is at most sqrt of the product of their totals (Cauchy-Schwarz). The score is the middle of
  the range so found, the bound half its width: a decision is certain only where the whole range lies on one
  side of the threshold. A long tail the sketch does not track is genuinely unknown, and the range says so.
- Exact without counts: chisquare of a current past its exact count of categories against a reference counted
  exactly is 0, as scipy gives it (a category the reference never had makes the statistic infinite).
- Embedding columns (a count and a sum vector per profile, fleetscope.drift.embedding_profiles): the distance
  methods, exact from the merged means (up to the order of floating-point addition); every other embedding method
  is refused with the reason (it needs the vectors, or per-component sketches too large or too loose to decide).
- Refused, with the reason: the other rank tests (anderson, cramer_von_mises, ed, mannw, es) and the
  binned or count tests (psi, kl_div, chisquare otherwise, z, g_test, fisher_exact, and hellinger,
  jensenshannon of a numerical column) once a side is a sketch: a sketch gives them no bound worth stating.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import datasketches
import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.stats import _stats_py

from fleetscope.drift import embedding_profiles, log_buckets, stattests
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.comparison import COMPARABLE, ColumnDrift, DriftResult, per_column, skip_reason
from fleetscope.drift.prepared import PreparedColumn
from fleetscope.drift.profiles import (
    EXACT_CATEGORIES,
    EXACT_DISTINCT,
    ColumnProfile,
    FrequentBounds,
    Profile,
    frequent_bounds,
)

# Exact numerical sides up to this many rows are rebuilt as values and scored by the row-mode test.
EXPAND_LIMIT = 1_000_000
# scipy's ks_2samp computes an exact p-value up to this many rows on the larger side, Smirnov's asymptotic
# one above (scipy/stats/_stats_py.py, ks_2samp's MAX_AUTO_N, scipy 1.11 to 1.17).
KS_EXACT_LIMIT = 10_000
OTHER = object()  # the values a frequent-items sketch does not report, as one category


class ProfileMethodError(ValueError):
    """A method a profile cannot score; the message says why and what can."""


@dataclass
class NumericalSide:
    """A numerical column as weighted values: exact counts, or a KLL sketch's retained items and weights.
    Offers what the count- and histogram-based tests read from a PreparedColumn."""

    values: np.ndarray  # sorted
    weights: np.ndarray
    size: int
    std: float
    low: float
    high: float
    rank_error: float  # normalized, 0 when exact
    exact_counts: bool
    mean: float
    kind: ColumnKind = ColumnKind.NUMERICAL
    buckets: log_buckets.LogBuckets | None = None  # exact counts in logarithmic buckets, where the profile has them

    @property
    def exact(self) -> bool:
        return self.rank_error == 0

    @cached_property
    def counts(self) -> dict:
        if not self.exact_counts:
            raise ProfileMethodError("needs the column's value counts, which a sketch does not keep")
        return dict(zip(self.values.tolist(), self.weights.tolist(), strict=True))

    @property
    def unique_count(self) -> int:
        return len(self.values) if self.exact_counts else EXACT_DISTINCT + 1  # "more than", all the tests ask

    @property
    def first_seen(self) -> list:
        return list(self.counts)  # a profile keeps no order of appearance: the values' own order

    @cached_property
    def uniques(self) -> frozenset:
        return frozenset(self.counts)

    @cached_property
    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.weights)

    def cdf(self, at: np.ndarray) -> np.ndarray:
        """Share of values <= each point."""
        index = self.values.searchsorted(at, "right")
        return np.where(index > 0, self.cumulative[np.maximum(index - 1, 0)], 0) / self.size

    def breakpoints(self) -> np.ndarray:
        """Where the bounds on this side's F may change: its values, its buckets' edges, its minimum and maximum."""
        found = [self.values, np.array([self.low, self.high])]
        if not self.exact and self.buckets is not None:
            found.append(log_buckets.breakpoints(self.buckets))
        return np.concatenate(found)

    def cdf_bounds(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds on the share of values <= x, for x anywhere from each point of `at` (sorted, and
        holding every breakpoint()) to the next."""
        estimate = self.cdf(at)
        if self.exact:
            return estimate, estimate
        lower, upper = estimate - self.rank_error, estimate + self.rank_error
        if self.buckets is not None:
            below, started = log_buckets.bounds(self.buckets, at)
            lower, upper = np.maximum(lower, below / self.size), np.minimum(upper, started / self.size)
        lower = np.where(at >= self.high, 1.0, np.clip(lower, 0.0, 1.0))
        upper = np.where(at < self.low, 0.0, np.clip(upper, 0.0, 1.0))
        return lower, np.maximum(upper, lower)

    def histogram(self, edges: np.ndarray) -> np.ndarray:
        below = np.concatenate((self.values.searchsorted(edges[:-1], "left"),
                                self.values.searchsorted(edges[-1:], "right")))
        totals = np.concatenate(([0], self.cumulative))
        return np.diff(totals[below])

    def prepared(self) -> PreparedColumn:
        return PreparedColumn(pd.Series(np.repeat(self.values, self.weights.astype(np.int64))), self.kind)


def numerical_side(name: str, column: ColumnProfile) -> NumericalSide:
    if not column.numeric:
        raise ValueError(f"column {name!r} is numerical in the current profile but was profiled as categorical")
    assert column.sketch is not None
    if column.counts is not None:
        values = np.array(sorted(column.counts), dtype=np.float64)
        weights = np.array([column.counts[v] for v in values.tolist()], dtype=np.float64)
        rank_error = 0.0
    else:
        values, weights = sketch_view(column.sketch)
        rank_error = rank_error_of(column.sketch)
    return NumericalSide(values, weights, column.rows, column.std, column.minimum, column.maximum, rank_error,
                         exact_counts=column.counts is not None, mean=column.mean, buckets=column.buckets)


def rank_error_of(sketch: datasketches.kll_doubles_sketch) -> float:
    """The sketch's rank error at 99% confidence over all ranks: DataSketches' single-sided normalized rank error
    for the smallest k merged into it (what a rank, the share of values <= x, may be off by), 0 while it holds
    every value."""
    if not sketch.is_estimation_mode():
        return 0.0
    return float(sketch.normalized_rank_error(False))


def sketch_view(sketch: datasketches.kll_doubles_sketch) -> tuple[np.ndarray, np.ndarray]:
    """The sketch's retained values, sorted and distinct, with the number of values each stands for.

    The weights come from the sketch's ranks, not from iterating it: in datasketches 5.2.0 iterating a KLL
    sketch after some merges reports every retained item with weight 1 (seen here: 513 items said to weigh
    513 in a sketch of 5,000 values), while its ranks stay right."""
    values = np.unique(np.fromiter((item for item, _ in sketch), np.float64))
    cumulative = np.rint(np.asarray(sketch.get_cdf(values, True))[:-1] * sketch.n)
    return values, np.diff(np.concatenate(([0.0], cumulative)))


@dataclass
class CategoricalSide:
    """A categorical column's counts: exact, or a frequent-items sketch's lower bounds plus OTHER (and its bounds)."""

    counts: dict
    size: int
    unaccounted: float  # share of rows the counts do not account for exactly; 0 when exact
    kind: ColumnKind = ColumnKind.CATEGORICAL
    bounds: FrequentBounds | None = None  # from a frequent-items sketch: what it knows of each value's count

    @property
    def exact(self) -> bool:
        return self.unaccounted == 0

    @property
    def unique_count(self) -> int:
        return len(self.counts) if self.exact else EXACT_DISTINCT + 1

    @cached_property
    def uniques(self) -> frozenset:
        return frozenset(self.counts)

    def prepared(self) -> PreparedColumn:
        return PreparedColumn(pd.Series([], dtype=object), self.kind, value_counts=pd.Series(self.counts))


def categorical_side(name: str, column: ColumnProfile) -> CategoricalSide:
    if column.counts is not None:
        return CategoricalSide(dict(column.counts), column.rows, 0.0)
    if column.frequent is None:
        raise ValueError(f"column {name!r} is categorical in the current profile but has more than "
                         f"{EXACT_DISTINCT} distinct numerical values in the reference's")
    bounds = frequent_bounds(column)
    counts = {value: count for value, count in bounds.lower.items() if count > 0}
    accounted = sum(counts.values())
    if accounted < column.rows:
        counts[OTHER] = column.rows - accounted
    return CategoricalSide(counts, column.rows, (column.rows - accounted) / column.rows, bounds=bounds)


Side = NumericalSide | CategoricalSide


@dataclass(frozen=True)
class ProfileDriftResult(DriftResult):
    """A comparison of profiles: its dataset decision counts a drifted column only where that column's decision is
    certain (ColumnDrift.decided: the score's error bound does not straddle the threshold), unless count_uncertain.
    An uncertain column counts as not drifted: the dataset is found drifted on what is known."""

    count_uncertain: bool = field(default=False)

    @property
    def uncertain_count(self) -> int:
        return sum(not drift.decided for drift in self.columns.values())

    @property
    def uncertain_share(self) -> float:
        return self.uncertain_count / len(self.columns) if self.columns else 0.0

    @property
    def drifted_count(self) -> int:
        return sum(drift.drifted and (self.count_uncertain or drift.decided) for drift in self.columns.values())


def compare_profiles(reference: Profile, current: Profile, methods: Mapping[str, str] | str | None = None,
                     thresholds: Mapping[str, float] | float | None = None,
                     drift_share: float = 0.5, count_uncertain: bool = False) -> ProfileDriftResult:
    """Drift of each column of `current` against `reference`, as compare() would find it on their rows.

    Kinds are inferred from the current profile as compare() infers them from the current rows, or taken
    as declared when the profiles were built. Each column carries .approximate, .error_bound and .decided (whether
    its decision is certain); the dataset's decision counts certain columns only, unless count_uncertain.
    """
    kinds = {name: column.kind() for name, column in current.columns.items()}
    skipped = {name: skip_reason(kind) for name, kind in kinds.items()
               if kind not in COMPARABLE and kind is not ColumnKind.EMBEDDING}
    for name, kind in kinds.items():
        if kind is ColumnKind.TEXT and current.columns[name].distinct is None:
            skipped[name] = (f"more distinct values than its replicas counted exactly (exact_categories, "
                             f"{EXACT_CATEGORIES} by default), so whether it is text (more than half "
                             f"its values distinct) is not known from a profile; declare it categorical to "
                             f"compare its frequent values")
    drifts = []
    for name, kind in kinds.items():
        if name not in reference.columns and (kind in COMPARABLE or kind is ColumnKind.EMBEDDING):
            raise ValueError(f"column {name!r} is not in the reference profile")
        if kind is ColumnKind.EMBEDDING:
            drifts.append(_embedding_drift(name, reference.columns[name], current.columns[name], methods, thresholds))
        if kind not in COMPARABLE:
            continue
        sides = [(numerical_side if kind is ColumnKind.NUMERICAL else categorical_side)(name, profile_.columns[name])
                 for profile_ in (reference, current)]
        drifts.append(_column_drift(name, sides[0], sides[1], per_column(methods, name),
                                    per_column(thresholds, name)))
    return ProfileDriftResult({drift.column: drift for drift in drifts}, drift_share, skipped, count_uncertain)


def _embedding_drift(name: str, reference: ColumnProfile, current: ColumnProfile,
                     methods: Mapping[str, str] | str | None,
                     thresholds: Mapping[str, float] | float | None) -> ColumnDrift:
    """Evidently's DistanceDriftMethod from the two sides' counts and sum vectors; ProfileMethodError for any other
    method, or sides that cannot be compared, saying why."""
    if reference.vector_sum is None or current.vector_sum is None:
        raise ValueError(f"column {name!r} is an embedding column in one profile only")
    method, threshold = embedding_profiles.method_and_threshold(name, methods, thresholds)
    try:
        found, chosen, drifted = embedding_profiles.score(method, reference.rows, reference.vector_sum,
                                                          current.rows, current.vector_sum, threshold)
    except ValueError as error:
        raise ProfileMethodError(f"column {name!r}: {error}") from None
    return ColumnDrift(name, ColumnKind.EMBEDDING, str(method), found, chosen, drifted, reference.rows, current.rows)


def _column_drift(name: str, reference: Side, current: Side, method: str | None,
                  threshold: float | None) -> ColumnDrift:
    for which, side in (("reference", reference), ("current", current)):
        if side.size == 0:
            raise ValueError(f"column {name!r} has no values in the {which} profile once NaN and infinities "
                             f"are removed")
    test = (stattests.get(method, reference.kind) if method
            else stattests.default_for(reference, current))  # type: ignore[arg-type]
    threshold = test.default_threshold if threshold is None else float(threshold)
    try:
        score, bound = _score(test, reference, current)
    except ProfileMethodError as error:
        raise ProfileMethodError(f"column {name!r}: {test.name} {error}") from None
    return ColumnDrift(name, reference.kind, test.name, score, threshold, test.drifted(score, threshold),
                       reference.size, current.size, approximate=bound > 0, error_bound=bound)


def _score(test: stattests.StatTest, reference: Side, current: Side) -> tuple[float, float]:
    if test.name == "t_test" and isinstance(reference, NumericalSide) and isinstance(current, NumericalSide):
        return _t_test(reference, current), 0.0
    expandable = isinstance(reference, CategoricalSide) or max(reference.size, current.size) <= EXPAND_LIMIT
    if reference.exact and current.exact and expandable:
        return test.score(reference.prepared(), current.prepared()), 0.0
    if isinstance(reference, NumericalSide) and isinstance(current, NumericalSide):
        if test.name == "wasserstein":
            return _wasserstein(reference, current)
        if test.name == "ks":
            return _ks(reference, current)
        if reference.exact_counts and current.exact_counts and test.name not in ROW_TESTS:
            return test.score(reference, current), 0.0  # type: ignore[arg-type]
        raise ProfileMethodError(_refusal(reference, current))
    assert isinstance(reference, CategoricalSide) and isinstance(current, CategoricalSide)
    if test.name in ("jensenshannon", "hellinger"):
        return _categorical_distance(test, reference, current)
    if test.name == "chisquare" and reference.exact and not current.exact:
        # A current past its exact count of categories against a reference counted exactly holds a
        # category the reference never had: its expected count is 0, scipy's statistic infinite, p exactly 0.
        return 0.0, 0.0
    raise ProfileMethodError("needs every category's exact count, and a side has more distinct values than its "
                             f"replicas counted exactly (exact_categories, {EXACT_CATEGORIES} by default): use "
                             "jensenshannon or hellinger, whose error a frequent-items sketch bounds, or send rows")


# Tests that read the values themselves, not counts or histograms.
ROW_TESTS = frozenset({"anderson", "cramer_von_mises", "ed", "mannw", "es", "hellinger"})


def _refusal(reference: NumericalSide, current: NumericalSide) -> str:
    if reference.exact_counts and current.exact_counts:
        return (f"needs the values themselves, and a side has more than {EXPAND_LIMIT:,} rows to rebuild them "
                f"from: use wasserstein, ks, t_test or a count-based method, or send rows")
    return ("cannot be computed from a quantile sketch with an error bound worth stating: use wasserstein "
            "(the default past 1,000 reference rows), ks or t_test, or send rows for this model")


def _wasserstein(reference: NumericalSide, current: NumericalSide) -> tuple[float, float]:
    """W1 from the midpoints of each side's bounds on F, and the bound on its error (the module's docstring)."""
    scale = max(reference.std, 0.001)
    at = np.unique(np.concatenate((reference.breakpoints(), current.breakpoints())))
    at = at[(at >= min(reference.low, current.low)) & (at <= max(reference.high, current.high))]
    widths = np.diff(at)
    (reference_lower, reference_upper), (current_lower, current_upper) = (reference.cdf_bounds(at[:-1]),
                                                                          current.cdf_bounds(at[:-1]))
    distance_ = np.sum(np.abs((reference_lower + reference_upper) - (current_lower + current_upper)) / 2 * widths)
    bound = np.sum(((reference_upper - reference_lower) + (current_upper - current_lower)) / 2 * widths)
    return float(distance_) / scale, float(bound) / scale


def _ks(reference: NumericalSide, current: NumericalSide) -> tuple[float, float]:
    at = np.union1d(reference.values, current.values)
    statistic = float(np.max(np.abs(reference.cdf(at) - current.cdf(at))))
    p_value = ks_p_value(statistic, reference.size, current.size)
    slack = reference.rank_error + current.rank_error
    if slack == 0:
        return p_value, 0.0
    highest = ks_p_value(max(statistic - slack, 0.0), reference.size, current.size)
    lowest = ks_p_value(min(statistic + slack, 1.0), reference.size, current.size)
    return p_value, max(highest - p_value, p_value - lowest)


def ks_p_value(statistic: float, n1: int, n2: int) -> float:
    """The two-sided p-value scipy's ks_2samp (method "auto") gives a statistic for samples of these sizes."""
    if max(n1, n2) <= KS_EXACT_LIMIT:
        success, _, p_value = _stats_py._attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), statistic, "two-sided")
        if success:
            return float(np.clip(p_value, 0, 1))
    larger, smaller = sorted((float(n1), float(n2)), reverse=True)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(larger * smaller / (larger + smaller))), 0, 1))


def _t_test(reference: NumericalSide, current: NumericalSide) -> float:
    """scipy's ttest_ind (equal variances), from counts, means and standard deviations."""
    def sample_std(side: NumericalSide) -> float:
        return side.std * math.sqrt(side.size / (side.size - 1)) if side.size > 1 else math.nan
    return float(stats.ttest_ind_from_stats(reference.mean, sample_std(reference), reference.size,
                                            current.mean, sample_std(current), current.size)[1])


def _categorical_distance(test: stattests.StatTest, reference: CategoricalSide,
                          current: CategoricalSide) -> tuple[float, float]:
    """jensenshannon or hellinger where a side is a frequent-items sketch: the middle of the range the score may
    take given what each side knows, and half its width (the module's docstring)."""
    keys = list((reference.uniques | current.uniques) - {OTHER})
    (p_low, p_high, p_out), (q_low, q_high, q_out) = (_share_bounds(side, keys) for side in (reference, current))
    if test.name == "jensenshannon":
        corners = [_js_terms(p, q) for p in (p_low, p_high) for q in (q_low, q_high)]
        highest = float(np.sum(np.maximum.reduce(corners))) + math.log(2) / 2 * (p_out[1] + q_out[1])
        lowest = float(np.sum(_js_terms(*_nearest(p_low, p_high, q_low, q_high))))
        lowest += float(np.sum(_js_terms(*_nearest(*(np.array([value]) for value in (*p_out, *q_out))))))
        low, high = math.sqrt(max(lowest, 0.0)), math.sqrt(min(max(highest, lowest, 0.0), math.log(2)))
    else:
        overlap_low = float(np.sum(np.sqrt(p_low * q_low)))
        overlap_high = float(np.sum(np.sqrt(p_high * q_high))) + math.sqrt(p_out[1] * q_out[1])
        low = math.sqrt(1 - min(max(overlap_high, 0.0), 1.0))
        high = math.sqrt(1 - min(max(overlap_low, 0.0), 1.0))
    # The ends are sums of thousands of terms, each rounded: a relative 1e-12 keeps the truth inside them.
    return (low + high) / 2, (high - low) / 2 + 1e-12 * max(high, 1e-300)


def _share_bounds(side: CategoricalSide, keys: list) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Each key's share of the side's rows, from and to, and the range of the share the values outside `keys` hold."""
    if side.bounds is None:
        shares = np.array([side.counts.get(key, 0) for key in keys], dtype=np.float64) / side.size
        return shares, shares, (0.0, 0.0)
    bounds = side.bounds
    low = np.array([bounds.lower.get(key, 0) for key in keys], dtype=np.float64) / side.size
    high = np.array([bounds.upper.get(key, bounds.untracked_max) for key in keys], dtype=np.float64) / side.size
    high = np.minimum(high, 1.0)
    outside = (max(0.0, 1.0 - float(np.sum(high))), max(0.0, 1.0 - float(np.sum(low))))
    return low, high, outside


def _js_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each value's term of the Jensen-Shannon divergence (natural log), as scipy's jensenshannon sums them."""
    m = (p + q) / 2.0
    return (special.rel_entr(p, m) + special.rel_entr(q, m)) / 2.0


def _nearest(p_low: np.ndarray, p_high: np.ndarray, q_low: np.ndarray, q_high: np.ndarray) -> \
        tuple[np.ndarray, np.ndarray]:
    """Where in each box [p_low, p_high] x [q_low, q_high] a jointly convex function that is 0 on p = q, and grows
    away from it, is least: on the diagonal where the intervals overlap, else at the corner nearest it."""
    p = np.where(p_high < q_low, p_high, np.where(q_high < p_low, p_low, np.maximum(p_low, q_low)))
    q = np.where(p_high < q_low, q_low, np.where(q_high < p_low, q_high, np.maximum(p_low, q_low)))
    return p, q
