"""The drift service's /metrics page at limits.max_series: its size, its render time, and the service's peak memory
while concurrent scrapers read it.

Issue 35's audit shape: --models models of --columns numerical columns and a segment column of --segments values,
created by a client without a token on loopback (PUT reference, POST outputs, POST evaluate), against a fresh
`fleetscope drift serve` with the default limits. Then the page is scraped once (the first render of the
evaluations), --repeat times one at a time (served from the rendering), and --scrapers at once, --rounds times,
while the service's resident memory is sampled every 10 ms.

    .venv/bin/python benchmarks/drift_metrics_page.py [--models 100 --columns 99 --segments 20 --scrapers 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from drift_ingest import memory_mib  # this directory: the benchmarks run as scripts

from fleetscope.localstack.process import fleetscope_server


def rows(count: int, columns: int, segments: int, seed: int, shift: float = 0.0) -> bytes:
    rng = np.random.default_rng(seed)
    values = rng.normal(shift, 1, (count, columns))
    regions = rng.integers(0, segments, count)
    return json.dumps({"columns": {**{f"c{index}": values[:, index].tolist() for index in range(columns)},
                                   "region": [f"r{region}" for region in regions]}}).encode()


def request(address: str, method: str, path: str, body: bytes | None = None) -> bytes:
    call = urllib.request.Request(f"http://{address}{path}", data=body, method=method,
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=600) as response:
        return response.read()


def scrape(address: str) -> tuple[float, int]:
    started = time.perf_counter()
    page = request(address, "GET", "/metrics")
    return time.perf_counter() - started, len(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--columns", type=int, default=99)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--rows", type=int, default=400, help="rows of each model's reference and outputs")
    parser.add_argument("--scrapers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "drift.yaml"
        config.write_text("evaluation_interval: 1h\n")
        process, address = fleetscope_server(["drift", "serve", f"--config.file={config}",
                                              f"--storage.path={Path(directory) / 'store.sqlite'}"], Path(directory))
        process.start()
        try:
            started = time.monotonic()
            for model in range(args.models):
                query = "categorical=region&segments=region"
                request(address, "PUT", f"/v1/models/m{model}/reference?{query}",
                        rows(args.rows, args.columns, args.segments, seed=model))
                request(address, "POST", f"/v1/models/m{model}/outputs",
                        rows(args.rows, args.columns, args.segments, seed=model + 10_000, shift=0.5))
                request(address, "POST", f"/v1/models/m{model}/evaluate")
            print(f"{args.models} models x {args.columns + 1} columns x {args.segments} segment values made and "
                  f"evaluated in {time.monotonic() - started:.0f} s", flush=True)
            pid = process.pid
            idle = memory_mib(pid, "VmRSS")
            first, size = scrape(address)
            page = request(address, "GET", "/metrics").decode()
            series = sum(1 for line in page.splitlines() if line and not line.startswith("#"))
            dropped = sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                          if line.startswith("fleetscope_drift_dropped_series{"))
            cached = [scrape(address)[0] for _ in range(args.repeat)]
            peak, stop = [idle], threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak.append(memory_mib(pid, "VmRSS"))
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()
            concurrent: list[float] = []
            for _ in range(args.rounds):
                scrapers = [threading.Thread(target=lambda: concurrent.append(scrape(address)[0]))
                            for _ in range(args.scrapers)]
                for thread in scrapers:
                    thread.start()
                for thread in scrapers:
                    thread.join(600)
            stop.set()
            sampler.join()
            print(json.dumps({
                "series": series, "series_dropped": dropped, "bytes": size,
                "first_render_seconds": round(first, 3),
                "cached_scrape_p50_seconds": round(statistics.median(cached), 4),
                f"{args.scrapers}_concurrent_scrape_p50_seconds": round(statistics.median(concurrent), 4),
                f"{args.scrapers}_concurrent_scrape_max_seconds": round(max(concurrent), 4),
                "rss_before_scrapes_mib": round(idle, 1),
                f"rss_peak_during_{args.scrapers}_concurrent_scrapes_mib": round(max(peak), 1),
            }, indent=2))
        finally:
            process.stop()


if __name__ == "__main__":
    sys.exit(main())
