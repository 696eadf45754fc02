"""compare(): per-column drift between a reference and a current data set, as Evidently's
DataDriftPreset computes it, with the reference prepared once and reusable."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import pandas as pd

from fleetscope.drift import stattests
from fleetscope.drift.columns import ColumnKind, infer_kind_and_counts
from fleetscope.drift.prepared import PreparedColumn

COMPARABLE = (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: ColumnKind
    method: str
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    # Scores from profiles (compare_profiles) may come from sketches: then approximate, and error_bound is an
    # absolute bound on score (at the sketches' 99% confidence); 0 where exact.
    approximate: bool = False
    error_bound: float = 0.0

    @property
    def decided(self) -> bool:
        """Whether the drift decision holds anywhere within the error bound of the score."""
        return self.error_bound == 0 or abs(self.score - self.threshold) > self.error_bound


@dataclass(frozen=True)
class DriftResult:
    columns: dict[str, ColumnDrift]
    drift_share: float
    # Columns left out, with the reason: text (Evidently's text drift trains a classifier
    # and is not reproduced here), datetimes, or no values left after removing NaN.
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_count(self) -> int:
        return sum(drift.drifted for drift in self.columns.values())

    @property
    def drifted_share(self) -> float:
        return self.drifted_count / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drifted(self) -> bool:
        return bool(self.columns) and self.drifted_share >= self.drift_share


class PreparedReference:
    """A reference data set with every column cleaned, sorted and counted once."""

    def __init__(self, reference: pd.DataFrame, kinds: Mapping[str, ColumnKind], workers: int | None = None) -> None:
        self.rows = len(reference)
        self.kinds = dict(kinds)
        for name in self.kinds:
            if name not in reference.columns:
                raise ValueError(f"column {name!r} is not in the reference data")
        names = list(self.kinds)
        prepared = for_each_column(lambda name: PreparedColumn(reference[name], self.kinds[name]), names, workers)
        self.columns: dict[str, PreparedColumn] = dict(zip(names, prepared, strict=True))


def column_kinds(current: pd.DataFrame, numerical: Iterable[str] | None = None,
                 categorical: Iterable[str] | None = None) -> dict[str, ColumnKind]:
    """The declared columns only, when either list is given; otherwise every column, kinds inferred as
    Evidently infers them from the current data."""
    numerical, categorical = list(numerical or ()), list(categorical or ())
    if numerical or categorical:
        both = set(numerical) & set(categorical)
        if both:
            raise ValueError(f"columns declared both numerical and categorical: {sorted(both)}")
        return {**{name: ColumnKind.NUMERICAL for name in numerical},
                **{name: ColumnKind.CATEGORICAL for name in categorical}}
    return _infer(current)[0]


def _infer(current: pd.DataFrame) -> tuple[dict[str, ColumnKind], dict[str, dict[object, int]]]:
    kinds, counts = {}, {}
    for name in current.columns:
        kinds[str(name)], found = infer_kind_and_counts(current[name])
        if found is not None:
            counts[str(name)] = found
    return kinds, counts


def compare(reference: pd.DataFrame | PreparedReference, current: pd.DataFrame,
            numerical: Iterable[str] | None = None, categorical: Iterable[str] | None = None,
            methods: Mapping[str, str] | str | None = None,
            thresholds: Mapping[str, float] | float | None = None,
            drift_share: float = 0.5, workers: int | None = None) -> DriftResult:
    """Drift of each column of `current` against `reference`.

    With no `numerical`/`categorical` lists the kinds are inferred from `current`, as
    Evidently does. `methods` and `thresholds` are one value for every column or a mapping
    by column; columns not named get Evidently's default method and its default threshold.
    Pass a PreparedReference to reuse the reference's preparation across calls. Columns are
    compared in `workers` threads (default: one per CPU, at most one per column; 1 compares
    them in this thread); the result does not depend on how many.
    """
    counted: dict[str, dict[object, int]] = {}  # value counts that inferring kinds made anyway
    if isinstance(reference, PreparedReference):
        kinds = reference.kinds
    elif numerical or categorical:
        kinds = column_kinds(current, numerical, categorical)
    else:
        kinds, counted = _infer(current)
    skipped = {name: skip_reason(kind) for name, kind in kinds.items() if kind not in COMPARABLE}
    kinds = {name: kind for name, kind in kinds.items() if kind in COMPARABLE}
    for name in kinds:
        if name not in current.columns:
            raise ValueError(f"column {name!r} is not in the current data")
        if isinstance(reference, pd.DataFrame) and name not in reference.columns:
            raise ValueError(f"column {name!r} is not in the reference data")

    def drift_of(name: str) -> ColumnDrift:
        return _column_drift(name, _reference_column(reference, name, kinds[name]),
                             PreparedColumn(current[name], kinds[name], counted.get(name)),
                             per_column(methods, name), per_column(thresholds, name))

    drifts = for_each_column(drift_of, list(kinds), workers)
    return DriftResult({drift.column: drift for drift in drifts}, drift_share, skipped)


def _reference_column(reference: pd.DataFrame | PreparedReference, name: str, kind: ColumnKind) -> PreparedColumn:
    if isinstance(reference, PreparedReference):
        return reference.columns[name]
    # Prepared where it is compared, so that a window's columns are not all held sorted at once.
    return PreparedColumn(reference[name], kind)


R = TypeVar("R")


def for_each_column(work: Callable[[str], R], names: list[str], workers: int | None = None) -> list[R]:
    """work(name) for each column, in the columns' order, in up to `workers` threads.

    The tests spend their time in numpy's sorts and searches, which release the GIL, so
    threads share the CPUs. The first column to fail, in the columns' order, raises, named.
    """
    count = min(len(names), os.cpu_count() or 1) if workers is None else min(len(names), workers)
    if count <= 1:
        return [_named(work, name) for name in names]
    pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="fleetscope-compare")
    try:
        futures = [pool.submit(_named, work, name) for name in names]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _named(work: Callable[[str], R], name: str) -> R:
    with _about_column(name):
        return work(name)


@contextmanager
def _about_column(name: str) -> Iterator[None]:
    """Errors name the column they come from: a plain ValueError (a user's) in its message, others in a note."""
    try:
        yield
    except Exception as error:
        if repr(name) in str(error):
            raise
        if type(error) is ValueError:
            raise ValueError(f"column {name!r}: {error}") from error
        error.add_note(f"while comparing column {name!r}")
        raise


def skip_reason(kind: ColumnKind) -> str:
    if kind is ColumnKind.TEXT:
        return "text column (more than half its values distinct); declare it categorical to compare it"
    return "neither numerical nor categorical (datetime, list, or empty)"


T = TypeVar("T", str, float)


def per_column(setting: Mapping[str, T] | T | None, name: str) -> T | None:
    if isinstance(setting, Mapping):
        return setting.get(name)
    return setting


def _column_drift(name: str, reference: PreparedColumn, current: PreparedColumn,
                  method: str | None, threshold: float | None) -> ColumnDrift:
    if reference.size == 0:
        raise ValueError(f"column {name!r} has no values in the reference data once NaN and infinities are removed")
    if current.size == 0:
        raise ValueError(f"column {name!r} has no values in the current data once NaN and infinities are removed")
    test = stattests.get(method, reference.kind) if method else stattests.default_for(reference, current)
    threshold = test.default_threshold if threshold is None else float(threshold)
    score = test.score(reference, current)
    return ColumnDrift(name, reference.kind, test.name, score, threshold, test.drifted(score, threshold),
                       reference.size, current.size)
