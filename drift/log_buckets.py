"""Exact counts of a numerical column's values in logarithmic buckets: the part of a profile that bounds a quantile
sketch's error in the tails, where a KLL sketch's error (a share of all the rows, the same everywhere) spreads over
values far apart.

A bucket at resolution `level` holds the values whose magnitude lies in (2^((j-1)/2^level), 2^(j/2^level)], one
range of buckets for each sign: a bucket is 2^(1/2^level) - 1 wide relative to its values (0.0011% at level 16,
1.1% at level 6). Values of magnitude at most 2^(cut/2^level) share one bucket around zero. Buckets sit on one
lattice for every profile: two sets of buckets merge exactly, at the coarser level and the higher cut of the two.
At most MAX_BUCKETS are kept; past them the buckets are coarsened (pairs merged: one level down) or the smallest
magnitudes are folded into the bucket around zero, whichever widens the buckets' uncertainty, the sum over
buckets of (share of rows) x (width), the less: uniform data far from 0 keeps its resolution and coarsens, data
spanning many decades near zero folds them.

Read from a client, buckets are checked whole (decode()): sorted distinct keys within the lattice, positive counts
adding up to the column's rows, the column's minimum and maximum inside the lowest and highest bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINEST_LEVEL = 18  # where a profile starts: buckets 0.00026% wide, finer than any drift threshold cares about
MAX_BUCKETS = 1024  # 1,024 keys (int32) and counts (int64): at most 12 KiB a column before compression
# Keys: sign x (j + BIAS), 0 for the bucket around zero; |j| <= 1075 x 2^18 (a float64's magnitude) < BIAS,
# and BIAS + |j| < 2^31.
BIAS = 1 << 29
NO_CUT = -(1 << 30)  # no bucket around zero but for exact zeros
# The bucket a value is put in is computed with log2, which may be off by one next to a boundary: each bucket is
# taken as this much (relative) wider on each side when it bounds the distribution.
SLACK = 1e-9


class BucketsError(ValueError):
    """Buckets that are not well formed; the message says why."""


@dataclass
class LogBuckets:
    level: int
    cut: int  # at `level`; NO_CUT when only exact zeros share the bucket around zero
    keys: np.ndarray  # int64, sorted: monotone in the values
    counts: np.ndarray  # int64, positive

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Each bucket's lowest and highest value, widened by SLACK: every value counted lies within."""
        magnitude = np.abs(self.keys) - BIAS
        scale = 2.0 ** -self.level
        with np.errstate(over="ignore"):
            upper, lower = np.exp2(magnitude * scale), np.exp2((magnitude - 1) * scale)
        zero = 0.0 if self.cut == NO_CUT else float(np.exp2(self.cut * scale))
        low = np.where(self.keys > 0, lower, np.where(self.keys < 0, -upper, -zero))
        high = np.where(self.keys > 0, upper, np.where(self.keys < 0, -lower, zero))
        return low - SLACK * np.abs(low), high + SLACK * np.abs(high)

    def uncertainty(self) -> float:
        """Sum over buckets of count x width: how far the values could move within their buckets, in all."""
        low, high = self.edges()
        return float(np.sum(self.counts * np.minimum(high - low, np.finfo(np.float64).max)))


def build(values: np.ndarray) -> LogBuckets:
    """Buckets of finite values."""
    keys = _keys(values, FINEST_LEVEL)
    unique, counts = np.unique(keys, return_counts=True)
    return _fitted(LogBuckets(FINEST_LEVEL, NO_CUT, unique, counts.astype(np.int64)))


def merge(a: LogBuckets, b: LogBuckets) -> LogBuckets:
    level = min(a.level, b.level)
    a, b = _at_level(a, level), _at_level(b, level)
    cut = max(a.cut, b.cut)
    keys = np.concatenate((_folded(a.keys, cut), _folded(b.keys, cut)))
    unique, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, np.concatenate((a.counts, b.counts)).astype(np.float64)).astype(np.int64)
    return _fitted(LogBuckets(level, cut, unique, counts))


def _keys(values: np.ndarray, level: int) -> np.ndarray:
    magnitude = np.abs(values)
    with np.errstate(divide="ignore"):
        j = np.ceil(np.log2(magnitude) * (1 << level))
    j = np.where(magnitude > 0, j, 0).astype(np.int64)
    return np.where(magnitude > 0, np.sign(values).astype(np.int64) * (j + BIAS), 0)


