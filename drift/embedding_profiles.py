"""An embedding column in a profile: its vectors' count and per-component sum, merged by addition, from which
Evidently's `distance` methods (DistanceDriftMethod: a distance between the two windows' mean vectors) are computed.

The mean of merged sums is the mean of all the rows up to the order of floating-point addition (each sum is
numpy's pairwise sum of one replica's vectors; merging adds them in another order), a relative difference of
about 1e-16 per component: the score is exact as rows mode's is (which already averages in another order than
Evidently's pandas). The other methods cannot be computed from a mergeable summary, and are refused (REFUSED).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from fleetscope.drift import embeddings

# The methods a profile can score: DistanceDriftMethod with each of its distances.
PROFILE_METHODS = ("distance", *(f"distance_{metric}" for metric in embeddings.DISTANCES))
_NEEDS_ROWS = "needs the vectors themselves, which no mergeable summary keeps"
REFUSED = {
    "model": f"{_NEEDS_ROWS}: a classifier is trained to tell reference vectors from current ones",
    "model_bootstrap": f"{_NEEDS_ROWS}: a classifier is trained to tell reference vectors from current ones",
    "mmd": f"{_NEEDS_ROWS}: its kernel sums over every pair of vectors, with a width from sampled vectors",
    "ratio": ("needs each component's Wasserstein distance, which only a quantile sketch per component could bound: "
              "KLL sketches alone bound it to about 0.17 (normal components, k=200), wider than the 0.1 at which a "
              "component counts as drifted, so no component is decided; with logarithmic buckets it is decided, "
              "but 384 components cost 2.8 MB an interval, as much as 900 vectors sent as float64 rows "
              "(docs/drift.md, Embedding and text columns)"),
}
# A profile's embedding column has at most this many components whatever the service's limit (which is lower:
# limits.max_embedding_dimensions, 4096 by default, checked when a profile is declared as the model's columns).
MAX_DIMENSIONS = 1 << 16


class VectorError(ValueError):
    """Vectors that cannot be summarized; `reason` is the one rows ingest refuses such a batch for."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def refusal(method: str | None) -> str | None:
    """Why a profile cannot score an embedding column by this method (None: it can)."""
    if method in PROFILE_METHODS:
        return None
    supported = ", ".join(PROFILE_METHODS)
    if method is None:
        return (f"no method is set, and Evidently's default (model, or model_bootstrap below 1000 reference vectors) "
                f"{_NEEDS_ROWS}: set one of {supported} for a model fed profiles, or send rows")
    why = REFUSED.get(method, f"is not an embedding drift method ({', '.join(sorted(embeddings.REGISTRY))})")
    return f"{method} {why}; a profile can score {supported}, or send rows"


def summarize(name: str, column: pd.Series, max_dimensions: int = MAX_DIMENSIONS) -> tuple[int, int, np.ndarray]:
    """(vectors, missing vectors, per-component sum) of the column, checked as rows ingest checks a batch
    (fleetscope.drift.service.decode.embedding_values): VectorError naming the reason it would give."""
    values = column.to_numpy()
    present = [value for value in values if value is not None and not (isinstance(value, float) and value != value)]
    for value in present:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise VectorError("schema", f"column {name!r}: {type(value).__name__} is not a vector (an embedding "
                                        "column takes a list of numbers; None for no vector)")
        if isinstance(value, np.ndarray) and value.ndim != 1:
            raise VectorError("schema", f"column {name!r}: an array of {value.ndim} dimensions is not a vector (an "
                                        "embedding column takes one list of numbers a row)")
        if isinstance(value, np.ndarray) and value.dtype.kind not in "iuf" or not isinstance(value, np.ndarray) and \
                any(isinstance(part, bool) or not isinstance(part, (int, float, np.integer, np.floating))
                    for part in value):
            raise VectorError("schema", f"column {name!r}: a vector holds something other than numbers")
    if not present:
        return 0, len(values), np.empty(0)
    lengths = {len(value) for value in present}
    if 0 in lengths:
        raise VectorError("ragged", f"column {name!r}: an empty vector")
    if len(lengths) > 1:
        raise VectorError("ragged", f"column {name!r}: vectors of {len(lengths)} different lengths "
                                    f"({', '.join(map(str, sorted(lengths)[:3]))}): an embedding column keeps one "
                                    "dimension")
    (dimension,) = lengths
    if dimension > max_dimensions:
        raise VectorError("too_many_dimensions", f"column {name!r}: vectors of {dimension} components; the limit "
                                                 f"is {max_dimensions} (limits.max_embedding_dimensions)")
    try:
        matrix = embeddings.matrix(pd.Series(present, dtype=object))
    except (ValueError, OverflowError) as error:
        raise VectorError("not_finite", f"column {name!r}: {error}") from None
    total = matrix.sum(axis=0)
    if not np.isfinite(total).all():
        raise VectorError("not_finite", f"column {name!r}: the vectors' components are too large to sum in float64")
    return len(present), len(values) - len(present), total


