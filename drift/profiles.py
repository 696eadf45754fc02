"""Profiles: a batch of model outputs summarized per column, small, mergeable and versioned.

A replica profiles what it served in an interval and sends the profile instead of the rows; the
service merges profiles, and compare_profiles() scores drift from them (fleetscope.drift.profile_comparison).

Per column a profile keeps the count of missing values (NaN, None and infinities, which compare() drops
as Evidently does) and, for the rest:

- exact value counts while the column has at most EXACT_DISTINCT distinct values: every count-based
  test is then exact, and so is every test at all while the column's rows are few enough to expand;
- for numerical columns, also the exact count, minimum, maximum, mean and sum of squared deviations
  (merged by Chan's formula), a KLL quantile sketch (Apache DataSketches), whose rank error is the
  only approximation once the exact counts are dropped, and (since format version 2) exact counts in
  logarithmic buckets (fleetscope.drift.log_buckets), which bound the sketch's error where values lie far
  apart (heavy tails);
- for categorical columns, exact value counts up to a limit of distinct values, profile()'s exact_categories=
  (EXACT_CATEGORIES by default; format version 3 holds up to V3_EXACT_CATEGORIES of them, version 5 more, and
  EXACT_DISTINCT before version 3), which keeps every count-based test exact on columns of many categories, and
  past that a frequent-items sketch of the values in place of the counts;
- for embedding columns (since format version 4), the count of vectors and their per-component sum
  (fleetscope.drift.embedding_profiles), merged by addition;
- for text columns, no column of their own: each text's descriptors are profiled as the numerical columns
  `<column>.<descriptor>` (fleetscope.drift.text_profiles).

A column's kind is decided at comparison time from the current profile, by Evidently's rules (an integer
column with at most 10 distinct values is categorical), so replicas need not agree on it in advance.
Declared kinds (numerical=, categorical=) override inference, as in compare().
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import datasketches
import numpy as np
import pandas as pd

from fleetscope.drift import embedding_profiles, log_buckets, samples, sketch_bytes, text_profiles
from fleetscope.drift.columns import (
    DEFAULT_MAX_EMBEDDING_DIMENSIONS,
    DEFAULT_MAX_TEXT_LENGTH,
    INTEGER_CARDINALITY_LIMIT,
    ColumnKind,
    category_text,
)
from fleetscope.drift.samples import Sample
from fleetscope.log import quoted

FORMAT_VERSION = 5
# Versions this fleetscope reads: 1 (no buckets: the score's bound is the sketch's alone), 2 (buckets), 3 (a
# categorical column's exact counts up to V3_EXACT_CATEGORIES values), 4 (embedding columns' sum vectors), 5 (a
# categorical column's exact counts up to MAX_EXACT_CATEGORIES values). A profile is written in the lowest version
# that holds it (2 unless a categorical column counts more than EXACT_DISTINCT values or an embedding column is
# profiled), so that a fleetscope reading versions 1 to 4 still reads what it can, and refuses what it cannot as a
# version it does not support rather than misread it.
READABLE_VERSIONS = (1, 2, 3, 4, 5)
MAGIC = b"FSPF"
# Distinct values counted exactly. Above Evidently's limits that matter (5 for choosing a test, 10 for an
# integer column's kind, 20 for binning, 1,000 reference rows for the test), so that each is decided
# exactly; and a reference of up to 1,000 rows is kept whole, which makes its tests exact.
EXACT_DISTINCT = 1000
# Distinct categories counted exactly by default (profile()'s and merge()'s exact_categories=; the service's
# limits.max_exact_categories): jensenshannon and hellinger are exact up to here, where a frequent-items sketch's
# bound (its untracked share of the rows) would be too wide to decide on long tails (issue 40). A column of many
# short categories costs about 3-9 bytes a category compressed (benchmarks/profile_accuracy.py).
EXACT_CATEGORIES = 100_000
# The most categories format versions 3 and 4 count exactly: a profile counting more is written as version 5.
V3_EXACT_CATEGORIES = 10_000
# The most categories any profile counts exactly (version 5), whatever exact_categories= asks.
MAX_EXACT_CATEGORIES = 1_000_000
# KLL's k: DataSketches' default. Its normalized rank error is 1.65% (99% confidence, over all ranks).
DEFAULT_K = 200
# Frequent-items sketch size (log2 of its map): tracks up to 768 values, error 3.5/1024 of the rows.
FREQUENT_LG_MAP_SIZE = 10
# A profile's body is at most this large once decompressed: a small request cannot become a large one.
MAX_DECODED_BYTES = 64 * 1024 * 1024
# Any count a profile holds (rows, missing values, one value's occurrences): float64 counts them exactly, and the
# sums of many profiles stay far inside SQLite's 64-bit integers.
MAX_COUNT = 2 ** 50
# KLL's k, as DataSketches allows it.
MIN_K, MAX_K = 8, 65535
# A categorical value in a profile's counts, sample or frequent-items sketch (as JSON there): the service holds
# categories to limits.max_category_length, checked against the model when the profile is declared.
MAX_ITEM_BYTES = 8192

FAMILIES = ("float", "int", "bool", "string", "category", "other", "vector")  # vector: format version 4


class ProfileError(ValueError):
    """A profile that cannot be built, merged or read; the message says which column and why. `reason`: where the
    rows themselves would be refused by the service's ingest, the reason it gives (ragged, too_long, ...)."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ColumnProfile:
    family: str  # the column's dtype family, from which its kind is inferred; one of FAMILIES
    declared: ColumnKind | None
    rows: int = 0  # values present (not missing)
    missing: int = 0
    counts: dict | None = field(default_factory=dict)  # value -> count; None past count_limit() values
    # Numerical summary (numeric families, or declared numerical): exact but for the sketch.
    minimum: float = math.inf
    maximum: float = -math.inf
    mean: float = 0.0
    squared_deviations: float = 0.0
    sketch: datasketches.kll_doubles_sketch | None = None
    frequent: datasketches.frequent_strings_sketch | None = None  # categorical values past exact_categories
    # Numerical values counted in logarithmic buckets; None in a profile of format version 1 and any merge of one.
    buckets: log_buckets.LogBuckets | None = None
    # An embedding column's per-component sum of its `rows` vectors (empty while it has none); None for the others.
    vector_sum: np.ndarray | None = None

    @property
    def embedding(self) -> bool:
        return self.vector_sum is not None

    @property
    def numeric(self) -> bool:
        return self.sketch is not None

    @property
    def distinct(self) -> int | None:
        """Distinct values, or None when there are more than count_limit()."""
        return None if self.counts is None else len(self.counts)

    def count_limit(self, exact_categories: int | None = None) -> int:
        """The most distinct values counted exactly: EXACT_DISTINCT numbers, exact_categories categories
        (EXACT_CATEGORIES where None)."""
        return EXACT_DISTINCT if self.numeric else category_limit(exact_categories)

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default), as compare() takes it."""
        return math.sqrt(self.squared_deviations / self.rows) if self.rows else 0.0

    def kind(self) -> ColumnKind:
        """The kind compare() would infer from this column's data (Evidently's rules), or the declared one."""
        if self.declared is not None:
            return self.declared
        if self.rows == 0 or self.family == "other":
            return ColumnKind.OTHER
        if self.family == "float":
            return ColumnKind.NUMERICAL
        distinct = self.distinct
        if self.family == "int":
            few = distinct is not None and distinct <= INTEGER_CARDINALITY_LIMIT
            return ColumnKind.CATEGORICAL if few else ColumnKind.NUMERICAL
        if self.family == "string":  # text when more than half the values are distinct
            return ColumnKind.TEXT if distinct is None or distinct > self.rows * 0.5 else ColumnKind.CATEGORICAL
        return ColumnKind.CATEGORICAL


@dataclass
class Profile:
    """Columns by name; merge() profiles of the same columns from any replicas and intervals."""

    columns: dict[str, ColumnProfile]
    k: int = DEFAULT_K
    sample: Sample | None = None  # some of the rows themselves, for a report drawn from a sample

    @property
    def rows(self) -> int:
        return max((c.rows + c.missing for c in self.columns.values()), default=0)

    def merge(self, other: Profile, sample_cap: int = samples.CAP, exact_categories: int | None = None) -> Profile:
        """A new profile of both; neither is changed. Its sample keeps at most sample_cap rows. A categorical
        column of more than exact_categories categories (EXACT_CATEGORIES where None) merged becomes a
        frequent-items sketch."""
        return self._merged(other, in_place=False, sample_cap=sample_cap, exact_categories=exact_categories)

    def absorb(self, other: Profile, sample_cap: int = samples.CAP, exact_categories: int | None = None) -> None:
        """Merges `other` into this profile, reusing its sketches: for accumulating many profiles into one
        that nothing else holds (merging copies every sketch). Its sample keeps at most sample_cap rows."""
        merged = self._merged(other, in_place=True, sample_cap=sample_cap, exact_categories=exact_categories)
        self.columns, self.k, self.sample = merged.columns, merged.k, merged.sample

    def _merged(self, other: Profile, in_place: bool, sample_cap: int = samples.CAP,
                exact_categories: int | None = None) -> Profile:
        limit = category_limit(exact_categories)
        if set(self.columns) != set(other.columns):
            raise ProfileError(f"profiles of different columns cannot merge: {quoted(sorted(self.columns))} and "
                               f"{quoted(sorted(other.columns))}")
        for name, column in self.columns.items():  # all checked before any sketch is merged in place
            _check_mergeable(name, column, other.columns[name])
        return Profile({name: _merge_columns(name, column, other.columns[name], in_place, limit)
                        for name, column in self.columns.items()}, min(self.k, other.k),
                       samples.merged(self.sample, other.sample, sample_cap))

    def to_bytes(self) -> bytes:
        return encode(self)

    @staticmethod
    def from_bytes(data: bytes) -> Profile:
        return decode(data)


def merge_all(profiles: Iterable[Profile], exact_categories: int | None = None) -> Profile:
    """One profile of them all; none of them is changed. Categories counted exactly as merge() counts them."""
    merged: Profile | None = None
    for count, profile_ in enumerate(profiles):
        if merged is None:
            merged = profile_
        elif count == 1:
            merged = merged.merge(profile_, exact_categories=exact_categories)  # the first copy: the rest merge into it
        else:
            merged.absorb(profile_, exact_categories=exact_categories)
    if merged is None:
        raise ProfileError("no profiles to merge")
    return merged


def category_limit(exact_categories: int | None = None) -> int:
    """The most categories a categorical column counts exactly: exact_categories, EXACT_CATEGORIES where None."""
    if exact_categories is None:
        return EXACT_CATEGORIES
    if not isinstance(exact_categories, int) or isinstance(exact_categories, bool) \
            or not 1 <= exact_categories <= MAX_EXACT_CATEGORIES:
        raise ProfileError(f"exact_categories must be a whole number from 1 to {MAX_EXACT_CATEGORIES}, not "
                           f"{quoted(exact_categories)}")
    return exact_categories


# -- building ----------------------------------------------------------------------------------------------------

def profile(df: pd.DataFrame, numerical: Iterable[str] | None = None, categorical: Iterable[str] | None = None,
            k: int = DEFAULT_K, uncounted: Iterable[str] = (), sample_rows: int = samples.ROWS,
            text: Iterable[str] = (), embeddings: Iterable[str] = (),
            max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
            max_dimensions: int = DEFAULT_MAX_EMBEDDING_DIMENSIONS, exact_categories: int | None = None) -> Profile:
    """A profile of every column of `df`, or of the declared columns only when any list is given.

    uncounted: numerical columns whose exact value counts are not kept (the profile this one will merge into
    has more than EXACT_DISTINCT values already), which saves sorting them.
    sample_rows: rows kept as they are (fleetscope.drift.samples), 0 for none; embedding columns are not sampled.
    text: columns of texts, profiled as their descriptors' numerical columns `<column>.<descriptor>`, each text at
    most max_text_length characters. embeddings: columns of vectors (lists or arrays of numbers, None for none),
    profiled as their count and sum, at most max_dimensions components. exact_categories: the most categories a
    categorical column counts exactly (EXACT_CATEGORIES where None), a frequent-items sketch of them past it. Values
    rows ingest would refuse raise ProfileError, whose `reason` is the reason that ingest gives."""
    numerical, categorical, text, embedded = list(numerical or ()), list(categorical or ()), list(text), \
        list(embeddings)
    both = set(numerical) & set(categorical)
    if both:
        raise ProfileError(f"columns declared both numerical and categorical: {sorted(both)}")
    listed = numerical + categorical + text + embedded
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if twice:
        raise ProfileError(f"columns declared as two kinds: {twice}")
    for name in text + embedded:
        if name not in df.columns:
            raise ProfileError(f"column {name!r} is not in the data")
    if text:
        try:
            df = text_profiles.described(df, text, max_text_length)
        except text_profiles.TextError as error:
            raise ProfileError(str(error), error.reason) from None
        numerical += [name for column in text for name in text_profiles.descriptor_names(column)]
    declared = {**{n: ColumnKind.NUMERICAL for n in numerical}, **{n: ColumnKind.CATEGORICAL for n in categorical},
                **{n: ColumnKind.EMBEDDING for n in embedded}}
    names = list(declared) if declared else [str(name) for name in df.columns]
    for name in names:
        if name not in df.columns:
            raise ProfileError(f"column {name!r} is not in the data")
    if not 8 <= k <= 65535:
        raise ProfileError(f"k must be between 8 and 65535, not {k}")
    uncounted, limit = set(uncounted), category_limit(exact_categories)
    columns = {name: _profile_embedding(name, df[name], max_dimensions) if name in embedded else
               _profile_column(name, df[name], declared.get(name), k, name not in uncounted, limit)
               for name in names}
    sampled = [name for name in names if name not in embedded]
    return Profile(columns, k, samples.draw(df, sampled, sample_rows) if sample_rows else None)


def _profile_embedding(name: str, column: pd.Series, max_dimensions: int) -> ColumnProfile:
    try:
        rows, missing, total = embedding_profiles.summarize(name, column, max_dimensions)
    except embedding_profiles.VectorError as error:
        raise ProfileError(str(error), error.reason) from None
    return ColumnProfile("vector", ColumnKind.EMBEDDING, rows, missing, counts=None, vector_sum=total)


def _family(column: pd.Series) -> str:
    kind = column.dtype.kind
    if kind == "f":
        return "float"
    if kind in "iu":
        return "int"
    if kind == "b":
        return "bool"
    if column.dtype.name == "category":
        return "category"
    if column.dtype.name in ("string", "str") or (
            column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) == "string"):
        return "string"
    return "other"


def _profile_column(name: str, column: pd.Series, declared: ColumnKind | None, k: int,
                    counted: bool = True, exact_categories: int = EXACT_CATEGORIES) -> ColumnProfile:
    family = _family(column)
    numeric = declared is ColumnKind.NUMERICAL or (declared is None and family in ("float", "int"))
    if numeric:
        if family == "other" and column.isna().all():  # nothing but missing values: no type to read
            column, family = column.astype(np.float64), "float"
        if family not in ("float", "int"):
            raise ProfileError(f"column {name!r} should contain numerical values only")
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[np.isfinite(values)]
        sketch = datasketches.kll_doubles_sketch(k)
        result = ColumnProfile(family, declared, rows=int(finite.size), missing=int(values.size - finite.size),
                               sketch=sketch, buckets=log_buckets.build(finite))
        if finite.size:
            result.minimum, result.maximum = float(finite.min()), float(finite.max())
            result.mean = float(finite.mean())
            result.squared_deviations = float(np.sum((finite - result.mean) ** 2))
            sketch.update(finite)
            result.counts = None
            if counted:
                uniques, occurrences = np.unique(finite, return_counts=True)
                if uniques.size <= EXACT_DISTINCT:
                    result.counts = dict(zip(uniques.tolist(), occurrences.tolist(), strict=True))
        return result
    counts = {_plain(value): int(count) for value, count in _value_counts(column, family)
              if count and not (isinstance(value, float) and math.isinf(value))}
    rows = sum(counts.values())
    result = ColumnProfile(family, declared, rows=rows, missing=len(column) - rows)
    if len(counts) > exact_categories:
        result.counts, result.frequent = None, _frequent(counts)
    else:
        result.counts = counts
    return result


def _value_counts(column: pd.Series, family: str) -> Iterable[tuple[object, int]]:
    """(value, count) of the values present. Text is counted by Counter, many times faster than value_counts()
    on Python objects; None and NaN (each NaN object apart, as NaN != NaN) are left out after."""
    if family == "string" and column.dtype == object:
        counts = Counter(column.to_numpy().tolist())
        return [(value, count) for value, count in counts.items() if value is not None and value == value]
    return column.value_counts(dropna=True).items()


def _plain(value: object) -> object:
    """numpy scalars as Python's, so that counts compare and serialize alike whatever built them."""
    return value.item() if isinstance(value, np.generic) else value