def _coarser(keys: np.ndarray) -> np.ndarray:
    """Keys one level down: bucket j of the finer level lies in bucket ceil(j / 2)."""
    magnitude = np.abs(keys) - BIAS
    return np.where(keys == 0, 0, np.sign(keys) * (-((-magnitude) // 2) + BIAS))


def _at_level(buckets: LogBuckets, level: int) -> LogBuckets:
    keys, cut = buckets.keys, buckets.cut
    for _ in range(buckets.level - level):
        keys = _coarser(keys)
        cut = cut if cut == NO_CUT else -((-cut) // 2)
    if cut != NO_CUT:  # a bucket just past the cut may now share its coarser bucket: it is folded in with it
        keys = _folded(keys, cut)
    unique, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, buckets.counts.astype(np.float64)).astype(np.int64)
    return LogBuckets(level, cut, unique, counts)


def _folded(keys: np.ndarray, cut: int) -> np.ndarray:
    return np.where((keys != 0) & (np.abs(keys) - BIAS <= cut), 0, keys)


def _fitted(buckets: LogBuckets) -> LogBuckets:
    """At most MAX_BUCKETS: coarsened or folded toward zero, whichever costs less uncertainty, until they fit."""
    while buckets.keys.size > MAX_BUCKETS:
        coarser = _at_level(buckets, buckets.level - 1) if buckets.level > 0 else None
        folded = _fold(buckets, buckets.keys.size - MAX_BUCKETS)
        buckets = folded if coarser is None or folded.uncertainty() <= coarser.uncertainty() else coarser
    return buckets


def _fold(buckets: LogBuckets, excess: int) -> LogBuckets:
    """The `excess` + 1 buckets of smallest magnitude folded into the bucket around zero (one more, as that bucket
    may be new)."""
    magnitudes = np.unique(np.abs(buckets.keys[buckets.keys != 0]) - BIAS)
    cut = int(magnitudes[min(excess, magnitudes.size - 1)])
    keys = _folded(buckets.keys, cut)
    unique, inverse = np.unique(keys, return_inverse=True)
    return LogBuckets(buckets.level, max(cut, buckets.cut), unique,
                      np.bincount(inverse, buckets.counts.astype(np.float64)).astype(np.int64))


# -- bytes ---------------------------------------------------------------------------------------------------------
#
# level (int8), cut (int32), then the keys (int32) and then the counts (int64), little-endian.

def encode(buckets: LogBuckets) -> bytes:
    return (np.array([buckets.level], "<i1").tobytes() + np.array([buckets.cut], "<i4").tobytes()
            + buckets.keys.astype("<i4").tobytes() + buckets.counts.astype("<i8").tobytes())


def decode(blob: bytes, rows: int, minimum: float, maximum: float, max_count: int) -> LogBuckets:
    """Buckets read from a client's bytes, checked whole against the column they describe; BucketsError otherwise."""
    if len(blob) < 5 or (len(blob) - 5) % 12 or (len(blob) - 5) // 12 > MAX_BUCKETS:
        raise BucketsError(f"buckets are a level, a cut and at most {MAX_BUCKETS} pairs of int32 keys and int64 counts")
    level, cut = int(np.frombuffer(blob, "<i1", 1, 0)[0]), int(np.frombuffer(blob, "<i4", 1, 1)[0])
    size = (len(blob) - 5) // 12
    keys = np.frombuffer(blob, "<i4", size, 5).astype(np.int64)
    counts = np.frombuffer(blob, "<i8", size, 5 + 4 * size)
    if not 0 <= level <= FINEST_LEVEL:
        raise BucketsError(f"the buckets' level is from 0 to {FINEST_LEVEL}")
    limit = 1075 << level  # |j| of a float64's magnitude at this level
    if not (cut == NO_CUT or -limit <= cut <= limit):
        raise BucketsError("the buckets' cut lies outside a float64's range")
    magnitude = np.abs(keys) - BIAS
    if np.any((keys != 0) & ((magnitude < -limit) | (magnitude > limit) | (magnitude <= cut))):
        raise BucketsError("a bucket's key lies outside a float64's range or inside the bucket around zero")
    if size and np.any(np.diff(keys) <= 0):
        raise BucketsError("the buckets' keys are not sorted and distinct")
    if np.any(counts <= 0) or np.any(counts > max_count) or int(counts.sum()) != rows:
        raise BucketsError("the buckets' counts are not positive or do not add up to the column's rows")
    buckets = LogBuckets(level, cut, keys, counts.astype(np.int64))
    if rows:
        low, high = buckets.edges()
        if not (low[0] <= minimum <= high[0] and low[-1] <= maximum <= high[-1]):
            raise BucketsError("the column's minimum and maximum do not lie in its lowest and highest buckets")
    return buckets


def bounds(buckets: LogBuckets, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point x of `at`, the fewest and the most values that can be <= x anywhere in [x, the next point):
    buckets wholly at or below x, and buckets starting at or below x."""
    low, high = buckets.edges()
    below = np.concatenate(([0], np.cumsum(buckets.counts[np.argsort(high, kind="stable")])))
    started = np.concatenate(([0], np.cumsum(buckets.counts[np.argsort(low, kind="stable")])))
    return (below[np.searchsorted(np.sort(high), at, "right")].astype(np.float64),
            started[np.searchsorted(np.sort(low), at, "right")].astype(np.float64))


def breakpoints(buckets: LogBuckets) -> np.ndarray:
    low, high = buckets.edges()
    return np.concatenate((low, high))

