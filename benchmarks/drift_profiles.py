"""Drift at fleet scale: the drift service's central cost fed profiles, against fed rows, as traffic grows; and
the model server's added cost per row in each mode.

Service: `--replicas` replicas of a 20-column model (15 numerical, 5 categorical) each send one profile a minute
(profile mode) or their rows (row mode) for `--minutes` minutes, at each total rate of `--rates` rows a second.
Each (mode, rate) runs in a fresh process holding one DriftService on a throwaway store, on a clock moved by
hand (no waiting), with a sliding window of those minutes and a reference of 5,000 rows. Measured: CPU to
ingest a minute of traffic, CPU per evaluation (median of 7), resident memory the service state adds (VmHWM
after the run minus VmRSS before it), and the data stored per day of traffic (the stored profiles' or row
batches' bytes per minute x 1,440; SQLite's own overhead and write-ahead log left out).
Replicas' profiles are drawn from a pool of `--pool` profiles a minute, each of its own rows: the service
merges and stores every replica's profile as it would 1,000 distinct ones (the pool only saves the
benchmark's time generating rows). Row mode runs at the rates up to `--row-max-rate` (past it, a minute of
rows takes this machine longer than a minute to store).

Client: DriftClient in each mode sends `--client-rows` rows of the same model to a sink that answers 202, in a
separate process; CPU per row is the client process's (its send() calls and its background thread).

    .venv/bin/python benchmarks/drift_profiles.py [--replicas 1000] [--rates 1000,10000,100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

NUMERICAL = [f"n{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
START = 1_800_000_000.0  # a multiple of a minute and an hour
EVALUATIONS = 7  # per case; their median is reported


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict = {name: rng.normal(index, 1 + index / 10, rows) for index, name in enumerate(NUMERICAL)}
    data.update({name: rng.choice([f"v{v}" for v in range(4 + 3 * index)], rows)
                 for index, name in enumerate(CATEGORICAL)})
    return pd.DataFrame(data)


def _memory_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _arrow(df: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    table = pa.Table.from_pandas(df, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def scenario(mode: str, rate: int, replicas: int, minutes: int, pool_size: int) -> dict:
    """One (mode, rate) in this process: the service's costs."""
    from fleetscope.drift.profiles import profile
    from fleetscope.drift.service import config as service_config
    from fleetscope.drift.service.service import DriftService

    rows_per_post = max(1, round(rate * 60 / replicas))
    pool = []
    for seed in range(pool_size):
        data = frame(rows_per_post, seed)
        pool.append(profile(data, NUMERICAL, CATEGORICAL).to_bytes() if mode == "profiles" else _arrow(data))
    columns = {**{name: "numerical" for name in NUMERICAL}, **{name: "categorical" for name in CATEGORICAL}}
    window = {"type": "sliding", "duration": f"{minutes}m", **({"rows": 1_000_000} if mode == "rows" else {})}
    with tempfile.TemporaryDirectory() as directory:
        document = {"storage": {"path": f"{directory}/store.sqlite", "retention": "7d"},
                    "models": {"m": {"mode": mode, "columns": columns, "window": window}}}
        clock = [START]
        service = DriftService(service_config.parse(document), clock=lambda: clock[0])
        service.put_reference("m", _arrow(frame(5000, 10_000)), "application/vnd.apache.arrow.stream")
        baseline_rss = _memory_mib("VmRSS")
        ingest_cpu = time.process_time()
        for minute in range(minutes):
            start = START + 60 * minute
            clock[0] = start + 60  # replicas send once their minute is over
            for replica in range(replicas):
                body = pool[(replica * 7 + minute) % pool_size]
                if mode == "profiles":
                    service.ingest_profile("m", body, f"replica-{replica}", start, 60)
                else:
                    service.ingest("m", body, "application/vnd.apache.arrow.stream")
        ingest_cpu = time.process_time() - ingest_cpu
        table = "profile_intervals" if mode == "profiles" else "batches"
        stored_bytes = service.store._reader.execute(f"SELECT SUM(LENGTH(data)) FROM {table}").fetchone()[0]
        evaluations = []
        for _ in range(EVALUATIONS):
            started = time.process_time()
            result = service.evaluate("m")
            evaluations.append(time.process_time() - started)
            assert result.outcome == "success", result.message
        peak = _memory_mib("VmHWM")
        service.close()
    return {"mode": mode, "rows_per_second": rate, "replicas": replicas, "rows_per_post": rows_per_post,
            "minutes": minutes, "current_rows": result.current_rows,
            "approximate_columns": sum(c.approximate for c in result.result.columns.values()),
            "ingest_cpu_seconds_per_minute": ingest_cpu / minutes,
            "evaluation_cpu_seconds": statistics.median(evaluations),
            "state_memory_mib": peak - baseline_rss, "peak_rss_mib": peak,
            "store_bytes_per_day": stored_bytes / minutes * 1440}


def _in_fresh_process(*args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(scenario, args)


SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(202); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def client_cost(mode: str, rows: int, url: str) -> dict:
    """CPU per row of DriftClient in this process, sending `rows` rows; run in a fresh process."""
    from fleetscope.drift.client import DriftClient

    records = frame(rows, 1).to_dict("records")
    kinds = {"numerical": NUMERICAL, "categorical": CATEGORICAL} if mode == "profile" else {}
    client = DriftClient(url, "m", mode=mode, batch_rows=1000, flush_interval=0.2, max_queue_rows=rows, **kinds)
    started, wall = time.process_time(), time.monotonic()
    for offset in range(0, rows, 100):
        client.send_many(records[offset:offset + 100])
    client.close(timeout=120)
    cpu = time.process_time() - started
    return {"mode": mode, "rows": rows, "sent": client.sent, "dropped": dict(client.dropped),
            "cpu_microseconds_per_row": cpu / rows * 1e6, "seconds": time.monotonic() - wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--rates", default="1000,10000,100000", help="total rows a second, comma-separated")
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--row-max-rate", type=int, default=1000)
    parser.add_argument("--client-rows", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    results: dict = {"service": [], "client": []}
    for rate in rates:
        for mode in ("profiles", "rows"):
            if mode == "rows" and rate > args.row_max_rate:
                continue
            found = _in_fresh_process(mode, rate, args.replicas, args.minutes, args.pool)
            results["service"].append(found)
            print(json.dumps(found), flush=True)
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        for mode in ("rows", "profile"):
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                found = pool.apply(client_cost, (mode, args.client_rows, url))
            results["client"].append(found)
            print(json.dumps(found), flush=True)
    finally:
        sink.terminate()
        sink.wait(10)
    profiles = [r for r in results["service"] if r["mode"] == "profiles"]
    # Flatness of the resident set rather than of the state's few MiB, which RSS measures only to a MiB or so.
    for key in ("evaluation_cpu_seconds", "peak_rss_mib", "store_bytes_per_day", "ingest_cpu_seconds_per_minute"):
        values = [r[key] for r in profiles]
        results.setdefault("profile_flatness", {})[key] = max(values) / min(values) if min(values) > 0 else None
    client = {r["mode"]: r["cpu_microseconds_per_row"] for r in results["client"]}
    results["client_cost_ratio_profile_to_rows"] = client["profile"] / client["rows"]
    print(json.dumps({"profile_flatness": results["profile_flatness"],
                      "client_cost_ratio_profile_to_rows": results["client_cost_ratio_profile_to_rows"]}))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
