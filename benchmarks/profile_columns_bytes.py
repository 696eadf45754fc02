"""Bytes of one replica's profile of one column for one interval, as DriftClient(mode="profile") posts it (zlib
level 1, without the sample of rows, which is the same for every kind): an embedding column (a count and a sum
vector) at 384 and 1024 dimensions, a text column (its four descriptors' numerical columns), and, for comparison,
the same vectors sent as rows (JSON, as the client posts them) and the per-component KLL sketches and logarithmic
buckets `ratio` would need (which profile mode refuses). Then why `ratio` is refused: the bound those per-component
sketches would state on each component's normed Wasserstein distance (10^4 normal vectors of 384 components a side,
the current shifted by 0.05), with and without the buckets, and how many components' decisions (>= 0.1) it decides.

    .venv/bin/python benchmarks/profile_columns_bytes.py [--rows 1000 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetscope.drift.profile_comparison import compare_profiles  # noqa: E402
from fleetscope.drift.profiles import profile  # noqa: E402
from tests.drift.test_text_drift import texts  # noqa: E402


def embedding_bytes(rows: int, dimensions: int, seed: int = 0) -> tuple[int, int, int]:
    """(profile bytes, rows as JSON, per-component sketches and buckets) of `rows` random vectors."""
    matrix = np.random.default_rng(seed).normal(0, 1, (rows, dimensions))
    column = pd.Series(list(matrix), dtype=object)
    summed = len(profile(pd.DataFrame({"vec": column}), embeddings=["vec"], sample_rows=0).to_bytes())
    as_rows = len(json.dumps({"columns": {"vec": matrix.tolist()}}).encode())
    components = pd.DataFrame(matrix, columns=[f"c{index}" for index in range(dimensions)])
    sketched = len(profile(components, numerical=list(components.columns), uncounted=list(components.columns),
                           sample_rows=0).to_bytes())
    return summed, as_rows, sketched


def text_bytes(rows: int, seed: int = 0) -> tuple[int, int]:
    """(profile bytes, texts as JSON) of `rows` texts of 3 to 30 words."""
    found = texts(rows, seed)
    described = len(profile(pd.DataFrame({"body": pd.Series(found, dtype=object)}), text=["body"],
                            sample_rows=0).to_bytes())
    return described, len(json.dumps({"columns": {"body": found}}).encode())


def ratio_bounds(rows: int = 10_000, dimensions: int = 384, seed: int = 0) -> list[dict]:
    """Per-component sketches compared as ratio would compare them: the median bound and the components decided."""
    rng = np.random.default_rng(seed)
    names = [f"c{index}" for index in range(dimensions)]
    sides = [pd.DataFrame(rng.normal(shift, 1, (rows, dimensions)), columns=names) for shift in (0.0, 0.05)]
    found = []
    for buckets in (False, True):
        profiles = [profile(side, numerical=names, uncounted=names, sample_rows=0) for side in sides]
        if not buckets:
            for column in (column for each in profiles for column in each.columns.values()):
                column.buckets = None
        result = compare_profiles(*profiles, methods="wasserstein", thresholds=0.1)
        found.append({"buckets": buckets, "bytes": len(profiles[0].to_bytes()),
                      "median_bound": float(np.median([drift.error_bound for drift in result.columns.values()])),
                      "decided": sum(drift.decided for drift in result.columns.values())})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--json", type=Path, help="also write the rows measured here")
    arguments = parser.parse_args()
    measured = []
    print("| Column | Rows in the interval | Profile | Rows as JSON | Per-component sketches (ratio) |")
    print("|---|---|---|---|---|")
    for rows in arguments.rows:
        for dimensions in (384, 1024):
            summed, as_rows, sketched = embedding_bytes(rows, dimensions)
            print(f"| embedding, {dimensions} dimensions | {rows:,} | {summed:,} B | {as_rows:,} B | {sketched:,} B |")
            measured.append({"column": "embedding", "dimensions": dimensions, "rows": rows, "profile_bytes": summed,
                             "json_bytes": as_rows, "component_sketch_bytes": sketched})
        described, as_rows = text_bytes(rows)
        print(f"| text | {rows:,} | {described:,} B | {as_rows:,} B | |")
        measured.append({"column": "text", "rows": rows, "profile_bytes": described, "json_bytes": as_rows})
    for row in ratio_bounds():
        print(f"ratio, 384 components, 10^4 vectors a side, {'KLL and buckets' if row['buckets'] else 'KLL only'}: "
              f"{row['bytes']:,} B, median bound {row['median_bound']:.3f}, {row['decided']} of 384 decided")
        measured.append({"column": "ratio", **row})
    if arguments.json:
        arguments.json.write_text(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
