"""The drift service's sustained ingest rate through HTTP, and its memory while ingesting.

Starts `fleetscope drift serve` as its own process on loopback with a throwaway store, sets
a reference, then --clients threads post batches of --batch rows for --seconds, as JSON
columns and as Arrow IPC streams. Every batch is durable (SQLite, synchronous=FULL) before
its 202. Reports accepted rows per second and the service's peak resident memory (VmHWM),
before and after the run; the service evaluates the model every second meanwhile, over a
sliding window capped at 100k rows, so memory must stay flat however long the run.

    .venv/bin/python benchmarks/drift_ingest.py [--seconds 20] [--clients 4] [--batch 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa

from fleetscope.localstack.process import fleetscope_server

CONFIG = """
evaluation_interval: 1s
limits: {max_rows_per_batch: 10000, max_concurrent_writes: 16}
models:
  llm:
    columns: {score: numerical, confidence: numerical, output_tokens: numerical, latency: numerical,
              label: categorical, region: categorical}
    window: {type: sliding, rows: 100000}
"""


def batch(rows: int, seed: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    return {"score": rng.normal(0, 1, rows).tolist(), "confidence": rng.beta(5, 2, rows).tolist(),
            "output_tokens": rng.poisson(200, rows).astype(float).tolist(),
            "latency": rng.gamma(2, 0.1, rows).tolist(),
            "label": rng.choice(["a", "b", "c", "d"], rows).tolist(), "region": rng.choice(["eu", "us"], rows).tolist()}


def bodies(rows: int, encoding: str) -> list[tuple[bytes, str]]:
    made = []
    for seed in range(8):
        columns = batch(rows, seed)
        if encoding == "json":
            made.append((json.dumps({"columns": columns}).encode(), "application/json"))
        else:
            table = pa.table(columns)
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            made.append((sink.getvalue(), "application/vnd.apache.arrow.stream"))
    return made


def send(address: str, path: str, body: bytes = b"", content_type: str = "application/json",
         method: str = "POST") -> dict:
    """One request to the drift service; its JSON answer."""
    request = urllib.request.Request(f"http://{address}{path}", data=body, method=method,
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def memory_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of /proc/PID/status in MiB: VmHWM, the peak resident set, or VmRSS, the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(address: str, pid: int, encoding: str, clients: int, rows: int, seconds: float) -> dict:
    payloads = bodies(rows, encoding)
    accepted, lock = [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        sent = 0
        while time.monotonic() < deadline:
            body, content_type = payloads[(index + sent) % len(payloads)]
            count = send(address, "/v1/models/llm/outputs", body, content_type)["accepted"]
            sent += 1
            with lock:
                accepted[0] += count

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {"encoding": encoding, "clients": clients, "batch_rows": rows, "seconds": elapsed,
            "rows_accepted": accepted[0], "rows_per_second": accepted[0] / elapsed,
            "service_peak_rss_mib": memory_mib(pid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "drift.yaml"
        config.write_text(CONFIG)
        service, address = fleetscope_server(["drift", "serve", f"--config.file={config}",
                                              f"--storage.path={Path(directory) / 'store.sqlite'}"], Path(directory))
        service.start(timeout=60)
        try:
            pid = service.pid
            send(address, "/v1/models/llm/reference", json.dumps({"columns": batch(20_000, 99)}).encode(),
                 method="PUT")
            results = [{"encoding": "idle", "service_peak_rss_mib": memory_mib(pid)}]
            for encoding in ("json", "arrow"):
                results.append(run(address, pid, encoding, args.clients, args.batch, args.seconds))
            store = sum(path.stat().st_size for path in Path(directory).glob("store.sqlite*"))
        finally:
            service.stop()
    for row in results:
        if row["encoding"] == "idle":
            print(f"service idle with a reference: peak RSS {row['service_peak_rss_mib']:.0f} MiB")
        else:
            print(f"{row['encoding']:5} {row['clients']} clients x {row['batch_rows']}-row batches: "
                  f"{row['rows_per_second']:,.0f} rows/s durable ({row['rows_accepted']:,} rows in "
                  f"{row['seconds']:.1f}s); service peak RSS {row['service_peak_rss_mib']:.0f} MiB")
    print(f"store on disk after the run: {store / 2**20:.0f} MiB")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
