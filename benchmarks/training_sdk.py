"""The training SDK's cost per step, against the same loop bare, in one process.

Each row runs STEPS steps of a plain loop (a batch from a list, a step that does `work` microseconds of busy
arithmetic) and reports the loop's time per step and its ratio to the bare loop:
  - bare:                        the loop, nothing else;
  - fleetscope step():           each step in metrics.step(samples=..., tokens=...), the batches through metrics.data();
  - fleetscope step() + state:   the same with a state directory (one pwrite of the rank's record per step);
  - ... + a scrape per 1,000:    the same while the page is rendered every 1,000 steps, as a 15 s scrape of 15 ms steps.
The difference to bare is the SDK's cost per step; the ratio says what it costs a step of that length. The rows are
interleaved over ROUNDS rounds and the median kept, so that a noisy neighbour shifts every row alike.

    .venv/bin/python benchmarks/training_sdk.py [--steps 20000] [--work-us 0,100,1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable

from prometheus_client.exposition import generate_latest

from fleetscope.exporters.training import TrainingMetrics, registry_for

ROUNDS = 5


def _work(microseconds: float) -> Callable[[], None]:
    def busy() -> None:
        end = time.perf_counter() + microseconds / 1e6
        while time.perf_counter() < end:
            pass
    return busy


def _bare(steps: int, work: Callable[[], None]) -> float:
    batches = list(range(steps))
    started = time.perf_counter()
    for _ in batches:
        work()
    return time.perf_counter() - started


def _instrumented(steps: int, work: Callable[[], None], state_dir: str | None, scrape_every: int = 0) -> float:
    metrics = TrainingMetrics(job="bench", rank=0, hostname="bench", state_dir=state_dir)
    registry = registry_for(metrics)
    batches = list(range(steps))
    started = time.perf_counter()
    for index in metrics.data(batches):
        with metrics.step(samples=8, tokens=8192):
            work()
        if scrape_every and index % scrape_every == 0:
            generate_latest(registry)
    elapsed = time.perf_counter() - started
    metrics.close()
    return elapsed


def run(steps: int, work_us: float) -> list[dict]:
    work = _work(work_us)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as state_dir:
        rows: dict[str, Callable[[], float]] = {
            "bare": lambda: _bare(steps, work),
            "fleetscope step()": lambda: _instrumented(steps, work, None),
            "fleetscope step() + state": lambda: _instrumented(steps, work, state_dir),
            "fleetscope step() + state + a scrape per 1,000": lambda: _instrumented(steps, work, state_dir, 1000),
        }
        for _ in range(ROUNDS):
            for name, call in rows.items():
                times.setdefault(name, []).append(call())
    bare = statistics.median(times["bare"]) / steps
    return [{"row": name, "work_us": work_us, "us_per_step": statistics.median(values) / steps * 1e6,
             "sdk_us_per_step": (statistics.median(values) / steps - bare) * 1e6,
             "ratio": statistics.median(values) / steps / bare if bare else float("nan")}
            for name, values in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--work-us", default="0,100,1000", help="busy microseconds per step, comma-separated")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    rows = [row for work in args.work_us.split(",") for row in run(args.steps, float(work))]
    print(f"{'row':48} {'work µs':>8} {'µs/step':>9} {'SDK µs':>8} {'ratio':>7}")
    for row in rows:
        print(f"{row['row']:48} {row['work_us']:8.0f} {row['us_per_step']:9.2f} {row['sdk_us_per_step']:8.2f} "
              f"{row['ratio']:7.3f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
