"""How often straggler detection flags a rank that nobody slowed: the condition of FleetscopeNCCLStragglerRank
(fleetscope_nccl_rank_lateness_seconds over nccl.straggler_lateness_seconds, held for nccl.straggler_for), read from the
NCCL collector's own output, scrape by scrape, on

- the simulated NCCL job of simulation/nccl.py (8 local ranks, no straggler and no hang injected), and
- a real gloo job on CPU (straggler_job.py: compute and an all_reduce a step, timed by the collector's torch hook), with
  no rank slowed, and as a control with one rank slowed on purpose, which must be flagged.

    .venv/bin/python tests/training/straggler_false_positives.py [--seconds 120] [--ranks 4] [--sim-hours 6]

A rank-sample is one rank's lateness in one scrape; "flagged" is over the threshold; "alerts" counts the runs of
flagged scrapes of one rank lasting nccl.straggler_for, each an alert that would have fired.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fleetscope.durations import parse
from fleetscope.exporters.catalog import nccl
from fleetscope.exporters.nccl.collector import NcclCollector
from fleetscope.localstack.process import free_port
from fleetscope.mixin.config import MonitoringConfig

HERE = Path(__file__).resolve().parent
JOB = HERE / "straggler_job.py"
REPO = HERE.parent.parent
SIM_SCRAPE_SECONDS = 15.0
REAL_SCRAPE_SECONDS = 1.0


@dataclass
class Measure:
    run: str
    threshold: float
    scrape_seconds: float
    alert_after: float  # nccl.straggler_for, seconds
    slowed_rank: str = ""  # the rank slowed on purpose: its samples are detections, not false positives
    samples: int = 0
    flagged: int = 0
    alerts: int = 0
    longest_flagged_seconds: float = 0.0
    max_lateness: float = 0.0
    slowed_samples: int = 0
    detected: int = 0
    _runs: dict[str, int] = field(default_factory=dict, repr=False)

    def observe(self, lateness: dict[str, float]) -> None:
        """One scrape: each rank's lateness (keyed by communicator and rank)."""
        for key, value in lateness.items():
            if self.slowed_rank and key.endswith(f"/{self.slowed_rank}"):
                self.slowed_samples += 1
                self.detected += value > self.threshold
                continue
            self.samples += 1
            self.max_lateness = max(self.max_lateness, value)
            if value > self.threshold:
                self.flagged += 1
                self._runs[key] = self._runs.get(key, 0) + 1
                run_seconds = self._runs[key] * self.scrape_seconds
                self.longest_flagged_seconds = max(self.longest_flagged_seconds, run_seconds)
                if run_seconds == self.alert_after:  # counted once per run, as the alert fires once
                    self.alerts += 1
            else:
                self._runs[key] = 0

    @property
    def rate(self) -> float:
        return self.flagged / self.samples if self.samples else float("nan")

    @property
    def detection_rate(self) -> float:
        return self.detected / self.slowed_samples if self.slowed_samples else float("nan")

    def summary(self) -> dict:
        return {key: value for key, value in asdict(self).items() if not key.startswith("_")} | {
            "rate": self.rate, "detection_rate": self.detection_rate}


def _lateness(collector: NcclCollector) -> dict[str, float]:
    return {f"{sample.labels['comm_id']}/{sample.labels['rank']}": sample.value
            for family in collector.collect() if family.name == nccl.LATENESS.name for sample in family.samples}


def _measure(run: str, scrape_seconds: float, slowed_rank: str = "") -> Measure:
    n = MonitoringConfig().nccl
    return Measure(run, n.straggler_lateness_seconds, scrape_seconds, parse(n.straggler_for), slowed_rank)