def _capped(counts: dict, limit: int = EXACT_DISTINCT) -> dict | None:
    return counts if len(counts) <= limit else None


def _frequent(counts: Mapping) -> datasketches.frequent_strings_sketch:
    sketch = datasketches.frequent_strings_sketch(FREQUENT_LG_MAP_SIZE)
    for value, count in counts.items():
        sketch.update(_key(value), count)
    return sketch


def _key(value: object) -> str:
    """A categorical value as the frequent-items sketch holds it: JSON keeps 1, 1.0, True and "1" apart."""
    return json.dumps(value)


def frequent_lower_bounds(column: ColumnProfile) -> dict:
    """The values a frequent-items sketch reports, each with a count it certainly reached (its lower bound)."""
    if column.frequent is None:
        raise ProfileError("the column has no frequent-items sketch")
    rows = column.frequent.get_frequent_items(datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES)
    return {json.loads(item): int(lower) for item, _, lower, _ in rows if lower > 0}


@dataclass(frozen=True)
class FrequentBounds:
    """What a frequent-items sketch says of every value's count, deterministically (Misra-Gries with an offset):
    each value it tracks occurred from lower[v] to upper[v] times, every other at most untracked_max times."""

    lower: dict
    upper: dict
    untracked_max: int


def frequent_bounds(column: ColumnProfile) -> FrequentBounds:
    if column.frequent is None:
        raise ProfileError("the column has no frequent-items sketch")
    rows = column.frequent.get_frequent_items(datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
    lower: dict = {}
    upper: dict = {}
    for item, _, low, high in rows:  # items that read as one value ("1" and "1.0") count for it together
        value = json.loads(item)
        lower[value], upper[value] = lower.get(value, 0) + max(int(low), 0), upper.get(value, 0) + int(high)
    # The sketch's offset (its maximum error): every tracked value's upper bound less its lower, and a bound on any
    # value it does not track. Without tracked values nothing is known of any value but the total.
    offset = max((high - low for _, _, low, high in rows), default=int(column.frequent.total_weight))
    return FrequentBounds(lower, upper, int(offset))


# -- merging -----------------------------------------------------------------------------------------------------

def _check_mergeable(name: str, a: ColumnProfile, b: ColumnProfile) -> None:
    if a.declared != b.declared:
        raise ProfileError(f"column {quoted(name)} is declared {_said(a.declared)} in one profile and "
                           f"{_said(b.declared)} in the other")
    _merged_family(name, a, b)
    if a.numeric != b.numeric:
        raise ProfileError(f"column {quoted(name)} is numerical in one profile and categorical in the other")
    if a.vector_sum is not None and b.vector_sum is not None and a.vector_sum.size and b.vector_sum.size \
            and a.vector_sum.size != b.vector_sum.size:
        raise ProfileError(f"column {quoted(name)}: vectors of {a.vector_sum.size} components in one profile and "
                           f"{b.vector_sum.size} in the other; an embedding column keeps one dimension")


def _merge_columns(name: str, a: ColumnProfile, b: ColumnProfile, in_place: bool = False,
                   exact_categories: int | None = None) -> ColumnProfile:
    """The two columns merged; _check_mergeable() has passed."""
    merged = ColumnProfile(_merged_family(name, a, b), a.declared, rows=a.rows + b.rows, missing=a.missing + b.missing,
                           counts=_merged_counts(a.counts, b.counts, a.count_limit(exact_categories)))
    if a.vector_sum is not None and b.vector_sum is not None:
        merged.vector_sum = embedding_profiles.merged(a.vector_sum, b.vector_sum)
    elif a.numeric:
        assert a.sketch is not None and b.sketch is not None
        merged.minimum, merged.maximum = min(a.minimum, b.minimum), max(a.maximum, b.maximum)
        merged.mean, merged.squared_deviations = _merged_moments(a, b)
        merged.sketch = a.sketch if in_place else _copy_kll(a.sketch)
        merged.sketch.merge(b.sketch)
        if a.buckets is not None and b.buckets is not None:
            merged.buckets = log_buckets.merge(a.buckets, b.buckets)
    elif merged.counts is None:
        merged.frequent = _merged_frequent(a, b, in_place)
    return merged


def _said(kind: ColumnKind | None) -> str:
    return "neither numerical nor categorical" if kind is None else kind.name.lower()


def _merged_family(name: str, a: ColumnProfile, b: ColumnProfile) -> str:
    if a.family == b.family:
        return a.family
    # A replica whose batch held only whole numbers read a float column as integers.
    if {a.family, b.family} == {"int", "float"}:
        return "float"
    # A column all missing in one batch has no type there.
    if a.rows == 0 and a.family == "other":
        return b.family
    if b.rows == 0 and b.family == "other":
        return a.family
    raise ProfileError(f"column {quoted(name)} holds {a.family} values in one profile and {b.family} in the other")


def _merged_counts(a: dict | None, b: dict | None, limit: int = EXACT_DISTINCT) -> dict | None:
    if a is None or b is None:
        return None
    merged = dict(a)
    for value, count in b.items():
        merged[value] = merged.get(value, 0) + count
    return _capped(merged, limit)


def _merged_moments(a: ColumnProfile, b: ColumnProfile) -> tuple[float, float]:
    """Chan, Golub and LeVeque's pairwise update of the mean and the sum of squared deviations."""
    rows = a.rows + b.rows
    if rows == 0:
        return 0.0, 0.0
    delta = b.mean - a.mean
    mean = a.mean + delta * b.rows / rows
    return mean, a.squared_deviations + b.squared_deviations + delta * delta * a.rows * b.rows / rows


def _copy_kll(sketch: datasketches.kll_doubles_sketch) -> datasketches.kll_doubles_sketch:
    return datasketches.kll_doubles_sketch.deserialize(sketch.serialize())


def _merged_frequent(a: ColumnProfile, b: ColumnProfile, in_place: bool) -> datasketches.frequent_strings_sketch:
    if a.frequent is not None:
        return _add_to_frequent(a.frequent if in_place else _copy_frequent(a.frequent), b)
    return _add_to_frequent(_frequent(a.counts or {}), b)


def _add_to_frequent(merged: datasketches.frequent_strings_sketch,
                     b: ColumnProfile) -> datasketches.frequent_strings_sketch:
    if b.frequent is None:
        for value, count in (b.counts or {}).items():
            merged.update(_key(value), count)
    else:
        merged.merge(b.frequent)
    return merged


def _copy_frequent(sketch: datasketches.frequent_strings_sketch) -> datasketches.frequent_strings_sketch:
    return datasketches.frequent_strings_sketch.deserialize(sketch.serialize())


# -- the wire format ---------------------------------------------------------------------------------------------
#
# MAGIC, a version byte, then a zlib-compressed body: a 4-byte length and that much JSON (the columns'
# exact fields; categorical counts as two lists, values and counts, at most EXACT_DISTINCT before version 3,
# V3_EXACT_CATEGORIES in versions 3 and 4 and MAX_EXACT_CATEGORIES from version 5), then, in the JSON's column
# order, each column's blobs, each a 4-byte length and its bytes: a numerical column's counts ("counts": "binary": its
# values as float64, then their counts as int64, little-endian), its buckets ("buckets": "binary", version 2:
# fleetscope.drift.log_buckets.encode), then its sketch (DataSketches' KLL or frequent-items serialization).

def encode(profile_: Profile) -> bytes:
    header: dict = {"k": profile_.k, "columns": [],
                    "sample": None if profile_.sample is None else profile_.sample.to_json()}
    blobs: list[bytes] = []
    for name, column in profile_.columns.items():
        entry: dict[str, Any] = {"name": name, "family": column.family, "rows": column.rows, "missing": column.missing,
                                 "declared": column.declared.value if column.declared else None}
        if column.counts is not None and column.numeric:
            entry["counts"] = "binary"
            blobs.append(np.fromiter(column.counts, np.float64, len(column.counts)).astype("<f8").tobytes()
                         + np.fromiter(column.counts.values(), np.int64, len(column.counts)).astype("<i8").tobytes())
        elif column.counts is not None:
            entry["counts"] = [list(column.counts), list(column.counts.values())]
        if column.numeric:
            entry.update(minimum=column.minimum, maximum=column.maximum, mean=column.mean,
                         squared_deviations=column.squared_deviations)
        if column.numeric and column.buckets is not None:
            entry["buckets"] = "binary"
            blobs.append(log_buckets.encode(column.buckets))
        if column.vector_sum is not None:
            entry["vector"] = "binary"
            blobs.append(embedding_profiles.encode(column.vector_sum))
        sketch = column.sketch if column.numeric else column.frequent
        entry["sketch"] = None if sketch is None else ("kll" if column.numeric else "frequent")
        if sketch is not None:
            blobs.append(sketch.serialize())
        header["columns"].append(entry)
    text = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    body = struct.pack("<I", len(text)) + text + b"".join(struct.pack("<I", len(blob)) + blob for blob in blobs)
    # zlib level 1: most of 6's size at a fraction of its time
    return MAGIC + bytes([written_version(profile_)]) + zlib.compress(body, 1)


def written_version(profile_: Profile) -> int:
    """The lowest format version that holds the profile: 5 where a categorical column counts more than
    V3_EXACT_CATEGORIES values, 4 where it has an embedding column, 3 where a categorical column counts more than
    EXACT_DISTINCT values, 2 otherwise (a merge with a version 1 profile has no buckets, which version 2 writes as
    none)."""
    counted = [len(column.counts) for column in profile_.columns.values()
               if column.counts is not None and not column.numeric]
    if any(distinct > V3_EXACT_CATEGORIES for distinct in counted):
        return 5
    if any(column.embedding for column in profile_.columns.values()):
        return 4
    return 3 if any(distinct > EXACT_DISTINCT for distinct in counted) else 2


def decode(data: bytes) -> Profile:
    """A profile read from bytes a client sent, checked whole: ProfileError saying what is wrong. Every count is a
    non-negative integer within MAX_COUNT, every summary statistic finite and consistent with the column's
    counts and sketch, and every sketch's layout checked before DataSketches reads it (fleetscope.drift.
    sketch_bytes), so that no profile that decodes can fail to merge or to compare for its form."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProfileError(f"a profile is bytes, not {type(data).__name__}")
    data = bytes(data)
    if data[:4] != MAGIC:
        raise ProfileError("not a fleetscope profile (it does not start with FSPF)")
    if len(data) < 5 or data[4] not in READABLE_VERSIONS:
        version = data[4] if len(data) > 4 else "none"
        raise ProfileError(f"profile format version {version} is not supported; this fleetscope reads "
                           f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    try:
        inflater = zlib.decompressobj()
        body = inflater.decompress(data[5:], MAX_DECODED_BYTES)
        if inflater.unconsumed_tail:
            raise ProfileError(f"profile is larger than {MAX_DECODED_BYTES} bytes once decompressed")
        (length,) = struct.unpack_from("<I", body, 0)
        header = json.loads(body[4:4 + length])
        offset = 4 + length
        if not isinstance(header, dict) or not isinstance(header.get("columns"), list):
            raise ProfileError("the profile's header is not an object with a list of columns")
        k = _whole(header.get("k"), "k", MIN_K, MAX_K)
        columns = {}
        for entry in header["columns"]:
            column, offset = _decoded_column(entry, body, offset, data[4])
            if entry["name"] in columns:
                raise ProfileError(f"column {quoted(entry['name'])} appears twice")
            columns[entry["name"]] = column
        if offset != len(body):
            raise ProfileError("profile has bytes after its last column")
        sample = header.get("sample")
        return Profile(columns, k, None if sample is None else _decoded_sample(sample, list(columns)))
    except ProfileError:
        raise
    except (zlib.error, struct.error, ValueError, KeyError, TypeError, RuntimeError, IndexError, OverflowError,
            RecursionError) as error:
        raise ProfileError(f"profile is damaged: {quoted(str(error))}") from None


def _decoded_column(entry: Any, body: bytes, offset: int, version: int = FORMAT_VERSION) -> \
        tuple[ColumnProfile, int]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ProfileError("a column of the profile is not an object with a name")
    name = entry["name"]
    family = entry.get("family")
    if family not in FAMILIES:
        raise ProfileError(f"column {quoted(name)}: unknown family {quoted(family)}")
    declared = None if entry.get("declared") is None else ColumnKind(entry["declared"])
    rows = _whole(entry.get("rows"), f"column {quoted(name)}: rows", 0, MAX_COUNT)
    missing = _whole(entry.get("missing"), f"column {quoted(name)}: missing", 0, MAX_COUNT)
    counts = None
    if entry.get("counts") == "binary":
        blob, offset = _blob(body, offset)
        counts = _binary_counts(name, blob)
    elif "counts" in entry:
        counts = _listed_counts(name, entry["counts"], _listed_limit(version))
    if counts is not None and sum(counts.values()) != rows:
        raise ProfileError(f"column {quoted(name)}: its value counts do not add up to its rows")
    column = ColumnProfile(family, declared, rows, missing, counts)
    if family == "vector" or "vector" in entry or declared is ColumnKind.EMBEDDING:
        return _decoded_embedding(name, entry, column, body, offset, version)
    buckets_blob = None
    if entry.get("buckets") is not None:
        if version < 2 or entry["buckets"] != "binary":
            raise ProfileError(f"column {quoted(name)}: buckets are binary, in profiles of format version 2")
        buckets_blob, offset = _blob(body, offset)
    kind = entry.get("sketch")
    if kind is not None:
        blob, offset = _blob(body, offset)
        try:
            if kind == "kll":
                column.sketch = sketch_bytes.kll(blob)
            elif kind == "frequent":
                column.frequent = sketch_bytes.frequent(blob, MAX_ITEM_BYTES)
            else:
                raise ProfileError(f"column {quoted(name)}: unknown sketch {quoted(kind)}")
        except sketch_bytes.SketchError as error:
            raise ProfileError(f"column {quoted(name)}: {error}") from None
    if column.sketch is not None:
        _check_numerical(name, column, entry)
        if buckets_blob is not None:
            try:
                column.buckets = log_buckets.decode(buckets_blob, rows, column.minimum, column.maximum, MAX_COUNT)
            except log_buckets.BucketsError as error:
                raise ProfileError(f"column {quoted(name)}: {error}") from None
    elif buckets_blob is not None:
        raise ProfileError(f"column {quoted(name)}: only a numerical column has buckets")
    elif column.frequent is not None:
        if counts is not None or column.frequent.total_weight != rows:
            raise ProfileError(f"column {quoted(name)}: its frequent-items sketch must weigh its rows, without counts")
    elif counts is None:
        raise ProfileError(f"column {quoted(name)} has neither counts nor a sketch")
    if counts is not None and column.numeric and len(counts) > EXACT_DISTINCT:
        raise ProfileError(f"column {quoted(name)}: a numerical column counts at most {EXACT_DISTINCT} values")
    return column, offset


def _listed_limit(version: int) -> int:
    """The most values a column's listed (categorical) counts hold in a profile of this format version."""
    if version >= 5:
        return MAX_EXACT_CATEGORIES
    return V3_EXACT_CATEGORIES if version >= 3 else EXACT_DISTINCT


def _decoded_embedding(name: str, entry: dict, column: ColumnProfile, body: bytes, offset: int,
                       version: int) -> tuple[ColumnProfile, int]:
    """An embedding column: its family, declared kind and sum vector, and nothing else."""
    if version < 4:
        raise ProfileError(f"column {quoted(name)}: embedding columns are in profiles of format version 4")
    if not (column.family == "vector" and column.declared is ColumnKind.EMBEDDING and entry.get("vector") == "binary"):
        raise ProfileError(f"column {quoted(name)}: an embedding column is of family vector, declared embedding, "
                           "with a binary sum vector")
    if any(entry.get(key) is not None for key in ("counts", "buckets", "sketch")):
        raise ProfileError(f"column {quoted(name)}: an embedding column has a sum vector only, no counts or sketch")
    blob, offset = _blob(body, offset)
    try:
        column.vector_sum = embedding_profiles.decode(blob, column.rows)
    except ValueError as error:
        raise ProfileError(f"column {quoted(name)}: {error}") from None
    column.counts = None
    return column, offset


def _check_numerical(name: str, column: ColumnProfile, entry: dict) -> None:
    """A numerical column's summary: finite statistics that agree with each other, its sketch and its counts."""
    assert column.sketch is not None
    if column.family not in ("float", "int"):
        raise ProfileError(f"column {quoted(name)} has a numerical sketch but holds {column.family} values")
    statistics = [entry.get(key) for key in ("minimum", "maximum", "mean", "squared_deviations")]
    numbers = [float(value) for value in statistics if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if len(numbers) != len(statistics):
        raise ProfileError(f"column {quoted(name)}: its minimum, maximum, mean and squared deviations are numbers")
    minimum, maximum, mean, deviations = numbers
    if column.sketch.n != column.rows:
        raise ProfileError(f"column {quoted(name)}: its sketch holds {column.sketch.n} values, not {column.rows}")
    if column.rows == 0:
        if (minimum, maximum, mean, deviations) != (math.inf, -math.inf, 0.0, 0.0):
            raise ProfileError(f"column {quoted(name)}: a column without values has no statistics")
        column.minimum, column.maximum = minimum, maximum
        return
    if not all(math.isfinite(value) for value in (minimum, maximum, mean, deviations)):
        raise ProfileError(f"column {quoted(name)}: its statistics must be finite")
    # The mean is computed in floating point: it may stray from [minimum, maximum] by rounding, no further.
    slack = 1e-9 * max(abs(minimum), abs(maximum), 1e-300)
    spread = (maximum - minimum) ** 2 * column.rows
    if not (minimum <= maximum and minimum - slack <= mean <= maximum + slack
            and 0 <= deviations <= spread * (1 + 1e-9) + slack):
        raise ProfileError(f"column {quoted(name)}: its minimum, mean, maximum and squared deviations disagree")
    if (column.sketch.get_min_value(), column.sketch.get_max_value()) != (minimum, maximum):
        raise ProfileError(f"column {quoted(name)}: its sketch's minimum and maximum are not the column's")
    if column.counts is not None and (min(column.counts), max(column.counts)) != (minimum, maximum):
        raise ProfileError(f"column {quoted(name)}: its value counts span other values than its minimum and maximum")
    column.minimum, column.maximum, column.mean, column.squared_deviations = minimum, maximum, mean, deviations


def _binary_counts(name: str, blob: bytes) -> dict:
    if len(blob) % 16 or len(blob) // 16 > EXACT_DISTINCT:
        raise ProfileError(f"column {quoted(name)}: its counts are not at most {EXACT_DISTINCT} pairs of float64 "
                           "and int64")
    half = len(blob) // 2
    values, numbers = np.frombuffer(blob[:half], "<f8"), np.frombuffer(blob[half:], "<i8")
    if not np.all(np.isfinite(values)) or np.unique(values).size != values.size:
        raise ProfileError(f"column {quoted(name)}: its counted values must be distinct and finite")
    if np.any(numbers <= 0) or np.any(numbers > MAX_COUNT):
        raise ProfileError(f"column {quoted(name)}: its counts must be positive and at most {MAX_COUNT}")
    return dict(zip(values.tolist(), numbers.tolist(), strict=True))


def _listed_counts(name: str, listed: Any, limit: int) -> dict:
    if not (isinstance(listed, list) and len(listed) == 2 and all(isinstance(part, list) for part in listed)
            and len(listed[0]) == len(listed[1]) <= limit):
        raise ProfileError(f"column {quoted(name)}: its counts are two lists of equal length, at most "
                           f"{limit} values in a profile of this format version")
    counts: dict = {}
    for value, number in zip(*listed, strict=True):
        if not (isinstance(value, (str, int, bool)) or isinstance(value, float) and math.isfinite(value)):
            raise ProfileError(f"column {quoted(name)}: a counted value is text, a number or a boolean, not "
                               f"{quoted(value)}")
        if isinstance(value, str) and len(value) > MAX_ITEM_BYTES:
            raise ProfileError(f"column {quoted(name)}: a counted value is longer than {MAX_ITEM_BYTES} characters")
        if value in counts:  # 1, 1.0 and True are one key
            raise ProfileError(f"column {quoted(name)}: the value {quoted(value)} is counted twice")
        counts[value] = _whole(number, f"column {quoted(name)}: a count", 1, MAX_COUNT)
    return counts


def _decoded_sample(document: Any, names: list[str]) -> Sample:
    if not (isinstance(document, dict) and isinstance(document.get("columns"), dict)
            and isinstance(document.get("weights"), list)):
        raise ProfileError("the profile's sample is not an object of columns and weights")
    for name, values in document["columns"].items():
        if not isinstance(values, list) or not all(
                value is None or isinstance(value, (str, int, bool)) and not _long_text(value)
                or isinstance(value, float) and math.isfinite(value) for value in values):
            raise ProfileError(f"the profile's sample: column {quoted(name)} holds values other than text, finite "
                               "numbers, booleans and null")
    if not all(isinstance(weight, (int, float)) and not isinstance(weight, bool) for weight in document["weights"]):
        raise ProfileError("the profile's sample: its weights are numbers")
    try:
        return Sample.from_json(document, names)
    except ValueError as error:
        raise ProfileError(f"the profile's sample: {error}") from None


def _long_text(value: object) -> bool:
    return isinstance(value, str) and len(value) > MAX_ITEM_BYTES


def _whole(value: Any, what: str, low: int, high: int) -> int:
    """A whole number from JSON within [low, high]; ProfileError naming it otherwise (floats, infinities, booleans
    and 4,000-digit numbers included)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ProfileError(f"{what} must be a whole number from {low} to {high}, not {quoted(value)}")
    return value


def _blob(body: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from("<I", body, offset)
    blob = body[offset + 4:offset + 4 + length]
    if len(blob) != length:
        raise ProfileError("profile ends inside a column's data")
    return blob, offset + 4 + length


def as_declared(profile_: Profile, kinds: Mapping[str, ColumnKind], max_category_length: int = MAX_ITEM_BYTES,
                max_rows: int = MAX_COUNT, dimensions: Mapping[str, int] | None = None,
                max_dimensions: int = DEFAULT_MAX_EMBEDDING_DIMENSIONS,
                max_exact_categories: int = MAX_EXACT_CATEGORIES) -> Profile:
    """The profile with each column declared the kind a model's config gives it: a numerical column profiled
    by a replica that read it as few-valued integers becomes categorical from its counts, with its categories as
    text. Refuses a profile missing a column or holding an unknown one, one whose columns count different rows,
    more than max_rows, a column that cannot be its kind, or a category longer than max_category_length: what
    passes merges with any other profile this accepts for the same kinds. An embedding column's vectors have the
    dimension `dimensions` declares for it (where it does) and at most max_dimensions components. A categorical
    column counts at most max_exact_categories categories exactly (the service's limits.max_exact_categories)."""
    unknown = set(profile_.columns) - set(kinds)
    if unknown:
        raise ProfileError(f"the profile has column(s) {quoted(sorted(unknown))} the model does not")
    missing = set(kinds) - set(profile_.columns)
    if missing:
        raise ProfileError(f"the profile lacks column(s) {quoted(sorted(missing))}")
    if len({column.rows + column.missing for column in profile_.columns.values()}) > 1:
        raise ProfileError("the profile's columns count different numbers of rows (values plus missing values)")
    if profile_.rows > max_rows:
        raise ProfileError(f"the profile summarizes {profile_.rows} rows; limits.max_profile_rows is {max_rows}")
    columns = {}
    for name, column in profile_.columns.items():
        kind = kinds[name]
        if column.declared not in (None, kind):
            raise ProfileError(f"column {name!r} is declared {_said(column.declared)} in the profile and "
                               f"{_said(kind)} in the model")
        if (kind is ColumnKind.EMBEDDING) != column.embedding:
            raise ProfileError(f"column {name!r} is {_said(kind)} in the model, but the profile holds "
                               f"{'vectors' if column.embedding else column.family + ' values'}")
        if column.vector_sum is not None:
            try:
                embedding_profiles.declared_check(name, column.vector_sum, (dimensions or {}).get(name),
                                                  max_dimensions)
            except ValueError as error:
                raise ProfileError(str(error)) from None
        if kind is ColumnKind.NUMERICAL and not column.numeric:
            raise ProfileError(f"column {name!r} is numerical, but the profile holds {column.family} values")
        if kind is ColumnKind.CATEGORICAL and column.numeric and column.counts is None:
            raise ProfileError(f"column {name!r} is categorical, but the profile holds more than "
                               f"{EXACT_DISTINCT} distinct numerical values")
        if kind is ColumnKind.CATEGORICAL:
            # Categories are text once declared, whatever type the replica read them as, so every profile of the
            # column merges with every other.
            column = ColumnProfile("string", kind, column.rows, column.missing,
                                   _as_text(name, column.counts, max_category_length),
                                   frequent=_text_keyed(name, column.frequent, max_category_length))
            if column.counts is not None and len(column.counts) > max_exact_categories:
                raise ProfileError(f"column {name!r} counts {len(column.counts)} categories exactly; "
                                   f"limits.max_exact_categories is {max_exact_categories}")
        else:
            column = replace(column, declared=kind)
        columns[name] = column
    sampled = [name for name in columns if kinds[name] is not ColumnKind.EMBEDDING]
    return Profile(columns, profile_.k, _declared_sample(profile_.sample, kinds, sampled, max_category_length))


def _as_text(name: str, counts: dict | None, max_length: int) -> dict | None:
    """Counts keyed by category_text(), as the service stores categories (1 and "1" are one category)."""
    if counts is None:
        return None
    merged: dict = {}
    for value, count in counts.items():
        key = _category(name, value, max_length)
        merged[key] = merged.get(key, 0) + count
    return merged


def _category(name: str, value: object, max_length: int) -> str | None:
    try:
        text = category_text(value)
    except TypeError:
        raise ProfileError(f"column {name!r}: {quoted(value)} is not a category (categorical values are "
                           "strings, integers or booleans)") from None
    if text is not None and len(text) > max_length:
        raise ProfileError(f"column {name!r}: a category is longer than limits.max_category_length ({max_length})")
    return text


def _text_keyed(name: str, sketch: datasketches.frequent_strings_sketch | None, max_length: int) -> \
        datasketches.frequent_strings_sketch | None:
    """A frequent-items sketch is kept only if its values are text already (a client in profile mode sends
    categories as text, as JSON): its counts cannot be re-keyed."""
    if sketch is not None:
        for item, *_ in sketch.get_frequent_items(datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES):
            try:
                value = json.loads(item)
            except ValueError:
                value = None
            if not isinstance(value, str):
                raise ProfileError(f"column {name!r}: a sketch of categories past those counted exactly must hold "
                                   f"them as JSON text (as DriftClient(mode='profile') sends them)")
            _category(name, value, max_length)
    return sketch


def _declared_sample(sample: Sample | None, kinds: Mapping[str, ColumnKind], names: list[str],
                     max_length: int) -> Sample | None:
    """The sample's columns kept, its categories written as the service stores them."""
    if sample is None:
        return None
    kept = sample.only(names)
    for name, values in kept.columns.items():
        if kinds[name] is ColumnKind.CATEGORICAL:
            kept.columns[name] = [_category(name, value, max_length) for value in values]
        elif not all(value is None or type(value) in (int, float) for value in values):
            raise ProfileError(f"the profile's sample: column {name!r} is numerical, but its sample holds other "
                               "values")
    return kept
