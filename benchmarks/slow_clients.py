"""Honest scrape latency while attackers hold far more slow connections than the server's cap.

For the exporter (`fleetscope exporter --simulate`, 8 GPUs) and the drift service, each its own
process on loopback: --scrapes honest GETs of /metrics (a new connection each, the worst case
for a scraper), first with the server idle (the baseline), then while --attackers connections
(well above the cap: 64 for the exporter, 1024 for the drift service) send their request heads
one byte every --interval seconds, reconnecting whenever the server ends them. Reports p50 and
p99 latency and failures of the honest scrapes for both, in the same run.

    .venv/bin/python benchmarks/slow_clients.py [--attackers 3000] [--scrapes 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.slow_clients

from fleetscope.localstack.process import fleetscope_server  # noqa: E402
from tests.support.slow_clients import SlowClients  # noqa: E402

DRIFT_CONFIG = """
evaluation_interval: 1h
models:
  iris: {columns: {score: numerical, label: categorical}}
"""


def attack(port: int, count: int, interval: float, stop, held_open) -> None:
    with SlowClients(port, count, "headers", interval=interval, reconnect=True) as clients:
        stop.wait(600)
        held_open.value = clients.open


def scrape_latencies(address: str, count: int) -> tuple[list[float], int]:
    latencies, failures = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
                response.read()
            latencies.append(time.perf_counter() - started)
        except OSError:
            failures += 1
    return latencies, failures


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(server: str, command: list[str], attackers: int, scrapes: int, interval: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        if server == "drift":
            config = Path(directory) / "drift.yaml"
            config.write_text(DRIFT_CONFIG)
            command = [*command, f"--config.file={config}", f"--storage.path={Path(directory) / 'store.sqlite'}"]
        process, address = fleetscope_server(command, Path(directory))
        process.start(timeout=60)
        try:
            port = int(address.rsplit(":", 1)[1])
            scrape_latencies(address, 20)  # warm up
            for phase in ("idle", "attacked"):
                if phase == "idle":
                    latencies, failures = scrape_latencies(address, scrapes)
                    held = 0
                else:
                    # The attackers run in their own process, so that they do not slow the honest
                    # client down by taking its interpreter lock: only the server's delay is measured.
                    stop, held_open = multiprocessing.Event(), multiprocessing.Value("i", 0)
                    attacker = multiprocessing.Process(target=attack, args=(port, attackers, interval, stop, held_open))
                    attacker.start()
                    try:
                        time.sleep(2 + 2 * interval)
                        latencies, failures = scrape_latencies(address, scrapes)
                    finally:
                        stop.set()
                        attacker.join(30)
                    held = held_open.value
                rows.append({"server": server, "phase": phase, "attackers": attackers if phase == "attacked" else 0,
                             "attacker_connections_open": held, "scrapes": scrapes, "failures": failures,
                             "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99),
                             "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan")})
        finally:
            process.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attackers", type=int, default=3000)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between an attacker's bytes")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    rows = measure("exporter", ["exporter", "--simulate"], args.attackers, args.scrapes, args.interval)
    rows += measure("drift", ["drift", "serve"], args.attackers, args.scrapes, args.interval)
    for row in rows:
        print(f"{row['server']:8} {row['phase']:8} attackers {row['attackers']:5} (open at the end "
              f"{row['attacker_connections_open']:4})  {row['scrapes']} scrapes: p50 {row['p50_ms']:6.1f} ms  "
              f"p99 {row['p99_ms']:7.1f} ms  failed {row['failures']}")
    for server in ("exporter", "drift"):
        idle, attacked = (next(r for r in rows if r["server"] == server and r["phase"] == phase)
                          for phase in ("idle", "attacked"))
        p50, p99 = attacked["p50_ms"] / idle["p50_ms"], attacked["p99_ms"] / idle["p99_ms"]
        print(f"{server}: p50 x{p50:.2f}, p99 x{p99:.2f} under attack against idle")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
