"""A column made ready for the statistical tests: cleaned, sorted and counted once.

A reference that does not change is prepared once and reused for every window, which is
where most of the speed over Evidently comes from: Evidently sorts, counts and bins the
reference again for every column of every report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cached_property

import numpy as np
import pandas as pd

from fleetscope.drift.columns import ColumnKind, category_counts, clean


class PreparedColumn:
    """One side of a comparison: the column's values with NaN and infinities removed."""

    def __init__(self, column: pd.Series, kind: ColumnKind, value_counts: Mapping | pd.Series | None = None) -> None:
        self.kind = kind
        if kind is ColumnKind.NUMERICAL:
            self._column = column
            self.cleaned = numerical_values(column)
            self.sorted = np.sort(self.cleaned)
            self.size = len(self.sorted)
        else:
            # Counting drops NaN and None itself; infinities, which Evidently also drops, are
            # removed from the counts. One pass over the values instead of three, or none
            # when inferring the column's kind counted them already (value_counts).
            counted = value_counts.items() if value_counts is not None else category_counts(column)
            self.counts = {value: count for value, count in counted if count and not _is_infinite(value)}
            self.size = sum(self.counts.values())

    @cached_property
    def series(self) -> pd.Series:
        """The cleaned column in its own dtype and order, for the tests that read the rows as Evidently passes them."""
        return clean(self._column)

    @cached_property
    def unique_count(self) -> int:
        if self.kind is ColumnKind.NUMERICAL:
            return int(np.count_nonzero(np.diff(self.sorted))) + 1 if self.size else 0
        return len(self.counts)

    @cached_property
    def uniques(self) -> frozenset:
        return frozenset(self.counts)

    @cached_property
    def first_seen(self) -> list:
        """The distinct values in the order they first appear, as Series.dropna().unique() lists them."""
        if self.kind is ColumnKind.NUMERICAL:
            return pd.unique(self.cleaned).tolist()
        return list(self.counts)  # counted in that order

    @cached_property
    def counts(self) -> dict:
        """Occurrences of each distinct value (a categorical column's are counted in __init__)."""
        values, counts = np.unique(self.sorted, return_counts=True)
        return dict(zip(values.tolist(), counts.tolist(), strict=True))

    @cached_property
    def std(self) -> float:
        # In the rows' own order, as Evidently's np.std(series) sums them: the same bits.
        return float(np.std(self.cleaned))

    @property
    def low(self) -> float:
        return float(self.sorted[0])

    @property
    def high(self) -> float:
        return float(self.sorted[-1])

    def histogram(self, edges: np.ndarray) -> np.ndarray:
        """np.histogram(values, edges)[0], by binary search in the sorted values.

        numpy computes a histogram over explicit edges by sorting the data and searching
        it (numpy.lib._histograms_impl._search_sorted_inclusive); the values here are
        sorted already, so this is the same computation without the sort.
        """
        cumulative = np.concatenate((self.sorted.searchsorted(edges[:-1], "left"),
                                     self.sorted.searchsorted(edges[-1:], "right")))
        return np.diff(cumulative)


def numerical_values(column: pd.Series) -> np.ndarray:
    """The column's finite values as float64, in their order: a view of a float64 column that holds no NaN or
    infinity, one copy when it does."""
    if column.dtype == np.float64:
        values = column.to_numpy(copy=False)
        finite = np.isfinite(values)
        return values if finite.all() else values[finite]
    cleaned = clean(column)
    if not pd.api.types.is_numeric_dtype(cleaned):
        raise ValueError(f"column {column.name!r} should contain numerical values only")
    return cleaned.to_numpy(dtype=np.float64)


def _is_infinite(value: object) -> bool:
    return isinstance(value, float) and math.isinf(value)


def distinct_union_count(reference: PreparedColumn, current: PreparedColumn, limit: int) -> int:
    """pd.concat([reference, current]).nunique(), exact up to `limit` and anything above it after."""
    if reference.unique_count > limit or current.unique_count > limit:
        return max(reference.unique_count, current.unique_count)
    return len(reference.uniques | current.uniques)
