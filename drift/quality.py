"""Data quality of the current window against the reference, per column, from rows or from profiles: the share
of values missing, of categories the reference never held, and of numbers outside the reference's range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.profiles import ColumnProfile, Profile, frequent_lower_bounds


@dataclass(frozen=True)
class ColumnQuality:
    missing_share: float  # of the current window's rows, values missing (null, NaN)
    # Of the current window's values present: categories the reference never held (categorical columns), or
    # numbers below the reference's minimum or above its maximum (numerical columns); None for the other kind.
    new_category_share: float | None = None
    out_of_range_share: float | None = None
    # From a sketch: out_of_range_share within twice the KLL rank error; new_category_share an upper bound (rows of
    # values too rare for a frequent-items sketch to list count as new).
    approximate: bool = False


def from_frames(reference: pd.DataFrame, current: pd.DataFrame,
                kinds: Mapping[str, ColumnKind]) -> dict[str, ColumnQuality]:
    qualities = {}
    for name, kind in kinds.items():
        present = current[name].dropna()
        missing = _share(len(current) - len(present), len(current))
        known = reference[name].dropna()
        if kind is ColumnKind.NUMERICAL:
            values = present.to_numpy(dtype=np.float64)
            outside = (int(np.count_nonzero((values < known.min()) | (values > known.max())))
                       if len(known) else len(values))
            qualities[name] = ColumnQuality(missing, out_of_range_share=_share(outside, len(values)))
        elif kind in (ColumnKind.TEXT, ColumnKind.EMBEDDING):  # texts and vectors: missing only
            qualities[name] = ColumnQuality(missing)
        else:
            new = int((~present.isin(set(known))).sum())
            qualities[name] = ColumnQuality(missing, new_category_share=_share(new, len(present)))
    return qualities


def from_profiles(reference: Profile, current: Profile, kinds: Mapping[str, ColumnKind]) -> dict[str, ColumnQuality]:
    qualities = {}
    for name, kind in kinds.items():
        now, then = current.columns[name], reference.columns[name]
        missing = _share(now.missing, now.rows + now.missing)
        if kind is ColumnKind.NUMERICAL:
            outside, approximate = _outside(then, now)
            qualities[name] = ColumnQuality(missing, out_of_range_share=outside, approximate=approximate)
        elif kind is ColumnKind.EMBEDDING:  # vectors: missing only, as from frames
            qualities[name] = ColumnQuality(missing)
        else:
            new, approximate = _new_categories(then, now)
            qualities[name] = ColumnQuality(missing, new_category_share=new, approximate=approximate)
    return qualities


def _outside(reference: ColumnProfile, current: ColumnProfile) -> tuple[float, bool]:
    if current.rows == 0:
        return 0.0, False
    if reference.rows == 0:
        return 1.0, False
    low, high = reference.minimum, reference.maximum
    if current.counts is not None:
        return _share(sum(n for v, n in current.counts.items() if v < low or v > high), current.rows), False
    assert current.sketch is not None  # a numerical column without exact counts has its sketch
    if current.minimum >= low and current.maximum <= high:  # exact: nothing lies outside
        return 0.0, False
    below = current.sketch.get_rank(low, False) if current.minimum < low else 0.0
    above = 1 - current.sketch.get_rank(high, True) if current.maximum > high else 0.0
    return float(below + above), bool(current.sketch.is_estimation_mode())


def _new_categories(reference: ColumnProfile, current: ColumnProfile) -> tuple[float, bool]:
    if current.rows == 0:
        return 0.0, False
    known = set(reference.counts) if reference.counts is not None else set(frequent_lower_bounds(reference))
    approximate = reference.counts is None or current.counts is None
    counts = current.counts if current.counts is not None else frequent_lower_bounds(current)
    new = sum(n for value, n in counts.items() if value not in known)
    if current.counts is None:  # rows the sketch does not report are of values too rare to list: count them new
        new += current.rows - sum(counts.values())
    return _share(new, current.rows), approximate


def _share(part: float, whole: float) -> float:
    return float(part) / whole if whole else 0.0

