"""Whether the drift service gives memory back after a burst of large bodies.

A fresh `fleetscope drift serve` (the iris model of the tests) records its resident memory
(VmRSS) after start and after one small warm-up write: its idle figure. Then --clients clients
post, for --seconds, large bodies in every format (100,000 rows each: 15.4 MiB of JSON rows,
CSV, zstd Parquet, an Arrow stream) and hostile ones the service refuses (an over-long category
after 100,000 rows of JSON, too many rows in JSON, Parquet and Arrow, a body over max_body_bytes,
a Parquet dictionary of values over max_category_length), each client in its own seeded order. After the
burst the service is left idle and its RSS polled for up to --settle seconds (until it holds
still). The row reports idle RSS, the peak (VmHWM), RSS at rest after the burst and its ratio
to idle, the answers, the accepted bodies per second, and the rate of small writes (1,000
rows of JSON each, --honest-seconds before the burst), which giving memory back must not slow.

--env NAME=VALUE starts the service with an allocator setting (MALLOC_ARENA_MAX=2,
ARROW_DEFAULT_MEMORY_POOL=system, ...); --baseline runs it without fleetscope.web.memory (no
allocator settings at start, no give-back after writes), as the service was before it;
--no-give-back keeps the settings at start but never gives memory back after a write, to
measure what giving back costs the writers.

    .venv/bin/python benchmarks/memory_after_burst.py [--seconds 60] [--clients 4] [--settle 30] [--seed 1]
        [--honest-seconds 10]
        [--env NAME=VALUE ...] [--baseline | --no-give-back] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.drift builds the model and hostile bodies

from drift_ingest import memory_mib  # noqa: E402 (this directory: the benchmarks run as scripts)

from fleetscope.localstack.process import fleetscope_server  # noqa: E402
from tests.drift import hostile  # noqa: E402
from tests.drift.support import MODEL_CONFIG, outputs  # noqa: E402

MAX_BODY_BYTES = 16 << 20  # the service's default limits.max_body_bytes
MAX_ROWS = 100_000  # and limits.max_rows_per_batch
OUTPUTS = "/v1/models/iris/outputs"

# Run instead of `python -m fleetscope` for --baseline and --no-give-back: the same service with
# fleetscope.web.memory's give-back, and for --baseline its start-up settings too, replaced by nothing.
_LAUNCHER = """
import sys
try:
    from fleetscope.web import memory
except ImportError:  # a version without it
    memory = None
if memory is not None:
    if {baseline!r}:
        memory.configure = lambda *args, **kwargs: {{}}
    memory.give_back = lambda *args, **kwargs: None
