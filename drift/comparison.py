"""compare(): per-column drift between a reference and a current data set, as Evidently's
DataDriftPreset computes it, with the reference prepared once and reusable."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from fleetscope.drift import embeddings, stattests, text_content, wasserstein
from fleetscope.drift.columns import ColumnKind, clean, infer_kind_and_counts
from fleetscope.drift.prepared import PreparedColumn
from fleetscope.drift.text_descriptors import descriptor_columns

COMPARABLE = (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL)
# Compared from rows only, and only where declared: a text column (its content by a domain classifier, and its
# descriptors as numerical columns) and an embedding column.
DECLARED_ONLY = (ColumnKind.TEXT, ColumnKind.EMBEDDING)


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
        # A text column's texts and its descriptors' columns; an embedding column's matrix.
        self.texts = {name: _texts(reference[name]) for name, kind in self.kinds.items() if kind is ColumnKind.TEXT}
        self.matrices = {name: _matrix(name, reference[name], "reference")
                         for name, kind in self.kinds.items() if kind is ColumnKind.EMBEDDING}
        described = _described(reference, self.kinds)
        names = [name for name, kind in self.kinds.items() if kind not in DECLARED_ONLY] + list(described)
        prepared = for_each_column(lambda name: PreparedColumn(described[name], ColumnKind.NUMERICAL) if name in
                                   described else PreparedColumn(reference[name], self.kinds[name]), names, workers)
        self.columns: dict[str, PreparedColumn] = dict(zip(names, prepared, strict=True))


def column_kinds(current: pd.DataFrame, numerical: Iterable[str] | None = None,
                 categorical: Iterable[str] | None = None, text: Iterable[str] | None = None,
                 embeddings: Iterable[str] | None = None) -> dict[str, ColumnKind]:
    """The declared columns only, when any list is given; otherwise every column, kinds inferred as
    Evidently infers them from the current data."""
    declared = {ColumnKind.NUMERICAL: list(numerical or ()), ColumnKind.CATEGORICAL: list(categorical or ()),
                ColumnKind.TEXT: list(text or ()), ColumnKind.EMBEDDING: list(embeddings or ())}
    if any(declared.values()):
        kinds: dict[str, ColumnKind] = {}
        for kind, names in declared.items():
            twice = sorted(name for name in names if name in kinds)
            if twice:
                raise ValueError(f"columns declared as two kinds: {twice}")
            kinds.update({name: kind for name in names})
        return kinds
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
            drift_share: float = 0.5, workers: int | None = None, text: Iterable[str] | None = None,
            embeddings: Iterable[str] | None = None) -> DriftResult:
    """Drift of each column of `current` against `reference`.

    With no `numerical`/`categorical` lists the kinds are inferred from `current`, as
    Evidently does. `methods` and `thresholds` are one value for every column or a mapping
    by column; columns not named get Evidently's default method and its default threshold.
    Pass a PreparedReference to reuse the reference's preparation across calls. Columns are
    compared in `workers` threads (default: one per CPU, at most one per column; 1 compares
    them in this thread); the result does not depend on how many.

    Declared `text` columns are compared by their content (text_content) and by each of their descriptors
    (text_descriptors), as numerical columns `<column>.<descriptor>`; declared `embeddings` (a vector per row)
    by an embedding drift method (embeddings). Text columns inferred, as Evidently infers them, are skipped.
    A single method or threshold (not a mapping) applies to the numerical and categorical columns only.
    """
    counted: dict[str, dict[object, int]] = {}  # value counts that inferring kinds made anyway
    declared = True
    if isinstance(reference, PreparedReference):
        kinds = reference.kinds
    elif numerical or categorical or text or embeddings:
        kinds = column_kinds(current, numerical, categorical, text, embeddings)
    else:
        kinds, counted = _infer(current)
        declared = False
    comparable = COMPARABLE + DECLARED_ONLY if declared else COMPARABLE
    skipped = {name: skip_reason(kind) for name, kind in kinds.items() if kind not in comparable}
    kinds = {name: kind for name, kind in kinds.items() if kind in comparable}
    for name in kinds:
        if name not in current.columns:
            raise ValueError(f"column {name!r} is not in the current data")
        if isinstance(reference, pd.DataFrame) and name not in reference.columns:
            raise ValueError(f"column {name!r} is not in the reference data")
    reference_matrices = (reference.matrices if isinstance(reference, PreparedReference) else
                          {name: _matrix(name, reference[name], "reference")
                           for name, kind in kinds.items() if kind is ColumnKind.EMBEDDING})
    matrices = _current_matrices(reference_matrices, current, kinds, skipped)
    kinds = {name: kind for name, kind in kinds.items() if name not in skipped}
    described = _described(current, kinds)
    clashing = sorted(set(described) & set(kinds))
    if clashing:
        raise ValueError(f"column {clashing[0]!r} is also the name of a text column's descriptor: rename it")
    described_reference = _described(reference, kinds) if isinstance(reference, pd.DataFrame) else {}
    compared = {name: ColumnKind.NUMERICAL if name in described else kind
                for name, kind in _with_descriptors(kinds, described).items()}

    def drift_of(name: str) -> ColumnDrift:
        kind = compared[name]
        if kind is ColumnKind.EMBEDDING:
            return _embedding_drift(name, reference_matrices[name], matrices.pop(name),
                                    _mapped(methods, name), _mapped(thresholds, name))
        if kind is ColumnKind.TEXT:
            return _text_drift(name, _reference_texts(reference, name), _texts(current[name]),
                               _mapped(methods, name), _mapped(thresholds, name))
        if name in described:
            reference_column = (reference.columns[name] if isinstance(reference, PreparedReference)
                                else PreparedColumn(described_reference[name], kind))
            return _column_drift(name, reference_column, PreparedColumn(described[name], kind),
                                 per_column(methods, name), per_column(thresholds, name))
        return _column_drift(name, _reference_column(reference, name, kind),
                             PreparedColumn(current[name], kind, counted.get(name)),
                             per_column(methods, name), per_column(thresholds, name))

    if {ColumnKind.EMBEDDING, ColumnKind.TEXT} & set(compared.values()):
        _import_classifiers()
    drifts = for_each_column(drift_of, list(compared), workers)
    return DriftResult({drift.column: drift for drift in drifts}, drift_share, skipped)


def _import_classifiers() -> None:
    """Imports the scikit-learn modules the embedding and text methods use, here, before the columns' threads: two
    threads importing scikit-learn for the first time at once can each find a module of its import cycle partly
    initialized (ImportError: cannot import name 'clone' from partially initialized module 'sklearn.base')."""
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.pipeline  # noqa: F401


def _current_matrices(reference_matrices: Mapping[str, np.ndarray], current: pd.DataFrame,
                      kinds: Mapping[str, ColumnKind], skipped: dict[str, str]) -> dict[str, np.ndarray]:
    """The current data's embedding columns as matrices. A column whose vectors differ in length, within the
    current data or from the reference's (a model that changed its embedding without declaring its dimension), is
    skipped with the reason instead: the other columns are still compared."""
    matrices = {}
    for name, kind in kinds.items():
        if kind is not ColumnKind.EMBEDDING:
            continue
        try:
            found = embeddings.matrix(current[name])
        except ValueError as error:
            skipped[name] = f"the current data's vectors cannot be compared: {error}"
            continue
        expected = reference_matrices[name].shape[1]
        if found.size and expected and found.shape[1] != expected:
            skipped[name] = (f"the current data's vectors have {found.shape[1]} components and the reference's "
                             f"{expected}: set the reference again for the new embedding, or declare its dimension "
                             "so that other vectors are refused when sent")
            continue
        matrices[name] = found
    return matrices


def _described(frame: pd.DataFrame, kinds: Mapping[str, ColumnKind]) -> dict[str, pd.Series]:
    """The descriptor columns of the frame's text columns, by name."""
    found: dict[str, pd.Series] = {}
    for name, kind in kinds.items():
        if kind is ColumnKind.TEXT:
            found.update(descriptor_columns(name, frame[name]))
    return found


