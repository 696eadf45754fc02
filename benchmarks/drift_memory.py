"""Drift service memory per model: RSS of a real `fleetscope drift serve` with no model, then
after each batch of models, each given a reference and a window of outputs and evaluated.

    .venv/bin/python benchmarks/drift_memory.py [--models 40] [--step 10] [--rows 10000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from drift_ingest import memory_mib, send  # this directory: the benchmarks run as scripts

from fleetscope.localstack.process import fleetscope_server


def _rows(count: int, seed: int, shift: float = 0.0) -> dict:
    rng = random.Random(seed)
    return {"columns": {"score": [rng.gauss(shift, 1) for _ in range(count)],
            "latency": [rng.expovariate(5) for _ in range(count)],
            "tokens": [float(rng.randint(1, 2000)) for _ in range(count)],
            "confidence": [rng.random() for _ in range(count)],
            "label": [rng.choice("abcde") for _ in range(count)],
            "region": [rng.choice(["eu", "us", "ap"]) for _ in range(count)]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000, help="rows in each reference and each window")
    parser.add_argument("--json", type=Path, help="also write the rows measured to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "drift.yaml"
        config.write_text(f"evaluation_interval: 1h\nlimits: {{max_models: {args.models + 1}}}\n"
                          f"defaults: {{window: {{type: sliding, rows: {args.rows}}}}}\n")
        process, address = fleetscope_server(["drift", "serve", f"--config.file={config}",
                                              f"--storage.path={work}/drift.sqlite"], Path(work))
        process.start(timeout=60)
        try:
            print(f"models  RSS MiB  ({args.rows} reference rows and {args.rows} window rows, 6 columns each)")
            baseline = memory_mib(process.pid, "VmRSS")
            measured = [{"models": 0, "rss_mib": baseline}]
            print(f"{0:6d}  {baseline:7.0f}")
            for model in range(args.models):
                name = f"model-{model}"
                send(address, f"/v1/models/{name}/reference", json.dumps(_rows(args.rows, model)).encode(),
                     method="PUT")
                send(address, f"/v1/models/{name}/outputs",
                     json.dumps(_rows(args.rows, 10_000 + model, shift=0.5)).encode())
                send(address, f"/v1/models/{name}/evaluate")
                if (model + 1) % args.step == 0:
                    rss = memory_mib(process.pid, "VmRSS")
                    measured.append({"models": model + 1, "rss_mib": rss})
                    print(f"{model + 1:6d}  {rss:7.0f}   {(rss - baseline) / (model + 1):.1f} MiB a model")
        finally:
            process.stop()
    if args.json:
        args.json.write_text(json.dumps(measured))


if __name__ == "__main__":
    main()
