"""Model quality's cost in the drift service: label ingest and join throughput at 10^6 stored outputs, what
request ids add to output ingest, and the time to evaluate a window's realized and estimated quality.

In process, on a throwaway store (SQLite, synchronous=FULL, as the service runs it), on a moved clock:
1. --outputs outputs (default 10^6) of a binary classifier, in batches of 10^5, with request ids, and the
   same batches without (a model whose quality is not measured): ingest time each, and the ratio;
2. labels for --labels of them (default 2 * 10^5), in batches of 10^4, ids drawn at random over all stored
   outputs: labels joined per second;
3. evaluations of windows holding 10^4, 10^5 and 10^6 outputs, half of them labelled, after an hour of
   labelled outputs to calibrate on: CPU seconds per evaluation (the median of --repeat).

    .venv/bin/python benchmarks/model_quality.py [--outputs 1000000] [--labels 200000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fleetscope.drift.service import config as service_config
from fleetscope.drift.service import outcomes
from fleetscope.drift.service.service import DriftService

BATCH = 100_000
LABEL_BATCH = 10_000
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def service(path: Path, clock: Clock, measured: bool, window: str = "1h") -> DriftService:
    model = {"columns": {"amount": "numerical", "p": "numerical", "label": "categorical"},
             "window": {"type": "sliding", "duration": "10m"}}
    if measured:
        model["quality"] = {"task": "classification", "request_id": "request_id", "prediction": "label",
                            "confidence": "p", "confidence_of": "positive", "positive": "fraud", "window": window,
                            "horizon": "2d"}
    document = {"storage": {"path": str(path), "retention": "3d"}, "models": {"fraud": model},
                "limits": {"max_rows_per_batch": BATCH, "max_body_bytes": 64 << 20}}
    return DriftService(service_config.parse(document), clock=clock)


def outputs_body(rows: int, first: int, rng: np.random.Generator, with_ids: bool) -> bytes:
    p = rng.random(rows)
    columns = {"amount": rng.lognormal(3, 1, rows).round(2).tolist(), "p": p.round(4).tolist(),
               "label": np.where(p >= 0.5, "fraud", "ok").tolist()}
    if with_ids:
        columns["request_id"] = [f"req-{index}" for index in range(first, first + rows)]
    return json.dumps({"columns": columns}).encode()


def labels_body(ids: np.ndarray, rng: np.random.Generator) -> bytes:
    actual = np.where(rng.random(len(ids)) < 0.3, "fraud", "ok")
    return json.dumps({"columns": {"request_id": [f"req-{index}" for index in ids],
                                   "actual": actual.tolist()}}).encode()


def ingest(args: argparse.Namespace, directory: Path) -> dict:
    rng = np.random.default_rng(1)
    timings: dict[str, float] = {}
    for measured in (False, True):
        clock = Clock()
        drift = service(directory / f"ingest-{measured}.sqlite", clock, measured)
        spent = 0.0
        for first in range(0, args.outputs, BATCH):
            body = outputs_body(BATCH, first, rng, with_ids=measured)
            clock.now += 1
            began = time.perf_counter()
            drift.ingest("fraud", body, "application/json")
            spent += time.perf_counter() - began
        timings["with_ids" if measured else "without_ids"] = spent
        if measured:
            joined, began = 0, time.perf_counter()
            for _ in range(0, args.labels, LABEL_BATCH):
                clock.now += 1
                ids = rng.choice(args.outputs, LABEL_BATCH, replace=False)
                joined += drift.ingest_labels("fraud", labels_body(ids, rng), "application/json").counts.get(
                    "joined", 0)
            label_seconds = time.perf_counter() - began
        drift.close()
    return {"stored_outputs": args.outputs, "output_ingest_seconds": timings,
            "output_rows_per_second": {name: args.outputs / seconds for name, seconds in timings.items()},
            "request_id_cost_ratio": timings["with_ids"] / timings["without_ids"],
            "labels_sent": args.labels, "labels_joined": joined, "label_seconds": label_seconds,
            "labels_per_second": args.labels / label_seconds}


def evaluation(args: argparse.Namespace, directory: Path) -> list[dict]:
    rng = np.random.default_rng(2)
    results = []
    for size in (10_000, 100_000, 1_000_000):
        clock = Clock()
        drift = service(directory / f"evaluate-{size}.sqlite", clock, True, window="30m")
        # an hour ago: 20,000 labelled outputs to calibrate on
        drift.ingest("fraud", outputs_body(20_000, 0, rng, True), "application/json")
        for first in range(0, 20_000, LABEL_BATCH):
            drift.ingest_labels("fraud", labels_body(np.arange(first, first + LABEL_BATCH), rng),
                                "application/json")
        clock.now += 3600
        first = 1_000_000
        for start in range(0, size, BATCH):
            rows = min(BATCH, size - start)
            drift.ingest("fraud", outputs_body(rows, first + start, rng, True), "application/json")
            labelled = np.arange(first + start, first + start + rows, 2)
            for chunk in range(0, len(labelled), LABEL_BATCH):
                drift.ingest_labels("fraud", labels_body(labelled[chunk:chunk + LABEL_BATCH], rng),
                                    "application/json")
        clock.now += 60
        seconds = []
        for _ in range(args.repeat):
            began = time.process_time()
            window = outcomes.evaluate(drift.store, drift.models()["fraud"], clock.now, 20)
            seconds.append(time.process_time() - began)
        assert window.outputs == size and window.labelled == size // 2 and window.estimated, window.message
        results.append({"window_outputs": size, "labelled": window.labelled,
                        "calibration_rows": window.calibration_rows,
                        "cpu_seconds_median": statistics.median(seconds), "cpu_seconds": seconds})
        drift.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        result = {"ingest": ingest(args, Path(directory)), "evaluation": evaluation(args, Path(directory))}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
