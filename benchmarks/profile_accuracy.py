"""How close compare_profiles() comes to compare() on the same rows, per default method: exact or bounded, the
worst error seen, the widest bound stated, and how often the drift decision differed.

Data sets: five distributions (normal, lognormal, uniform, bimodal, and a normal far from 0) and a long-tailed
categorical column, each at several sizes and shifts (drifted and not), the current profiled by 8 replicas and
merged as the service merges them; every method Evidently would choose by default appears (ks and chisquare/z
under 1,000 reference rows, wasserstein and jensenshannon above). Columns are compared one at a time, as the
service compares them, so that one a profile cannot score (chisquare on a current of more than 1,000
categories) is counted as refused and leaves the others.

    .venv/bin/python benchmarks/profile_accuracy.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from fleetscope.drift import compare, compare_profiles
from fleetscope.drift.profile_comparison import ProfileMethodError
from fleetscope.drift.profiles import Profile, merge_all, profile

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # scipy's and pandas' warnings on degenerate data sets, as compare() gives them
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
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
