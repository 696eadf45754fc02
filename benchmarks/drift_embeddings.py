"""Embedding and text drift: fleetscope.drift.compare() against Evidently 0.7.23's own computation, in one process,
on the same data.

Embeddings: --rows reference and --rows current vectors (10^4 and 10^5 by default) of --dims components (384 and
1024), the current ones shifted. For each method (model, Evidently's default above 1000 reference rows; ratio;
distance; mmd up to --mmd-rows rows, since Evidently holds the whole (2 x rows)^2 kernel: 80 GB at 10^5):
  - evidently: the method object of evidently.legacy.metrics.data_drift.embedding_drift_methods, called on the two
    DataFrames as EmbeddingsDriftMetric.calculate calls it (its t-SNE picture for the HTML report is left out);
  - fleetscope: compare(reference, current, embeddings=["vec"], methods={"vec": method}) on a column of vectors.
Texts: --text-rows texts of about 1 KB on each side (10^4 and 10^5): Evidently's DataDriftPreset on a text column
with the four descriptors (TextLength, WordCount, NonLetterCharacterPercentage, SentenceCount), against
compare(..., text=["body"]), which computes the same descriptors and the same content drift.
Each case is timed once, then run again under tracemalloc (which sees numpy's arrays) for its peak allocation
beyond its inputs. Every score must agree (the tolerances of tests/drift/test_embeddings_parity.py).

    .venv/bin/python benchmarks/drift_embeddings.py [--rows 10000 100000] [--dims 384 1024]
        [--text-rows 10000 100000] [--mmd-rows 10000] [--methods model ratio distance mmd] [--quick] [--json out]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from fleetscope.drift import compare

TOLERANCE = {"model": 1e-12, "ratio": 1e-12, "distance": 1e-9, "mmd": 1e-9}


def embedding_frames(rows: int, dims: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, (rows, dims)).astype(np.float64)
    current = rng.normal(0, 1, (rows, dims)) + 0.05 * np.linspace(1, 0, dims)
    return reference, current


def texts(rows: int, seed: int, shift: float) -> list[str]:
    rng = np.random.default_rng(seed)
    vocabulary = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), length)) for length in
                  np.random.default_rng(0).integers(2, 10, 5000)]
    weights = 1 / np.arange(1, len(vocabulary) + 1)  # Zipf, as words go
    weights[:50] *= 1 + shift
    weights /= weights.sum()
    punctuation = np.array([" ", " ", " ", " ", " ", ". ", ", ", "? "])
    found = []
    for _ in range(rows):
        words = rng.choice(vocabulary, 180, p=weights)
        gaps = rng.choice(punctuation, 180)
        found.append("".join(np.char.add(words, gaps).tolist())[:1024])
    return found


def timed(function: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def peak_mib(function: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        function()
        return (tracemalloc.get_traced_memory()[1] - before) / 2 ** 20
    finally:
        tracemalloc.stop()


def evidently_method(method: str):
    from evidently.legacy.metrics.data_drift import embedding_drift_methods as methods

    return {"model": methods.model(), "ratio": methods.ratio(), "distance": methods.distance(),
            "mmd": methods.mmd()}[method]


def embedding_case(rows: int, dims: int, method: str, memory: bool) -> dict:
    reference, current = embedding_frames(rows, dims)
    names = [f"e{i}" for i in range(dims)]
    reference_frame, current_frame = pd.DataFrame(reference, columns=names), pd.DataFrame(current, columns=names)
    reference_column = pd.DataFrame({"vec": list(reference)})
    current_column = pd.DataFrame({"vec": list(current)})

    def evidently() -> float:
        # ModelDriftMethod adds a column to the frames it is given: copies, as EmbeddingsDriftMetric's slices are
        return evidently_method(method)(current_frame.copy(), reference_frame.copy())[0]

    def ours() -> float:
        return compare(reference_column, current_column, embeddings=["vec"], methods={"vec": method}).columns[
            "vec"].score

    theirs_seconds, theirs = timed(evidently)
    ours_seconds, mine = timed(ours)
    row = {"case": "embedding", "rows": rows, "dims": dims, "method": method,
           "evidently_seconds": theirs_seconds, "fleetscope_seconds": ours_seconds,
           "speedup": theirs_seconds / ours_seconds, "evidently_score": float(theirs), "fleetscope_score": mine,
           "same_score": math.isclose(mine, float(theirs), rel_tol=TOLERANCE[method], abs_tol=1e-9)}
    if memory:
        row["evidently_peak_mib"] = peak_mib(evidently)
        row["fleetscope_peak_mib"] = peak_mib(ours)
        row["memory_ratio"] = row["evidently_peak_mib"] / max(row["fleetscope_peak_mib"], 1e-9)
    return row


def text_case(rows: int, memory: bool) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.descriptors import NonLetterCharacterPercentage, SentenceCount, TextLength, WordCount
    from evidently.presets import DataDriftPreset

    from fleetscope.drift.report import evidently_numbers

    reference = pd.DataFrame({"body": texts(rows, seed=1, shift=0.0)})
    current = pd.DataFrame({"body": texts(rows, seed=2, shift=0.5)})

    def descriptors() -> list:
        return [TextLength("body", alias="body.text_length"), WordCount("body", alias="body.word_count"),
                NonLetterCharacterPercentage("body", alias="body.non_letter_percentage"),
                SentenceCount("body", alias="body.sentence_count")]

    def evidently() -> dict:
        definition = DataDefinition(text_columns=["body"])
        snapshot = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current, data_definition=definition, descriptors=descriptors()),
            Dataset.from_pandas(reference, data_definition=definition, descriptors=descriptors()))
        return evidently_numbers(snapshot)["columns"]

    def ours() -> dict:
        return compare(reference, current, text=["body"]).columns

    theirs_seconds, theirs = timed(evidently)
    ours_seconds, mine = timed(ours)
    same = set(theirs) == set(mine) and all(  # type: ignore[arg-type]
        math.isclose(mine[name].score, float(score), rel_tol=1e-6) for name, (_, score, _, _) in theirs.items())
    row = {"case": "text", "rows": rows, "text_bytes": 1024, "evidently_seconds": theirs_seconds,
           "fleetscope_seconds": ours_seconds, "speedup": theirs_seconds / ours_seconds, "same_score": same,
           "content_score": mine["body"].score}
    if memory:
        row["evidently_peak_mib"] = peak_mib(evidently)
        row["fleetscope_peak_mib"] = peak_mib(ours)
        row["memory_ratio"] = row["evidently_peak_mib"] / max(row["fleetscope_peak_mib"], 1e-9)
    return row


def describe(row: dict) -> str:
    what = (f"embedding {row['rows']:>6} rows x {row['dims']:>4} dims, {row['method']:<8}"
            if row["case"] == "embedding" else f"text      {row['rows']:>6} rows x 1 KB{'':15}")
    memory = (f"; peak {row['evidently_peak_mib']:8.0f} MiB vs {row['fleetscope_peak_mib']:8.0f} MiB "
              f"(x{row['memory_ratio']:.1f})" if "memory_ratio" in row else "")
    return (f"{what}: Evidently {row['evidently_seconds']:8.2f} s, fleetscope {row['fleetscope_seconds']:8.2f} s "
            f"(x{row['speedup']:.1f}){memory}; same score: {row['same_score']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 1024])
    parser.add_argument("--text-rows", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--methods", nargs="+", default=["model", "ratio", "distance", "mmd"])
    parser.add_argument("--mmd-rows", type=int, default=10_000, help="mmd only up to this many rows a side")
    parser.add_argument("--no-memory", action="store_true", help="time only")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1200 rows, 16 dims, 200 texts")
    parser.add_argument("--json", help="write the rows here")
    options = parser.parse_args()
    if options.quick:
        options.rows, options.dims, options.text_rows, options.mmd_rows = [1200], [16], [200], 1200
    warnings.filterwarnings("ignore")  # Evidently's and scikit-learn's deprecation and convergence warnings
    for method in options.methods:  # imports and first-call costs out of the timings
        embedding_case(200, 8, method, memory=False)
    if options.text_rows:
        text_case(100, memory=False)
    found = []
    for rows in options.rows:
        for dims in options.dims:
            for method in options.methods:
                if method == "mmd" and rows > options.mmd_rows:
                    continue
                found.append(embedding_case(rows, dims, method, not options.no_memory))
                print(describe(found[-1]), flush=True)
    for rows in options.text_rows:
        found.append(text_case(rows, not options.no_memory))
        print(describe(found[-1]), flush=True)
    if options.json:
        with open(options.json, "w") as out:
            json.dump(found, out, indent=1)
    if not all(row["same_score"] for row in found):
        raise SystemExit("a score differs from Evidently's")


if __name__ == "__main__":
    main()
