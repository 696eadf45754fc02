"""A bounded, weighted random sample of the rows a profile summarizes, kept with it so that a model fed profiles
still has rows to draw Evidently's report from (a report that says it is drawn from a sample).

A profile of n rows keeps up to ROWS of them, drawn uniformly, each weighing n / kept. Merging thins each side
to the lower of the two sampling rates, and to CAP rows in all: the merged sample is again uniform (every row
of the merged data as likely to be in it, whatever the sizes of the profiles merged) and bounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

ROWS = 100  # kept by one profile (a replica's interval)
INTERVAL_ROWS = 200  # kept by the service for one stored interval, which it re-reads at every replica's profile
CAP = 5000  # kept by any other merge of profiles: a window's, for its report


@dataclass
class Sample:
    columns: dict[str, list]  # name -> values (None for a missing value)
    weights: list[float]  # rows each sampled row stands for

    @property
    def size(self) -> int:
        return len(self.weights)

    @property
    def represented(self) -> float:
        return float(sum(self.weights))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)

    def only(self, names: list[str]) -> Sample:
        return Sample({name: self.columns[name] for name in names if name in self.columns}, self.weights)

    def to_json(self) -> dict:
        return {"columns": self.columns, "weights": self.weights}

    @staticmethod
    def from_json(document: Mapping, names: list[str], limit: int = CAP) -> Sample:
        """Raises ValueError for a sample that does not fit its profile."""
        columns, weights = dict(document["columns"]), [float(w) for w in document["weights"]]
        if len(weights) > limit or set(columns) - set(names):
            raise ValueError(f"a sample holds at most {limit} rows of the profile's columns")
        if any(len(values) != len(weights) for values in columns.values()):
            raise ValueError("a sample's columns and weights differ in length")
        if not all(math.isfinite(w) and w > 0 for w in weights):
            raise ValueError("a sample's weights are positive numbers")
        return Sample(columns, weights)


def draw(df: pd.DataFrame, names: list[str], rows: int = ROWS, rng: np.random.Generator | None = None) -> Sample:
    """Up to `rows` rows of those columns of `df`, uniformly, without replacement."""
    rng = rng or np.random.default_rng()
    kept = min(rows, len(df))
    chosen = np.sort(rng.choice(len(df), kept, replace=False)) if kept < len(df) else np.arange(kept)
    return Sample({name: _plain(df[name].to_numpy()[chosen].tolist()) for name in names},
                  [len(df) / kept] * kept if kept else [])


def merged(a: Sample | None, b: Sample | None, cap: int = CAP, rng: np.random.Generator | None = None) -> Sample | None:
    """A uniform sample of both profiles' rows: each side thinned to the lower of the two sampling rates (and
    to `cap` rows in all), so that a row of either is as likely to be kept."""
    if a is None or b is None or not a.size or not b.size:
        return (a if a is not None and a.size else b) or a
    rng = rng or np.random.default_rng()
    rows_a, rows_b = a.represented, b.represented
    rate = min(a.size / rows_a, b.size / rows_b, cap / (rows_a + rows_b))
    keep_a, keep_b = min(a.size, round(rate * rows_a)), min(b.size, round(rate * rows_b))
    chosen_a = np.sort(rng.choice(a.size, keep_a, replace=False))
    chosen_b = np.sort(rng.choice(b.size, keep_b, replace=False))
    names = [name for name in a.columns if name in b.columns]
    kept = max(keep_a + keep_b, 1)
    return Sample({name: [a.columns[name][i] for i in chosen_a] + [b.columns[name][i] for i in chosen_b]
                   for name in names}, [(rows_a + rows_b) / kept] * (keep_a + keep_b))


def _plain(values: list) -> list:
    """Values as JSON holds them: numpy scalars as Python's, NaN, NA and infinities as None (missing)."""
    return [None if v is None or v is pd.NA or isinstance(v, float) and not math.isfinite(v)
            else v.item() if isinstance(v, np.generic) else v for v in values]