def simulated(hours: float, seed: int, straggler_mean_interval: float = 1e12) -> Measure:
    """The simulated job on a fake clock, scraped every SIM_SCRAPE_SECONDS of simulated time."""
    from fleetscope.simulation.nccl import SimulatedJob

    job = SimulatedJob(seed=seed, straggler_mean_interval=straggler_mean_interval, hang_mean_interval=1e12)
    now = [job._at]
    collector = NcclCollector(job.root, "sim", clock=lambda: now[0], idle_seconds=1e9,
                              before_read=lambda: job.advance(now[0]))
    label = "simulated, no straggler" if straggler_mean_interval >= 1e12 else "simulated, stragglers injected"
    measure = _measure(f"{label} (seed {seed})", SIM_SCRAPE_SECONDS)
    try:
        for _ in range(int(hours * 3600 / SIM_SCRAPE_SECONDS)):
            now[0] += SIM_SCRAPE_SECONDS
            measure.observe(_lateness(collector))
    finally:
        collector.close()
        job.close()
    return measure


def real(seconds: float, ranks: int, slow_rank: int = -1, slow_seconds: float = 0.0,
         clock: Callable[[], float] = time.monotonic) -> Measure:
    """A real gloo job of `ranks` processes on this machine, its collector scraped every REAL_SCRAPE_SECONDS while
    it runs. The first 10 seconds (start-up, the moving average settling) are not counted."""
    label = "real gloo, no rank slowed" if slow_rank < 0 else f"real gloo, rank {slow_rank} slowed {slow_seconds}s"
    measure = _measure(f"{label} ({ranks} ranks, {seconds:g}s)", REAL_SCRAPE_SECONDS,
                       str(slow_rank) if slow_rank >= 0 else "")
    with tempfile.TemporaryDirectory(prefix="fleetscope-straggler-") as directory:
        master = free_port()
        processes = []
        for rank in range(ranks):
            env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master), "RANK": str(rank),
                   "WORLD_SIZE": str(ranks), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
            processes.append(subprocess.Popen(
                [sys.executable, str(JOB), directory, str(seconds), str(slow_rank), str(slow_seconds)], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        collector = NcclCollector(Path(directory), socket.gethostname())
        started = clock()
        try:
            deadline = started + seconds + 120
            while any(process.poll() is None for process in processes):
                if clock() > deadline:
                    raise TimeoutError(f"the gloo job ran past {seconds + 120:g}s")
                time.sleep(REAL_SCRAPE_SECONDS)
                lateness = _lateness(collector)
                if clock() - started > 10:
                    measure.observe(lateness)
        finally:
            collector.close()
            for process in processes:
                if process.poll() is None:
                    process.kill()
                process.wait()
        errors = [process.stderr.read().decode(errors="replace")[-2000:] for process in processes
                  if process.returncode and process.stderr]
        for process in processes:
            if process.stderr:
                process.stderr.close()
        if errors:
            raise RuntimeError(f"a rank of the gloo job failed: {errors[0]}")
    return measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long each real job runs")
    parser.add_argument("--ranks", type=int, default=4, help="ranks of the real job, all on this machine")
    parser.add_argument("--sim-hours", type=float, default=6.0, help="simulated hours per seed")
    parser.add_argument("--seeds", type=int, default=3, help="simulated runs, one per seed")
    parser.add_argument("--json", help="also write the measures to this file")
    args = parser.parse_args(argv)
    measures = [simulated(args.sim_hours, seed) for seed in range(1, args.seeds + 1)]
    measures.append(simulated(args.sim_hours, 1, straggler_mean_interval=900.0))
    measures.append(real(args.seconds, args.ranks))
    measures.append(real(args.seconds, args.ranks, slow_rank=1, slow_seconds=0.1))
    print("| run | rank-samples (not slowed) | flagged | false-positive rate | longest flagged run | alerts | "
          "max lateness | slowed rank flagged |")
    print("|---|---|---|---|---|---|---|---|")
    for m in measures:
        detection = f"{m.detected}/{m.slowed_samples}" if m.slowed_samples else "-"
        print(f"| {m.run} | {m.samples} | {m.flagged} | {m.rate:.4f} | {m.longest_flagged_seconds:g} s | {m.alerts} "
              f"| {m.max_lateness * 1000:.1f} ms | {detection} |")
    if args.json:
        Path(args.json).write_text(json.dumps([m.summary() for m in measures], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
