"""Column kinds and cleaning, exactly as Evidently 0.7 infers and cleans them.

Evidently infers a column's kind from the *current* data set (the Report's first input):
float columns are numerical; integer columns are categorical up to 10 distinct values and
numerical above; strings are categorical unless more than half the values are distinct
(then text); bool and pandas categories are categorical. Before any statistic, infinities
become NaN and NaNs are dropped, per column.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

# evidently.core.datasets.INTEGER_CARDINALITY_LIMIT
INTEGER_CARDINALITY_LIMIT = 10


class ColumnKind(enum.StrEnum):
    # The values are Evidently's ColumnType values.
    NUMERICAL = "num"
    CATEGORICAL = "cat"
    TEXT = "text"
    # fleetscope's own: fixed-length vectors, compared by Evidently's embedding drift methods (drift/embeddings.py).
    # Never inferred (Evidently takes an embedding as a list of numerical columns, named as one); declared only.
    EMBEDDING = "embedding"
    OTHER = "other"  # datetimes, lists, empty columns: never compared


def parse_kind(value: str) -> ColumnKind:
    aliases = {"num": ColumnKind.NUMERICAL, "numerical": ColumnKind.NUMERICAL,
               "cat": ColumnKind.CATEGORICAL, "categorical": ColumnKind.CATEGORICAL,
               "text": ColumnKind.TEXT, "embedding": ColumnKind.EMBEDDING}
    try:
        return aliases[value]
    except KeyError:
        raise ValueError(f"column kind {value!r} is not one of numerical, categorical, text or embedding") from None


def infer_kind_and_counts(column: pd.Series) -> tuple[ColumnKind, dict[object, int] | None]:
    """The kind, and the value counts where inferring a string column had to count them anyway."""
    dtype = column.dtype.name
    if dtype.startswith("float"):
        return ColumnKind.NUMERICAL, None
    if dtype.startswith("int"):
        return (ColumnKind.CATEGORICAL if column.nunique() <= INTEGER_CARDINALITY_LIMIT
                else ColumnKind.NUMERICAL), None
    if dtype in ("string", "str"):
        return _strings_kind(column)
    if dtype == "object":
        ends = _first_and_last_present(column)
        if ends is not None and isinstance(ends[0], str) and isinstance(ends[1], str):
            return _strings_kind(column)
        return ColumnKind.OTHER, None
    if dtype in ("bool", "category"):
        return ColumnKind.CATEGORICAL, None
    return ColumnKind.OTHER, None


def _first_and_last_present(column: pd.Series) -> tuple[object, object] | None:
    """column.dropna().iloc[[0, -1]], None when nothing is present, without the two passes over every value
    that dropping NaN takes where the first and last values are present (almost always)."""
    values = column.to_numpy()
    if len(values) and not _missing(values[0]) and not _missing(values[-1]):
        return values[0], values[-1]
    present = values[pd.notna(values)]
    return (present[0], present[-1]) if len(present) else None


def _missing(value: object) -> bool:
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _strings_kind(column: pd.Series) -> tuple[ColumnKind, dict[object, int]]:
    counts = dict(category_counts(column))  # nunique() and count() in one pass
    return (ColumnKind.TEXT if len(counts) > sum(counts.values()) * 0.5 else ColumnKind.CATEGORICAL), counts


def category_counts(column: pd.Series) -> Iterable[tuple[object, int]]:
    """(value, occurrences) of the values present, as column.value_counts(dropna=True) gives them, in the order the
    values first appear (column.dropna().unique()'s order, which the order of Evidently's sums follows).

    Text is counted by factorizing once and counting the codes, about 1.5x faster than value_counts() on Python
    objects (whose hashing holds the GIL, so it is what a window's categorical columns wait on in threads); booleans
    by counting the true ones."""
    values = column.to_numpy() if isinstance(column.dtype, np.dtype) else None
    if values is not None and values.dtype == np.bool_:
        trues = int(np.count_nonzero(values))
        counted = ((True, trues), (False, values.size - trues))
        return [(value, count) for value, count in (counted[::-1] if trues and not values[0] else counted) if count]
    if values is not None and values.dtype == object:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        if codes.size and codes.min() < 0:
            codes = codes[codes >= 0]
        return zip(uniques.tolist(), np.bincount(codes, minlength=uniques.size).tolist(), strict=True)
    counts = column.value_counts(dropna=True, sort=False)  # in the order of appearance, but for a Categorical's
    return ((value, counts[value]) for value in column.dropna().unique()) if column.dtype == "category" \
        else counts.items()


def clean(column: pd.Series) -> pd.Series:
    """The column without NaN, None and infinities (Evidently drops them before testing)."""
    if column.dtype.kind in "iub":
        return column
    if column.dtype.kind == "f":
        values = column.to_numpy()
        finite = np.isfinite(values)
        return column if finite.all() else column[finite]
    if column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) == "string":
        return column.dropna() if column.hasnans else column  # strings hold no infinities
    return column.replace([-np.inf, np.inf], np.nan).dropna()


def category_text(value: object) -> str | None:
    """A category as the drift service stores it: text, integers as their digits, booleans as "true" and
    "false", None for a missing value. Floats with a whole value (an integer column read as floats) count as
    integers. TypeError for anything else: categories are strings, integers or booleans."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    raise TypeError(f"{value!r} is not a category (categorical values are strings, integers or booleans)")


# Limits.max_embedding_dimensions and Limits.max_text_length by default (fleetscope.drift.service.config).
DEFAULT_MAX_EMBEDDING_DIMENSIONS = 4096
DEFAULT_MAX_TEXT_LENGTH = 65_536


class ColumnSchema(dict[str, ColumnKind]):
    """A model's columns and their kinds, with what the values of its embedding and text columns must be:
    each embedding column's declared dimension (where declared), else the dimension of the model's reference
    (where one is set), the most dimensions and the longest text."""

    def __init__(self, kinds: Mapping[str, ColumnKind], dimensions: Mapping[str, int] | None = None,
                 max_dimensions: int = DEFAULT_MAX_EMBEDDING_DIMENSIONS,
                 max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
                 reference_dimensions: Mapping[str, int] | None = None) -> None:
        super().__init__(kinds)
        self.dimensions = dict(dimensions or {})
        self.max_dimensions = max_dimensions
        self.max_text_length = max_text_length
        self.reference_dimensions = {name: size for name, size in (reference_dimensions or {}).items()
                                     if name not in self.dimensions}

    def expected_dimension(self, name: str) -> tuple[int | None, str]:
        """The length an embedding column's vectors must have, and where it comes from ("" where nothing sets
        it: the batch's first vector then does)."""
        if name in self.dimensions:
            return self.dimensions[name], "its declared dimension"
        if name in self.reference_dimensions:
            return self.reference_dimensions[name], "the reference's dimension"
        return None, ""

    def with_reference(self, reference_dimensions: Mapping[str, int]) -> ColumnSchema:
        """These columns, expecting the reference's dimension of each embedding column that declares none."""
        return ColumnSchema(self, self.dimensions, self.max_dimensions, self.max_text_length, reference_dimensions)


def value_rules(columns: Mapping[str, ColumnKind]) -> ColumnSchema:
    """The schema's rules for embedding and text values: its own where it is a ColumnSchema, the defaults else."""
    return columns if isinstance(columns, ColumnSchema) else ColumnSchema(columns)
