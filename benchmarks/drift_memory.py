"""Drift service memory per model: RSS of a real `fleetscope drift serve` with no model, then
after each batch of models, each given a reference and a window of outputs and evaluated.

    .venv/bin/python benchmarks/drift_memory.py [--models 40] [--step 10] [--rows 10000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import urllib.request
from pathlib import Path

from fleetscope.localstack.process import fleetscope_server

def _rows(count: int, seed: int, shift: float = 0.0) -> dict:
    rng = random.Random(seed)
    return {"columns": {"score": [rng.gauss(shift, 1) for _ in range(count)],
            "latency": [rng.expovariate(5) for _ in range(count)],
            "tokens": [float(rng.randint(1, 2000)) for _ in range(count)],
            "confidence": [rng.random() for _ in range(count)],
            "label": [rng.choice("abcde") for _ in range(count)],
            "region": [rng.choice(["eu", "us", "ap"]) for _ in range(count)]}}


def _call(address: str, method: str, path: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


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
            baseline = _rss_mib(process.pid)
            measured = [{"models": 0, "rss_mib": baseline}]
            print(f"{0:6d}  {baseline:7.0f}")
            for model in range(args.models):
                name = f"model-{model}"
                _call(address, "PUT", f"/v1/models/{name}/reference", _rows(args.rows, model))
                _call(address, "POST", f"/v1/models/{name}/outputs", _rows(args.rows, 10_000 + model, shift=0.5))
                _call(address, "POST", f"/v1/models/{name}/evaluate")
                if (model + 1) % args.step == 0:
                    rss = _rss_mib(process.pid)
                    measured.append({"models": model + 1, "rss_mib": rss})
                    print(f"{model + 1:6d}  {rss:7.0f}   {(rss - baseline) / (model + 1):.1f} MiB a model")
        finally:
            process.stop()
    if args.json:
        args.json.write_text(json.dumps(measured))


if __name__ == "__main__":
    main()
