"""Scrape latency and CPU per scrape of the exporter's whole page, against a bare prometheus_client page.

For 8 and 64 simulated GPUs, with every collector on as the exporter ships (GPU, fabric, NCCL),
it measures, in one run on one machine:
  - baseline: prometheus_client's own HTTP server serving a static page with the same series;
  - poll:     the exporter with every collector polled in the background (the default);
  - scrape:   the exporter reading everything at every scrape (each --collector.*.poll-interval=0s);
each with the fake NVML answering instantly ("python cost") and with a modeled driver
("driver"): 30 us per call and 20 ms for nvmlDeviceGetPcieThroughput, which NVML documents
as sampling over 20 ms. The fabric is a sysfs tree laid out like a real node's (8 NDR
InfiniBand ports and one RoCE port, counters and hw_counters), read from files at every
collection; --fabric simulated also rewrites it before each read, as --simulate does. The
NCCL collector follows the simulated job's Inspector files. --compat-dcgm turns on dcgm-exporter
compatibility (every GPU reading served a second time under its DCGM name) in every configuration,
the baseline's static page included, so that the ratio compares like with like.

Each server runs in its own process so its CPU time and memory can be read from /proc without
counting the client's. For polling, the CPU of the polls themselves is measured apart (idle
intervals); the last columns add polls and scrapes up for one 15 s scrape interval and for an
hour with two Prometheus replicas scraping every 15 s, and give the exporter's resident memory.

    .venv/bin/python benchmarks/scrape_latency.py            # full run, prints a table
    .venv/bin/python benchmarks/scrape_latency.py --quick    # a smoke run
    .venv/bin/python benchmarks/scrape_latency.py --compat-dcgm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DRIVER_LATENCY = {"default": 30e-6, "nvmlDeviceGetPcieThroughput": 20e-3}


def serve(mode: str, gpus: int, driver: bool, port_file: str, poll_interval: float, fabric: str,
          compat_dcgm: bool) -> None:
    """Child process: serve one configuration until killed."""
    from fleetscope.simulation import gpu as simulation
    from fleetscope.simulation.fabric import SimulatedFabric

    if fabric == "static":
        # The simulated tree is written once, at its creation, and then only read, as a real node's sysfs is.
        advance = SimulatedFabric.advance

        def advance_once(self, now=None):
            if not getattr(self, "written", False):
                advance(self, now)
                self.written = True

        SimulatedFabric.advance = advance_once

    real = simulation.simulated_nvml

    def modeled(**kwargs):
        fake = real(**kwargs)
        if driver:
            fake.latency_seconds = DRIVER_LATENCY["default"]
            fake.latency_by_function = {k: v for k, v in DRIVER_LATENCY.items() if k != "default"}
        return fake

    simulation.simulated_nvml = modeled
    from fleetscope.cli import build_parser
    from fleetscope.simulation.node import build

    interval = "0s" if mode in ("scrape", "baseline") else f"{poll_interval:g}s"
    # As shipped, NCCL polls every 5 s whatever the others do (its files can grow fast).
    nccl = interval if mode != "poll" else f"{min(poll_interval, 5.0):g}s"
    intervals = [f"--collector.gpu.poll-interval={interval}", f"--collector.fabric.poll-interval={interval}",
                 f"--collector.nccl.poll-interval={nccl}"]
    argv = ["exporter", "--simulate", f"--simulate.gpus={gpus}", "--web.listen-address=127.0.0.1:0", *intervals,
            *(["--compat.dcgm"] if compat_dcgm else [])]
    args = build_parser(argv).parse_args(argv)  # loads only the exporter, so its resident memory is the exporter's
    registry, server = build(args)
    if mode == "baseline":
        # The same series, collected once, served by prometheus_client's own server.
        from prometheus_client import CollectorRegistry, start_http_server

        registry.snapshot()  # GPM series appear from the second collection
        metrics = list(registry.collect())
        server.shutdown()
        registry.close()

        class Static:
            def collect(self):
                return metrics

        bare = CollectorRegistry(auto_describe=False)
        bare.register(Static())
        http, thread = start_http_server(0, addr="127.0.0.1", registry=bare)
        port = http.server_port
    else:
        server.start()
        port = server.port
    with open(port_file, "w") as out:
        out.write(str(port))
    while True:
        time.sleep(3600)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(mode: str, gpus: int, driver: bool, scrapes: int, tmpdir: str, poll_interval: float,
            fabric: str, compat_dcgm: bool) -> dict:
    port_file = os.path.join(tmpdir, f"{mode}-{gpus}-{driver}.port")
    child = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--gpus", str(gpus),
                              "--driver", str(int(driver)), "--port-file", port_file,
                              "--poll-interval", str(poll_interval), "--fabric", fabric,
                              *(["--compat-dcgm"] if compat_dcgm else [])],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(port_file) or not Path(port_file).read_text():
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"{mode} server did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{Path(port_file).read_text()}/metrics"
        body = urllib.request.urlopen(url, timeout=60).read()
        if mode == "poll":
            # GPM series appear from the second poll; measure the full page.
            deadline = time.monotonic() + poll_interval * 3
            while b"fleetscope_gpu_sm_active_ratio{" not in body and time.monotonic() < deadline:
                time.sleep(0.2)
                body = urllib.request.urlopen(url, timeout=60).read()
        for _ in range(3):  # warm up
            body = urllib.request.urlopen(url, timeout=60).read()
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        gpm = b"fleetscope_gpu_sm_active_ratio{" in body
        latencies = []
        cpu_before = cpu_seconds(child.pid)
        wall_before = time.perf_counter()
        for _ in range(scrapes):
            started = time.perf_counter()
            urllib.request.urlopen(url, timeout=60).read()
            latencies.append(time.perf_counter() - started)
        wall = time.perf_counter() - wall_before
        cpu = cpu_seconds(child.pid) - cpu_before
        latencies.sort()
        result = {"mode": mode, "gpus": gpus, "nvml": "driver" if driver else "python cost", "series": series,
                  "gpm_series": gpm,
                  "p50_ms": 1000 * statistics.median(latencies),
                  "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
                  "cpu_ms_per_scrape": 1000 * cpu / scrapes, "wall_s": wall, "cpu_ms_per_poll": None,
                  "rss_mib": resident_mib(child.pid), "fabric": fabric, "compat_dcgm": compat_dcgm}
        if mode == "poll":
            # What polling costs on its own: CPU over idle poll intervals, plus the one
            # re-render each new poll causes at the next scrape.
            polls = 2
            cpu_before = cpu_seconds(child.pid)
            time.sleep(poll_interval * polls)
            urllib.request.urlopen(url, timeout=60).read()
            result["cpu_ms_per_poll"] = 1000 * (cpu_seconds(child.pid) - cpu_before) / polls
        return result
    finally:
        child.kill()
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few scrapes, 8 GPUs only: checks the benchmark runs")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--poll-interval", type=float, default=15.0,
                        help="the polled exporter's interval in seconds (the exporter's default is 15)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--gpus", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--driver", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--fabric", choices=["static", "simulated"], default="static",
                        help="a sysfs tree only read, as on a real node, or rewritten before every read as "
                             "--simulate does")
    parser.add_argument("--compat-dcgm", action="store_true",
                        help="serve the GPU readings under dcgm-exporter's names too (--compat.dcgm)")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.gpus, bool(args.driver), args.port_file, args.poll_interval, args.fabric,
              args.compat_dcgm)
        return

    import tempfile

    sizes = [8] if args.quick else [8, 64]
    poll_interval = 1.0 if args.quick else args.poll_interval
    results = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for gpus in sizes:
            scrapes = 5 if args.quick else (200 if gpus == 8 else 60)
            for driver in (False, True):
                for mode in ("baseline", "poll", "scrape"):
                    if mode == "baseline" and driver:
                        continue
                    scrapes_here = max(3, scrapes // 10) if (mode == "scrape" and driver) else scrapes
                    results.append(measure(mode, gpus, driver, scrapes_here, tmpdir, poll_interval, args.fabric,
                                           args.compat_dcgm))
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(f"{'gpus':>4} {'mode':<9} {'nvml':<12} {'series':>6} {'p50 ms':>8} {'p99 ms':>8} {'x base p99':>10} "
          f"{'CPU ms/scrape':>13} {'CPU ms/poll':>11} {'CPU ms/15s':>10} {'CPU s/h, 2 scrapers':>19} {'RSS MiB':>7}")
    scrape_interval = 15.0
    for row in results:
        base = next(r for r in results if r["gpus"] == row["gpus"] and r["mode"] == "baseline")
        per_poll = row["cpu_ms_per_poll"]
        # Everything one scrape every 15 s costs: the polls in between plus the scrape itself.
        polls = scrape_interval / poll_interval * per_poll if per_poll is not None else 0
        per_interval = row["cpu_ms_per_scrape"] + polls
        # An hour of two Prometheus replicas scraping every 15 s: 480 scrapes and 240 intervals of polls.
        row["cpu_s_per_hour_two_scrapers"] = (2 * row["cpu_ms_per_scrape"] + polls) * 3600 / scrape_interval / 1000
        print(f"{row['gpus']:>4} {row['mode']:<9} {row['nvml']:<12} {row['series']:>6} {row['p50_ms']:>8.2f} "
              f"{row['p99_ms']:>8.2f} {row['p99_ms'] / base['p99_ms']:>10.2f} {row['cpu_ms_per_scrape']:>13.2f} "
              f"{per_poll if per_poll is not None else float('nan'):>11.1f} {per_interval:>10.1f} "
              f"{row['cpu_s_per_hour_two_scrapers']:>19.1f} {row['rss_mib']:>7.0f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
