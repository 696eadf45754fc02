"""How close compare_profiles() comes to compare() on the same rows, per default method: exact or bounded, the
worst error seen, the widest bound stated, and how often the drift decision differed.

Data sets: five distributions (normal, lognormal, uniform, bimodal, and a normal far from 0) and a long-tailed
categorical column, each at several sizes and shifts (drifted and not), the current profiled by 8 replicas and
merged as the service merges them; every method Evidently would choose by default appears (ks and chisquare/z
under 1,000 reference rows, wasserstein and jensenshannon above). Columns are compared one at a time, as the
service compares them, so that one a profile cannot score (chisquare on a current of more than 1,000
categories) is counted as refused and leaves the others.

Then the bound each approximate default method states, over its default threshold, per distribution at 10^4 rows
and more (the reference profiled whole, the current by 4 replicas and merged), with the worst of 12 seeds:
wasserstein on numbers, jensenshannon on columns of many categories (counted exactly up to EXACT_CATEGORIES,
100,000, a frequent-items sketch past them, where a decision whose range straddles the threshold is uncertain); and
the bytes of one replica's profile of one column per interval: numerical without the logarithmic buckets (format
version 1, as before) and with them, categorical with exact counts up to 10,000 categories (before, format version
3) and up to EXACT_CATEGORIES (now; version 5 past 10,000), up to 250,000 rows a replica-interval (10^6 rows over 4
replicas); and the memory the service holds for an open interval of one categorical column at 10,000 and at
EXACT_CATEGORIES categories. --categorical-only runs the categorical parts alone (about half a minute).

    .venv/bin/python benchmarks/profile_accuracy.py [--repeat 3] [--json out.json] [--categorical-only]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from fleetscope.drift import compare, compare_profiles
from fleetscope.drift import profiles as profiles_module
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.profile_comparison import ProfileMethodError
from fleetscope.drift.profiles import Profile, as_declared, decode, encode, merge_all, profile

NUMERICAL = {
    "normal": lambda rng, n, shift: rng.normal(shift, 1, n),
    "lognormal": lambda rng, n, shift: rng.lognormal(shift, 0.8, n),
    "uniform": lambda rng, n, shift: rng.uniform(shift, 1 + shift, n),
    "bimodal": lambda rng, n, shift: np.where(rng.random(n) < 0.3 + shift / 4, rng.normal(-2, 0.5, n),
                                              rng.normal(2, 0.5, n)),
    "offset": lambda rng, n, shift: rng.normal(1000 + shift, 1, n),
}
SIZES = [(300, 250), (900, 5_000), (5_000, 4_000), (50_000, 30_000), (200_000, 100_000)]
SHIFTS = [0.0, 0.05, 0.2, 1.0]


def data_set(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    columns = {name: draw(rng, rows, shift) for name, draw in NUMERICAL.items()}
    columns["few"] = rng.choice([0.5, 1.0, 1.5, 2.0], rows, p=[0.4 - shift / 10, 0.3, 0.2, 0.1 + shift / 10])
    columns["label"] = rng.choice(["a", "b", "c", "d", "e", "f"], rows)
    tail = 1.3 + shift / 2
    columns["token"] = [f"t{v}" for v in rng.zipf(tail, rows)]
    return pd.DataFrame(columns)


BOUND_CASES = {  # name: (draw, shift): the four columns of issue 40 first
    "normal, no drift": (lambda rng, n, s: rng.normal(s, 1, n), 0.0),
    "log-normal latency, no drift": (lambda rng, n, s: rng.lognormal(3 + s, 1.5, n), 0.0),
    "normal, small shift": (lambda rng, n, s: rng.normal(s, 1, n), 0.18),
    "Pareto tail": (lambda rng, n, s: rng.pareto(1.5, n) + 1 + s, 0.0),
    "normal far from 0": (lambda rng, n, s: rng.normal(1000 + s, 1, n), 0.0),
    "Pareto, alpha 3": (lambda rng, n, s: rng.pareto(3, n) + 1 + s, 0.0),
    "mixture": (lambda rng, n, s: np.where(rng.random(n) < 0.9, rng.normal(s, 1, n), rng.normal(8, 3, n)), 0.0),
    "many ties (0.01 steps)": (lambda rng, n, s: np.round(rng.lognormal(2 + s, 1, n), 2), 0.0),
}


def bounds_table(seeds: int = 12) -> dict:
    """Per distribution and size: the widest bound / threshold over the seeds, and whether every score lay within."""
    table: dict = {}
    print(f"\n{'distribution':<30}{'rows':>10}{'method':>13}{'bound/threshold':>17}{'held':>6}")
    for name, (draw, shift) in BOUND_CASES.items():
        for rows in (10_000, 60_000, 1_000_000):
            widest, held, method = 0.0, True, ""
            for seed in range(seeds if rows < 1_000_000 else 2):
                rng = np.random.default_rng(seed)
                reference = pd.DataFrame({"x": draw(rng, rows, 0.0)})
                current = pd.DataFrame({"x": draw(rng, rows, shift)})
                truth = compare(reference, current, numerical=["x"]).columns["x"]
                merged = merge_all(profile(part, ["x"], sample_rows=0) for part in np.array_split(current, 4))
                found = compare_profiles(profile(reference, ["x"], sample_rows=0), merged).columns["x"]
                method = found.method
                widest = max(widest, found.error_bound / found.threshold)
                held = held and abs(found.score - truth.score) <= found.error_bound
            table[f"{name} @ {rows}"] = {"method": method, "bound_over_threshold": widest, "held": held}
            print(f"{name:<30}{rows:>10}{method:>13}{widest:>17.3f}{'yes' if held else 'NO':>6}")
    return table


CATEGORY_CASES = {  # name: (draw, shift): values as text, as a client sends categories
    "Zipf 1.3 (long tail)": (lambda rng, n, s: np.char.add("t", rng.zipf(1.3 + s, n).astype(str)), 0.0),
    "Zipf 1.6": (lambda rng, n, s: np.char.add("t", rng.zipf(1.6 + s, n).astype(str)), 0.0),
    "Zipf 1.6, shifted": (lambda rng, n, s: np.char.add("t", rng.zipf(1.6 + s, n).astype(str)), 0.1),
    "uniform, 5,000 categories": (lambda rng, n, s: np.char.add("u", rng.integers(0, 5_000, n).astype(str)), 0.0),
    "uniform, 50,000 categories": (lambda rng, n, s: np.char.add("u", rng.integers(0, 50_000, n).astype(str)), 0.0),
    "5 heavy (90%), tail of 10^5": (lambda rng, n, s: np.where(
        rng.random(n) < 0.9 - s, np.char.add("h", rng.integers(0, 5, n).astype(str)),
        np.char.add("t", rng.integers(0, 100_000, n).astype(str))), 0.0),
}


def js_bounds_table(seeds: int = 12) -> dict:
    """jensenshannon on columns of many categories: per distribution and size, the widest bound / threshold over the
    seeds, whether every score lay within its bound, and the share of decisions certain."""
    table: dict = {}
    print(f"\n{'distribution (jensenshannon)':<30}{'rows':>10}{'distinct':>10}{'bound/threshold':>17}{'held':>6}"
          f"{'certain':>9}")
    for name, (draw, shift) in CATEGORY_CASES.items():
        for rows in (10_000, 60_000, 1_000_000):
            widest, held, certain, distinct, runs = 0.0, True, 0, 0, seeds if rows < 1_000_000 else 2
            for seed in range(runs):
                rng = np.random.default_rng(seed)
                reference = pd.DataFrame({"c": draw(rng, rows, 0.0)})
                current = pd.DataFrame({"c": draw(rng, rows, shift)})
                truth = compare(reference, current, categorical=["c"]).columns["c"]
                merged = merge_all(profile(part, categorical=["c"], sample_rows=0)
                                   for part in np.array_split(current, 4))
                found = compare_profiles(profile(reference, categorical=["c"], sample_rows=0), merged).columns["c"]
                assert found.method == "jensenshannon"
                widest = max(widest, found.error_bound / found.threshold)
                held = held and abs(found.score - truth.score) <= found.error_bound + 1e-12
                held = held and (not found.decided or found.drifted == truth.drifted)
                certain += found.decided
                distinct = max(distinct, int(reference["c"].nunique()), int(current["c"].nunique()))
            table[f"{name} @ {rows}"] = {"method": "jensenshannon", "bound_over_threshold": widest, "held": held,
                                         "certain_share": certain / runs, "distinct": distinct}
            print(f"{name:<30}{rows:>10}{distinct:>10}{widest:>17.3f}{'yes' if held else 'NO':>6}"
                  f"{certain / runs:>9.0%}")
    return table


BYTES_BEFORE = profiles_module.V3_EXACT_CATEGORIES  # categories counted exactly before issue 40's change


def category_bytes_table() -> dict:
    """Bytes of one replica's profile of one categorical column per interval (and its format version): exact counts
    up to 10,000 categories (a frequent-items sketch past them, as before) and up to EXACT_CATEGORIES (now)."""
    table: dict = {}
    print(f"\n{'categorical column':<30}{'rows':>8}{'distinct':>10}{'before':>9}{'after':>9}{'ratio':>8}"
          f"{'version':>8}")
    for name in ("Zipf 1.3 (long tail)", "uniform, 5,000 categories", "uniform, 50,000 categories",
                 "5 heavy (90%), tail of 10^5"):
        draw = CATEGORY_CASES[name][0]
        for rows in (600, 6_000, 60_000, 250_000):
            frame = pd.DataFrame({"c": draw(np.random.default_rng(rows), rows, 0.0)})
            before = encode(profile(frame, categorical=["c"], sample_rows=0, exact_categories=BYTES_BEFORE))
            after = encode(profile(frame, categorical=["c"], sample_rows=0))
            distinct = int(frame["c"].nunique())
            table[f"{name} @ {rows}"] = {"rows": rows, "distinct": distinct, "before": len(before),
                                         "after": len(after), "version": after[4]}
            print(f"{name:<30}{rows:>8}{distinct:>10}{len(before):>9}{len(after):>9}{len(after) / len(before):>8.2f}"
                  f"{after[4]:>8}")
    return table


def category_memory(categories: int = profiles_module.EXACT_CATEGORIES, replicas: int = 4) -> dict:
    """What the service holds for an open interval of one categorical column at the limit: `replicas` profiles of
    `categories` short categories each (every replica sees every category, the merge's worst case), decoded,
    declared and merged as the service merges them; tracemalloc's bytes held after and at the peak, and the CPU
    seconds each replica's profile took to decode, declare and merge."""
    rng = np.random.default_rng(categories)
    bodies = [encode(profile(pd.DataFrame({"c": np.char.add("u", rng.permutation(categories).astype(str))}),
                             categorical=["c"], sample_rows=0)) for _ in range(replicas)]
    kinds = {"c": ColumnKind.CATEGORICAL}
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    merged, seconds = None, time.process_time()
    for body in bodies:
        found = as_declared(decode(body), kinds)
        merged = found if merged is None else merged.merge(found, exact_categories=categories)
        del found
    seconds = (time.process_time() - seconds) / replicas
    gc.collect()
    held, peak = (value - base for value in tracemalloc.get_traced_memory())
    tracemalloc.stop()
    assert merged is not None and merged.columns["c"].distinct == categories
    result = {"categories": categories, "replica_bytes": len(bodies[0]), "held_bytes": held, "peak_bytes": peak,
              "bytes_per_category": held / categories, "merge_seconds_per_replica": seconds}
    print(f"\nopen interval of one categorical column, {categories:,} categories merged from {replicas} replicas: "
          f"{held / 1e6:.1f} MB held ({held / categories:.0f} B a category), peak {peak / 1e6:.1f} MB; "
          f"{len(bodies[0]):,} B a replica's profile, {seconds * 1e3:.0f} ms CPU to decode, declare and merge each")
    return result


def category_memory_table() -> list[dict]:
    """category_memory() at 10,000 categories (before) and at EXACT_CATEGORIES (now)."""
    return [category_memory(categories)
            for categories in (profiles_module.V3_EXACT_CATEGORIES, profiles_module.EXACT_CATEGORIES)]


def bytes_table() -> dict:
    """Bytes of one replica's profile of one numerical column (log-normal), per interval size."""
    table = {}
    print(f"\n{'rows a replica-interval':<26}{'before (v1)':>12}{'after (v2)':>12}{'ratio':>8}")
    for rows in (60, 600, 6_000, 60_000):
        built = profile(pd.DataFrame({"x": np.random.default_rng(rows).lognormal(3, 1.5, rows)}), ["x"],
                        sample_rows=0)
        after = len(encode(built))
        built.columns["x"].buckets = None
        before = len(encode(built))
        table[rows] = {"before": before, "after": after}
        print(f"{rows:<26}{before:>12}{after:>12}{after / before:>8.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--categorical-only", action="store_true",
                        help="only the jensenshannon bounds and the categorical bytes tables")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # scipy's and pandas' warnings on degenerate data sets, as compare() gives them
    if args.categorical_only:
        js_bounds, category_sizes, memory = js_bounds_table(), category_bytes_table(), category_memory_table()
        if args.json:
            args.json.write_text(json.dumps({"jensenshannon_bounds": js_bounds, "category_bytes": category_sizes,
                                             "category_memory": memory}, indent=2) + "\n")
        return
    seen: dict = defaultdict(lambda: {"columns": 0, "refused": 0, "approximate": 0, "worst_error": 0.0,
                                      "widest_bound": 0.0, "worst_error_over_bound": 0.0, "decisions_differing": 0,
                                      "decisions_differing_outside_bound": 0})
    numerical, categorical = [*NUMERICAL, "few"], ["label", "token"]
    for repeat in range(args.repeat):
        for reference_rows, current_rows in SIZES:
            for shift in SHIFTS:
                rng = np.random.default_rng(hash((repeat, reference_rows, shift)) % 2**32)
                reference, current = data_set(rng, reference_rows, 0.0), data_set(rng, current_rows, shift)
                exact = compare(reference, current, numerical=numerical, categorical=categorical)
                profiles = [merge_all(profile(part, numerical, categorical, sample_rows=0)
                                      for part in np.array_split(data, parts))
                            for data, parts in ((reference, 4), (current, 8))]
                for name, truth in exact.columns.items():
                    try:  # column by column, as the service does: a refused column leaves the others
                        one = [Profile({name: found.columns[name]}, found.k) for found in profiles]
                        mine = compare_profiles(*one).columns[name]
                    except ProfileMethodError:
                        seen[truth.method]["refused"] += 1
                        continue
                    assert mine.method == truth.method, (name, mine.method, truth.method)
                    found = seen[mine.method]
                    error = abs(mine.score - truth.score)
                    found["columns"] += 1
                    found["approximate"] += mine.approximate
                    found["worst_error"] = max(found["worst_error"], error)
                    found["widest_bound"] = max(found["widest_bound"], mine.error_bound)
                    if mine.error_bound:
                        found["worst_error_over_bound"] = max(found["worst_error_over_bound"],
                                                              error / mine.error_bound)
                    if mine.drifted != truth.drifted:
                        found["decisions_differing"] += 1
                        if abs(truth.score - truth.threshold) > mine.error_bound:
                            found["decisions_differing_outside_bound"] += 1
    table = {method: dict(found) for method, found in sorted(seen.items())}
    print(f"{'method':<14}{'columns':>8}{'refused':>8}{'approx':>8}{'worst error':>14}{'widest bound':>14}"
          f"{'error/bound':>13}{'decisions differ':>18}")
    for method, found in table.items():
        print(f"{method:<14}{found['columns']:>8}{found['refused']:>8}{found['approximate']:>8}"
              f"{found['worst_error']:>14.3g}"
              f"{found['widest_bound']:>14.3g}{found['worst_error_over_bound']:>13.3f}"
              f"{found['decisions_differing']:>10} ({found['decisions_differing_outside_bound']} outside)")
    bounds, js_bounds, sizes, category_sizes = bounds_table(), js_bounds_table(), bytes_table(), category_bytes_table()
    memory = category_memory_table()
    if args.json:
        args.json.write_text(json.dumps({"methods": table, "bounds": bounds, "jensenshannon_bounds": js_bounds,
                                         "bytes": sizes, "category_bytes": category_sizes, "category_memory": memory},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
