"""Multivariate drift's cost: fleetscope.drift.multivariate against NannyML 0.13.1's own calculators on the same rows.

For each method (reconstruction: PCA fitted on the reference, then the window's error and band; classifier: LightGBM
telling the window from the reference, 5-fold) and each window size (--rows, default 10^4 and 10^5, 20 columns: 16
numerical and 4 categorical), fleetscope's and NannyML's runs each go in a fresh child process (this script again,
with --one), which reports the wall time of fit plus evaluation and its peak resident memory over its resident
memory before (Linux's VmHWM, reset through /proc/self/clear_refs: LightGBM's and BLAS's native allocations count,
which tracemalloc would not see). The reconstruction's reference holds 5 windows (the least its band needs), the
classifier's one. The values both computed are printed beside the ratios.

    .venv/bin/python benchmarks/drift_multivariate.py [--rows 10000 100000] [--methods reconstruction classifier]
                                                      [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

NUMERICAL, CATEGORICAL = 16, 4
REFERENCE_WINDOWS = {"reconstruction": 5, "classifier": 1}


def rows_of(rows: int, seed: int, correlated: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, rows)
    columns: dict[str, np.ndarray] = {}
    for index in range(NUMERICAL):
        shared = base if correlated or index % 2 else rng.normal(0, 1, rows)
        columns[f"n{index:02d}"] = shared * (index % 3 + 1) + rng.normal(0, 1, rows)
    for index in range(CATEGORICAL):
        columns[f"c{index}"] = rng.choice([f"v{value}" for value in range(3 + 3 * index)], rows).astype(object)
    return pd.DataFrame(columns)


def _resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def one(implementation: str, method: str, rows: int) -> dict:
    """One measured run in this process: seconds and peak MiB above what was resident before it."""
    from fleetscope.drift.columns import ColumnKind

    reference = rows_of(rows * REFERENCE_WINDOWS[method], 1, True)
    current = rows_of(rows, 2, False)
    kinds = {name: ColumnKind.NUMERICAL if name.startswith("n") else ColumnKind.CATEGORICAL for name in current}
    if implementation == "nannyml":
        import nannyml

        logging.getLogger("nannyml").setLevel(logging.ERROR)
        warnings.simplefilter("ignore")
    else:
        from fleetscope.drift import multivariate
    import lightgbm  # noqa: F401 - loaded before measuring, as the service has it loaded
    import sklearn.decomposition  # noqa: F401

    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    before = _resident_kib("VmRSS")
    began = time.perf_counter()
    if implementation == "nannyml":
        if method == "reconstruction":
            calculator = nannyml.DataReconstructionDriftCalculator(column_names=list(kinds), chunk_size=rows)
            found = calculator.fit(reference).calculate(current).filter(period="analysis").to_df()
            value = float(found[("reconstruction_error", "value")].iloc[0])
        else:
            classifier = nannyml.DomainClassifierCalculator(feature_column_names=list(kinds), chunk_size=rows)
            found = classifier.fit(reference).calculate(current).filter(period="analysis").to_df()
            value = float(found[("domain_classifier_auroc", "value")].iloc[0])
    elif method == "reconstruction":
        value = multivariate.Reconstruction(reference, kinds).compare(current).value
    else:
        value = multivariate.classifier_auc(reference, current, kinds).value
    seconds = time.perf_counter() - began
    peak = _resident_kib("VmHWM")
    return {"implementation": implementation, "method": method, "rows": rows,
            "reference_rows": len(reference), "columns": NUMERICAL + CATEGORICAL, "seconds": seconds,
            "peak_mib": (peak - before) / 1024, "value": value}


def measure(implementation: str, method: str, rows: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--one", implementation, method, str(rows)],
                            capture_output=True, text=True, timeout=3600, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"{implementation} {method} at {rows} rows failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--methods", nargs="+", choices=sorted(REFERENCE_WINDOWS),
                        default=["reconstruction", "classifier"])
    parser.add_argument("--quick", action="store_true", help="a smoke run: one window of 2,000 rows")
    parser.add_argument("--json", type=Path, help="also write the rows measured here")
    parser.add_argument("--one", nargs=3, metavar=("IMPLEMENTATION", "METHOD", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], int(args.one[2]))))
        return
    rows_list = [2_000] if args.quick else args.rows
    measured = []
    print(f"{'method':<15}{'rows':>8}{'ref rows':>10}{'fleetscope s':>14}{'nannyml s':>11}{'time x':>8}"
          f"{'fleetscope MiB':>16}{'nannyml MiB':>13}{'memory x':>10}  values (fleetscope / nannyml)")
    for method in args.methods:
        for rows in rows_list:
            ours, theirs = measure("fleetscope", method, rows), measure("nannyml", method, rows)
            measured += [ours, theirs]
            print(f"{method:<15}{rows:>8}{ours['reference_rows']:>10}{ours['seconds']:>14.2f}{theirs['seconds']:>11.2f}"
                  f"{ours['seconds'] / theirs['seconds']:>8.2f}{ours['peak_mib']:>16.1f}{theirs['peak_mib']:>13.1f}"
                  f"{ours['peak_mib'] / max(theirs['peak_mib'], 0.1):>10.2f}  "
                  f"{ours['value']:.6f} / {theirs['value']:.6f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