def merged(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sum of two columns' sums; a column without vectors has an empty sum, and adds nothing."""
    if not a.size:
        return b.copy()
    if not b.size:
        return a.copy()
    if a.size != b.size:
        raise ValueError(f"vectors of {a.size} components in one profile and {b.size} in the other")
    return a + b


def encode(total: np.ndarray) -> bytes:
    return total.astype("<f8").tobytes()


def decode(blob: bytes, rows: int) -> np.ndarray:
    """A sum vector a client sent, checked: ValueError saying what is wrong."""
    if len(blob) % 8:
        raise ValueError("its sum vector is not a whole number of float64 components")
    total = np.frombuffer(blob, "<f8").astype(np.float64)
    if total.size > MAX_DIMENSIONS:
        raise ValueError(f"its sum vector has {total.size} components, more than {MAX_DIMENSIONS}")
    if not np.isfinite(total).all():
        raise ValueError("its sum vector holds NaN or an infinity")
    if rows == 0 and total.size:
        raise ValueError("it has no vectors but a sum of them")
    if rows > 0 and not total.size:
        raise ValueError(f"it has {rows} vectors but an empty sum of them")
    return total


def declared_check(name: str, total: np.ndarray, dimension: int | None, max_dimensions: int) -> None:
    """The sum vector against the model's config: ValueError where its length is not the declared dimension or
    is past limits.max_embedding_dimensions (an empty sum, of no vectors, passes)."""
    if not total.size:
        return
    if total.size > max_dimensions:
        raise ValueError(f"column {name!r}: vectors of {total.size} components; the limit is {max_dimensions} "
                         "(limits.max_embedding_dimensions)")
    if dimension is not None and total.size != dimension:
        raise ValueError(f"column {name!r}: vectors of {total.size} components; the model declares {dimension} "
                         "(dimensions)")


def method_and_threshold(name: str, methods: Mapping[str, str] | str | None,
                         thresholds: Mapping[str, float] | float | None) -> tuple[str | None, float | None]:
    """A setting for an embedding column applies only where given for it by name (as compare() takes it)."""
    method = methods.get(name) if isinstance(methods, Mapping) else None
    threshold = thresholds.get(name) if isinstance(thresholds, Mapping) else None
    return method, threshold


def score(method: str | None, reference_rows: int, reference_sum: np.ndarray, current_rows: int,
          current_sum: np.ndarray, threshold: float | None) -> tuple[float, float, bool]:
    """(distance, threshold, drifted): DistanceDriftMethod on the means of the two sides (embeddings.score's
    checks and threshold); ValueError where they cannot be compared, naming why."""
    why = refusal(method)
    if why is not None or method is None:
        raise ValueError(why)
    if reference_sum.size != current_sum.size:
        raise ValueError(f"the reference's vectors have {reference_sum.size} components and the current window's "
                         f"{current_sum.size}: an embedding column keeps one dimension")
    if reference_rows < 2 or current_rows < 2:
        raise ValueError("an embedding column needs at least 2 vectors on each side to be compared")
    metric = "euclidean" if method == "distance" else method.removeprefix("distance_")
    found = float(embeddings.DISTANCES[metric](reference_sum / reference_rows, current_sum / current_rows))
    chosen = embeddings.get(method).default_threshold if threshold is None else threshold
    return found, chosen, found > chosen