def _with_descriptors(kinds: Mapping[str, ColumnKind], described: Mapping[str, pd.Series]) -> dict[str, ColumnKind]:
    """The kinds with each text column followed by its descriptors' columns."""
    ordered: dict[str, ColumnKind] = {}
    for name, kind in kinds.items():
        ordered[name] = kind
        if kind is ColumnKind.TEXT:
            ordered.update({descriptor: ColumnKind.NUMERICAL for descriptor in described
                            if descriptor.startswith(f"{name}.")})
    return ordered


def _texts(column: pd.Series) -> list[str]:
    return [value for value in clean(column).tolist() if isinstance(value, str)]


def _matrix(name: str, column: pd.Series, side: str) -> np.ndarray:
    try:
        return embeddings.matrix(column)
    except ValueError as error:
        raise ValueError(f"column {name!r} in the {side} data: {error}") from None


def _reference_texts(reference: pd.DataFrame | PreparedReference, name: str) -> list[str]:
    return reference.texts[name] if isinstance(reference, PreparedReference) else _texts(reference[name])


def _mapped(setting: Mapping[str, T] | T | None, name: str) -> T | None:
    """A setting for a text or embedding column: only one given for it by name."""
    return setting.get(name) if isinstance(setting, Mapping) else None


def _embedding_drift(name: str, reference: np.ndarray, current: np.ndarray, method: str | None,
                     threshold: float | None) -> ColumnDrift:
    if len(reference) == 0 or len(current) == 0:
        side = "reference" if len(reference) == 0 else "current"
        raise ValueError(f"column {name!r} has no vectors in the {side} data")
    chosen, scored = embeddings.score(method, reference, current, threshold)
    return ColumnDrift(name, ColumnKind.EMBEDDING, chosen.name, scored.score, scored.threshold, scored.drifted,
                       len(reference), len(current))


def _text_drift(name: str, reference: list[str], current: list[str], method: str | None,
                threshold: float | None) -> ColumnDrift:
    if len(reference) < 2 or len(current) < 2:
        side = "reference" if len(reference) < 2 else "current"
        raise ValueError(f"column {name!r} needs at least 2 texts in the {side} data to compare their content")
    test = text_content.get(method) if method else text_content.default_for(len(reference))
    threshold = test.default_threshold if threshold is None else float(threshold)
    score, drifted = text_content.drift(test, reference, current, threshold)
    return ColumnDrift(name, ColumnKind.TEXT, test.name, score, threshold, drifted, len(reference), len(current))


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
        try:
            return [_named(work, name) for name in names]
        finally:
            wasserstein.release()  # the caller's thread lives on; a pool's threads take their buffers with them
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
        return ("text column (more than half its values distinct); declare it categorical to compare it, or text "
                "to compare its content and descriptors")
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
