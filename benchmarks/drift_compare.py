"""compare() against Evidently's DataDriftPreset, in one process, on the same data.

Frames: 100k rows x 20 numerical columns, and a mixed frame of 100k rows (12 numerical
columns, 6 categorical, 2 binary). The current frame drifts in some columns. For each:
  - evidently:        Report([DataDriftPreset()]).run(current, reference), as a user runs it;
  - compare():        fleetscope.drift.compare(reference, current), reference prepared in the call;
  - compare() warm:   the same against a PreparedReference, as the service runs every window.
The script checks that every column's method, score (1e-6 relative) and decision agree, counts
the scores equal to the last bit, and reports the median of --repeat runs and the speedup ratios.
Targets (issue 40): compare() at least 50x Evidently on both frames, 100x with a prepared reference.
Then (--bits) what the last bits of the Wasserstein scores would cost: SciPy sums the distance with np.vecdot, which
numpy hands to OpenBLAS's dot product, whose order of addition depends on its thread count; the script counts the
scores SciPy itself gives differently with OpenBLAS limited to one thread, and times a sum in SciPy's order (the
merged samples' steps, np.vecdot) that equals SciPy's to the bit, against compare()'s own.
Then it measures the peak memory compare() allocates (tracemalloc, which sees numpy's arrays) on a
window of --memory-rows rows x 20 numerical columns, reference prepared in the call and prepared
before it, beyond the two frames themselves.

    .venv/bin/python benchmarks/drift_compare.py [--rows 100000] [--repeat 3] [--memory-rows 1000000]
                                                 [--workers N] [--bits] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import time
import tracemalloc

import numpy as np
import pandas as pd

from fleetscope.drift import PreparedReference, compare, stattests
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


def check_same(ours, theirs: dict) -> tuple[int, int, float]:
    """Columns, columns whose score equals Evidently's to the last bit, and the largest relative difference."""
    exact, worst = 0, 0.0
    for name, (method, score, _, drifted) in theirs["columns"].items():
        mine = ours.columns[name]
        assert mine.method == method and mine.drifted == drifted, (name, mine, method, drifted)
        assert math.isclose(mine.score, score, rel_tol=1e-6, abs_tol=1e-300), (name, mine.score, score)
        exact += int(mine.score == score)
        worst = max(worst, abs(mine.score - score) / abs(score) if score else abs(mine.score))
    assert math.isclose(ours.drifted_share, theirs["share"])
    return len(theirs["columns"]), exact, worst


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


def wasserstein_in_scipys_order(u: np.ndarray, v: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance of two sorted samples, summed as SciPy sums it: |F_u - F_v| and the widths of
    the merged samples' steps, in the merged order (ties: u's values first, as a stable sort puts them), through
    np.vecdot. The same bits as SciPy's under the same OpenBLAS thread count."""
    v_below = v.searchsorted(u, "left")
    u_at_or_below = np.cumsum(np.bincount(v_below, minlength=v.size + 1)[:-1])
    at_u, at_v = np.arange(u.size) + v_below, np.arange(v.size) + u_at_or_below
    merged, gap = np.empty(u.size + v.size), np.empty(u.size + v.size)
    merged[at_u], merged[at_v] = u, v
    gap[at_u] = np.arange(1, u.size + 1) / u.size - v_below / v.size
    gap[at_v] = u_at_or_below / u.size - np.arange(1, v.size + 1) / v.size
    return float(np.vecdot(np.abs(gap[:-1]), np.diff(merged)))


def bits(rows: int, repeat: int) -> dict:
    from scipy import stats
    from threadpoolctl import threadpool_info, threadpool_limits

    reference, current = numeric_frames(rows)
    pairs = [(np.sort(reference[name].to_numpy()), np.sort(current[name].to_numpy())) for name in reference]
    scipy_default = [stats.wasserstein_distance(u, v) for u, v in pairs]
    with threadpool_limits(1):
        scipy_one = [stats.wasserstein_distance(u, v) for u, v in pairs]
    threads = max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1)
    ours = [stattests.wasserstein_distance(u, v) for u, v in pairs]
    ordered = [wasserstein_in_scipys_order(u, v) for u, v in pairs]
    ours_s, _ = timed(lambda: [stattests.wasserstein_distance(u, v) for u, v in pairs], repeat * 3)
    ordered_s, _ = timed(lambda: [wasserstein_in_scipys_order(u, v) for u, v in pairs], repeat * 3)
    with threadpool_limits(1):
        ordered_one_s, _ = timed(lambda: [wasserstein_in_scipys_order(u, v) for u, v in pairs], repeat * 3)
    row = {"columns": len(pairs), "openblas_threads": threads,
           "scipy_same_bits_with_one_thread": sum(bool(a == b) for a, b in zip(scipy_one, scipy_default, strict=True)),
           "ours_same_bits": sum(bool(a == b) for a, b in zip(ours, scipy_default, strict=True)),
           "scipy_order_same_bits": sum(bool(a == b) for a, b in zip(ordered, scipy_default, strict=True)),
           "ours_s": ours_s, "scipy_order_s": ordered_s, "scipy_order_one_thread_s": ordered_one_s}
    print(f"bits, {rows} rows x {len(pairs)} columns: SciPy's own scores keep their bits with OpenBLAS at 1 thread "
          f"instead of {threads} in {row['scipy_same_bits_with_one_thread']}; compare()'s sum equals SciPy's to the "
          f"bit in {row['ours_same_bits']}, a sum in SciPy's order in {row['scipy_order_same_bits']}, at "
          f"{ordered_s:.3f}s ({ordered_one_s:.3f}s at 1 thread) against {ours_s:.3f}s for the "
          f"{len(pairs)} distances ({ordered_s / ours_s:.1f}x)")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="0 skips the memory measurement")
    parser.add_argument("--workers", type=int, help="compare()'s threads (default: one per CPU)")
    parser.add_argument("--bits", action="store_true", help="measure what bit-identical Wasserstein sums cost")
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
        columns, exact, worst = check_same(ours, theirs)
        assert check_same(warm, theirs) == (columns, exact, worst)
        row = {"frame": name, "rows": args.rows, "columns": columns,
               "methods": sorted({drift.method for drift in ours.columns.values()}),
               "evidently_s": evidently_seconds, "compare_s": cold_seconds, "compare_prepared_s": warm_seconds,
               "speedup": evidently_seconds / cold_seconds, "speedup_prepared": evidently_seconds / warm_seconds,
               "same_values": True, "same_bits": exact, "largest_relative_difference": worst}
        results.append(row)
        print(f"{name:20} {args.rows} rows: evidently {evidently_seconds:.3f}s  compare() {cold_seconds:.3f}s "
              f"({row['speedup']:.0f}x)  prepared reference {warm_seconds:.3f}s ({row['speedup_prepared']:.0f}x)  "
              f"methods {','.join(row['methods'])}; all {columns} columns equal ({exact} to the last bit, "
              f"the rest within {worst:.0e})")
    if args.bits:
        results.append(bits(args.rows, args.repeat))
    if args.memory_rows:
        results.append(memory(args.memory_rows, args.workers))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
