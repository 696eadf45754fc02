"""compare() against Evidently's DataDriftPreset, in one process, on the same data.

Frames: 100k rows x 20 numerical columns, and a mixed frame of 100k rows (12 numerical
columns, 6 categorical, 2 binary). The current frame drifts in some columns. For each:
  - evidently:        Report([DataDriftPreset()]).run(current, reference), as a user runs it;
  - compare():        fleetscope.drift.compare(reference, current), reference prepared in the call;
  - compare() warm:   the same against a PreparedReference, as the service runs every window.
The script checks that every column's method, decision and score agree, each score to the last bit
(Evidently's Wasserstein sum goes through OpenBLAS, whose order of addition follows its thread count:
equal under the same count, which the script prints), and reports the median of --repeat runs and
the speedup ratios. Targets (issue 40): compare() at least 50x Evidently on both frames, 100x with a
prepared reference.
Then it measures the peak memory compare() allocates (tracemalloc, which sees numpy's arrays) on a
window of --memory-rows rows x 20 numerical columns, reference prepared in the call and prepared
before it, beyond the two frames themselves.

    .venv/bin/python benchmarks/drift_compare.py [--rows 100000] [--repeat 3] [--memory-rows 1000000]
                                                 [--workers N] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
import tracemalloc

import numpy as np
import pandas as pd
import threadpoolctl

from fleetscope.drift import PreparedReference, compare
from fleetscope.drift.comparison import column_kinds
from fleetscope.drift.report import evidently_numbers, evidently_snapshot


def numeric_frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({f"x{i}": rng.normal(0, 1, rows) for i in range(20)})
    current = pd.DataFrame({f"x{i}": rng.normal(0.02 * i, 1, rows) for i in range(20)})
    return reference, current


def mixed_frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)

    def frame(shift: float) -> pd.DataFrame:
        columns = {f"num{i}": rng.gamma(2 + shift * i, 1, rows) for i in range(12)}
        for i in range(6):
            categories = [f"c{k}" for k in range(3 + i * 4)]
            weights = np.linspace(1, 1 + shift * i, len(categories))
            columns[f"cat{i}"] = rng.choice(categories, rows, p=weights / weights.sum())
        for i in range(2):
            columns[f"flag{i}"] = rng.random(rows) < 0.3 + shift * i
        return pd.DataFrame(columns)

    return frame(0.0), frame(0.1)


def timed(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def check_same(ours, theirs: dict) -> int:
    """The number of columns, once every column's method, decision and score (to the last bit) equals Evidently's."""
    for name, (method, score, _, drifted) in theirs["columns"].items():
        mine = ours.columns[name]
        assert (mine.method, mine.drifted) == (method, drifted), (name, mine, method, drifted)
        assert mine.score == score, (name, mine.score, score)
    assert ours.drifted_share == theirs["share"]
    return len(theirs["columns"])


def openblas_threads() -> int:
    return max((pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"),
               default=1)


def peak_mib(function) -> float:
    """The most memory, in MiB, that function() held at once beyond what was allocated before the call."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        function()
        return (tracemalloc.get_traced_memory()[1] - before) / 2**20
    finally:
        tracemalloc.stop()


def memory(rows: int, workers: int | None) -> dict:
    reference, current = numeric_frames(rows)
    prepared = PreparedReference(reference, column_kinds(current), workers=workers)
    frames_mib = float(reference.memory_usage().sum() + current.memory_usage().sum()) / 2**20
    row = {"rows": rows, "columns": 20, "frames_mib": frames_mib,
           "prepared_reference_mib": peak_mib(lambda: PreparedReference(reference, column_kinds(current),
                                                                        workers=workers)),
           "compare_peak_mib": peak_mib(lambda: compare(reference, current, workers=workers)),
           "compare_prepared_peak_mib": peak_mib(lambda: compare(prepared, current, workers=workers))}
    print(f"memory, {rows} rows x 20 columns (frames {row['frames_mib']:.0f} MiB): compare() peak "
          f"{row['compare_peak_mib']:.0f} MiB beyond the frames, against a prepared reference "
          f"{row['compare_prepared_peak_mib']:.0f} MiB (the prepared reference holds "
          f"{row['prepared_reference_mib']:.0f} MiB)")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="0 skips the memory measurement")
    parser.add_argument("--workers", type=int, help="compare()'s threads (default: one per CPU)")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    results = []
    for name, make in (("numeric 20 columns", numeric_frames), ("mixed 20 columns", mixed_frames)):
        reference, current = make(args.rows)
        evidently_seconds, snapshot = timed(functools.partial(evidently_snapshot, reference, current), args.repeat)
        cold_seconds, ours = timed(functools.partial(compare, reference, current, workers=args.workers), args.repeat)
        prepared = PreparedReference(reference, column_kinds(current), workers=args.workers)
        warm_seconds, warm = timed(functools.partial(compare, prepared, current, workers=args.workers), args.repeat)
        theirs = evidently_numbers(snapshot)
        columns = check_same(ours, theirs)
        check_same(warm, theirs)
        row = {"frame": name, "rows": args.rows, "columns": columns,
               "methods": sorted({drift.method for drift in ours.columns.values()}),
               "evidently_s": evidently_seconds, "compare_s": cold_seconds, "compare_prepared_s": warm_seconds,
               "speedup": evidently_seconds / cold_seconds, "speedup_prepared": evidently_seconds / warm_seconds,
               "same_bits": True, "openblas_threads": openblas_threads()}
        results.append(row)
        print(f"{name:20} {args.rows} rows: evidently {evidently_seconds:.3f}s  compare() {cold_seconds:.3f}s "
              f"({row['speedup']:.0f}x)  prepared reference {warm_seconds:.3f}s ({row['speedup_prepared']:.0f}x)  "
              f"methods {','.join(row['methods'])}; all {columns} scores equal to the last bit "
              f"(OpenBLAS at {row['openblas_threads']} threads)")
    if args.memory_rows:
        results.append(memory(args.memory_rows, args.workers))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