from fleetscope.cli import main
raise SystemExit(main())
"""


def _table(rows: int, seed: int, label_length: int) -> pa.Table:
    """Iris-like outputs whose labels are drawn from 64 values about label_length characters long."""
    rng = np.random.default_rng(seed)
    species = ["setosa", "versicolor", "virginica"]
    pool = [f"{species[index % 3]}-" + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"),
                                                           int(rng.integers(label_length // 2, label_length))))
            for index in range(64)]
    return pa.table({"score": rng.normal(0, 1, rows),
                     "label": pa.array(rng.choice(pool, rows).tolist(), pa.string()),
                     "region": pa.array(rng.choice(["eu", "us"], rows).tolist(), pa.string())})


def _json_rows(table: pa.Table) -> bytes:
    return json.dumps(table.to_pylist()).encode()


def _csv(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pyarrow.csv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def bodies(seed: int) -> list[tuple[str, bytes, str]]:
    """(name, body, content type): the large honest bodies, then the hostile ones."""
    big = _table(MAX_ROWS, seed, 120)  # 15.4 MiB of JSON rows
    wide = _table(MAX_ROWS, seed + 1, 240)  # labels up to 250 characters: Parquet that decodes large
    over_long = big.to_pylist()
    over_long[-1]["label"] = "x" * 300  # over max_category_length (256), after 100,000 rows decoded
    short = outputs(200_000, seed=seed)  # twice max_rows_per_batch, under max_body_bytes
    made = [
        ("json rows", _json_rows(big), "application/json"),
        ("csv", _csv(big), "text/csv"),
        ("parquet zstd", hostile.parquet_bytes(wide, compression="zstd"), hostile.PARQUET),
        ("arrow stream", hostile.arrow_stream(big), hostile.ARROW_STREAM),
        ("json over-long category", json.dumps(over_long).encode(), "application/json"),
        ("json too many rows", json.dumps(short).encode(), "application/json"),
        ("parquet too many rows", hostile.parquet_bytes(pa.Table.from_pylist(short), compression="zstd"),
         hostile.PARQUET),
        ("arrow declaring 2^40 rows", hostile.with_declared_rows(hostile.arrow_stream(big), 2 ** 40),
         hostile.ARROW_STREAM),
        ("over max_body_bytes", b"[" + b" " * (MAX_BODY_BYTES + (1 << 20)) + b"]", "application/json"),
        ("parquet 10k-char dictionary", hostile.parquet_bytes(hostile.dictionary_bomb(MAX_ROWS, 10_000),
                                                          compression="zstd"), hostile.PARQUET),
    ]
    for name, body, _ in made[:-2]:
        assert len(body) < MAX_BODY_BYTES, f"{name} is {len(body)} bytes, over the limit"
    return made


def post(address: str, path: str, body: bytes, content_type: str, method: str = "POST") -> str:
    """The answer's status, or "no answer"."""
    request = urllib.request.Request(f"http://{address}{path}", data=body, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return str(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return str(error.code)
    except OSError:
        return "no answer"


def rss_at_rest(pid: int, settle: float, still_for: float = 10.0) -> tuple[float, float]:
    """(RSS once it has held within 1 MiB for still_for seconds or settle seconds have passed, seconds waited)."""
    started = time.monotonic()
    samples = [(0.0, memory_mib(pid, "VmRSS"))]
    while time.monotonic() - started < settle:
        time.sleep(1)
        samples.append((time.monotonic() - started, memory_mib(pid, "VmRSS")))
        recent = [rss for at, rss in samples if at >= samples[-1][0] - still_for]
        if samples[-1][0] >= still_for and max(recent) - min(recent) <= 1:
            break
    return samples[-1][1], samples[-1][0]


def burst(address: str, payloads: list[tuple[str, bytes, str]], clients: int, seconds: float,
          seed: int) -> dict:
    answers: dict[str, collections.Counter] = {name: collections.Counter() for name, _, _ in payloads}
    accepted_bytes, lock = [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        order = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            name, body, content_type = order.choice(payloads)
            status = post(address, OUTPUTS, body, content_type)
            with lock:
                answers[name][status] += 1
                if status == "202":
                    accepted_bytes[0] += len(body)

    elapsed = run_clients(client, clients, seconds + 300)
    accepted = sum(counts["202"] for counts in answers.values())
    return {"answers": {name: dict(counts) for name, counts in answers.items()}, "burst_seconds": elapsed,
            "accepted_bodies": accepted, "accepted_per_second": accepted / elapsed,
            "accepted_mib_per_second": accepted_bytes[0] / 2**20 / elapsed}


def run_clients(client: Callable[[int], None], clients: int, timeout: float) -> float:
    """Runs client(0 .. clients - 1) in threads at once; the seconds they took."""
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return time.monotonic() - started


def honest(address: str, clients: int, seconds: float, seed: int) -> dict:
    """Small writes (1,000 rows of JSON each) from `clients` for `seconds`: what giving memory back costs them."""
    payloads = [json.dumps(outputs(1000, seed=seed + index)).encode() for index in range(8)]
    written, lock = collections.Counter(), threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        sent = 0
        while time.monotonic() < deadline:
            status = post(address, OUTPUTS, payloads[(index + sent) % len(payloads)], "application/json")
            sent += 1
            with lock:
                written[status] += 1

    elapsed = run_clients(client, clients, seconds + 120)
    return {"small_writes": dict(written), "small_writes_per_second": written["202"] / elapsed}


def measure(args: argparse.Namespace, payloads: list[tuple[str, bytes, str]]) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "drift.yaml"
        config.write_text(MODEL_CONFIG)
        store = Path(directory) / "store.sqlite"
        service, address = fleetscope_server(["drift", "serve", f"--config.file={config}", f"--storage.path={store}",
                                              "--log.format=json"], Path(directory))
        if args.baseline or args.no_give_back:
            module = service.argv.index("-m")
            service.argv[module:module + 2] = ["-c", _LAUNCHER.format(baseline=args.baseline)]
        service.start(timeout=60)
        try:
            pid = service.pid
            assert pid is not None
            time.sleep(1)
            started = memory_mib(pid, "VmRSS")
            warm_up = [post(address, "/v1/models/iris/reference", json.dumps(outputs(500, seed=args.seed)).encode(),
                            "application/json", method="PUT"),
                       post(address, OUTPUTS, json.dumps(outputs(100, seed=args.seed + 1)).encode(),
                            "application/json")]
            assert warm_up == ["200", "202"], f"warm-up answers {warm_up}"
            idle, _ = rss_at_rest(pid, 5, still_for=2)
            small = honest(address, args.clients, args.honest_seconds, args.seed) if args.honest_seconds else {}
            row = burst(address, payloads, args.clients, args.seconds, args.seed)
            alive = service.running
            peak = memory_mib(pid) if alive else float("nan")
            at_burst_end = memory_mib(pid, "VmRSS") if alive else float("nan")
            after, waited = rss_at_rest(pid, args.settle) if alive else (float("nan"), 0.0)
            log = service.log_path.read_text(errors="replace")
        finally:
            service.stop()
    settings = next((json.loads(line) for line in log.splitlines()
                     if line.startswith("{") and json.loads(line).get("msg", "").startswith("allocator")), None)
    return {"env": args.env, "baseline": args.baseline, "give_back": not (args.baseline or args.no_give_back),
            "clients": args.clients, "seconds": args.seconds, "seed": args.seed, "alive": alive,
            "rss_started_mib": started, "rss_idle_mib": idle, "peak_rss_mib": peak,
            "rss_burst_end_mib": at_burst_end, "rss_after_mib": after, "settled_seconds": waited,
            "after_to_idle_ratio": after / idle, "allocator_log": settings, **small, **row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="how long the burst lasts")
    parser.add_argument("--clients", type=int, default=4, help="clients posting at once (the service has 4 slots)")
    parser.add_argument("--honest-seconds", type=float, default=10,
                        help="small writes before the burst, for their rate (0: none)")
    parser.add_argument("--settle", type=float, default=30, help="longest wait for RSS to hold still after the burst")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the service (repeatable)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--baseline", action="store_true", help="run the service without fleetscope.web.memory")
    group.add_argument("--no-give-back", action="store_true", help="allocator settings at start, no give-back")
    parser.add_argument("--json", help="write the row here too")
    args = parser.parse_args()
    for setting in args.env:
        name, _, value = setting.partition("=")
        os.environ[name] = value  # the service inherits it
    payloads = bodies(args.seed)
    row = measure(args, payloads)
    variant = "baseline" if args.baseline else "no give-back" if args.no_give_back else "as shipped"
    print(f"{variant} {' '.join(args.env)}: {args.clients} clients for {row['burst_seconds']:.0f}s, "
          f"{'up' if row['alive'] else 'DIED'}")
    print(f"  RSS idle {row['rss_idle_mib']:.0f} MiB (at start {row['rss_started_mib']:.0f}), "
          f"peak {row['peak_rss_mib']:.0f}, at the burst's end {row['rss_burst_end_mib']:.0f}, "
          f"at rest after {row['settled_seconds']:.0f}s {row['rss_after_mib']:.0f} MiB "
          f"= {row['after_to_idle_ratio']:.2f} x idle")
    if "small_writes_per_second" in row:
        print(f"  before the burst: {row['small_writes_per_second']:.1f} small writes/s (1,000 rows of JSON)")
    print(f"  accepted {row['accepted_bodies']} large bodies, {row['accepted_per_second']:.2f}/s "
          f"({row['accepted_mib_per_second']:.1f} MiB/s)")
    for name, counts in row["answers"].items():
        print(f"  {name:28} {', '.join(f'{status} x{count}' for status, count in sorted(counts.items()))}")
    if row["allocator_log"]:
        settings = {key: value for key, value in row["allocator_log"].items() if key not in ("ts", "level", "logger")}
        print(f"  service log: {settings}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(row, out, indent=2)


if __name__ == "__main__":
    main()
