"""The drift service's peak memory, and whether it survives, when clients send hostile bodies.

For each body of issue 14's table (each a few kilobytes that declare gigabytes, or 16 MB of
JSON that parses into half a gigabyte of objects) a fresh `fleetscope drift serve` process
gets the body from --concurrency clients at once; the row reports the answers, the process's
peak resident memory (VmHWM) against its own idle peak before the bodies, and whether it is
still up. --python runs the service with another environment's interpreter, to measure an
earlier version on the same bodies.

    .venv/bin/python benchmarks/hostile_bodies.py [--concurrency 6] [--python OTHER/bin/python] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.drift.hostile builds the bodies

from drift_ingest import memory_mib  # noqa: E402 (this directory: the benchmarks run as scripts)

from fleetscope.localstack.process import fleetscope_server  # noqa: E402
from tests.drift import hostile  # noqa: E402
from tests.drift.support import outputs  # noqa: E402

CONFIG = """
evaluation_interval: 1h
models:
  iris:
    columns: {score: numerical, label: categorical, region: categorical}
"""


def bodies() -> list[tuple[str, bytes, str]]:
    iris = hostile.iris_table()
    crash = Path(__file__).resolve().parent.parent / "tests" / "drift" / "hostile" / "segv-stream-1.arrows"
    return [
        ("malformed Arrow stream (SIGSEGV before)", crash.read_bytes(), hostile.ARROW_STREAM),
        ("Arrow stream declaring 2^40 rows", hostile.with_declared_rows(hostile.arrow_stream(iris), 2 ** 40),
         hostile.ARROW_STREAM),
        ("zstd Arrow declaring 5 TiB", hostile.with_declared_uncompressed_size(hostile.arrow_stream(iris, "zstd"),
                                                                              5 << 40), hostile.ARROW_STREAM),
        ("Parquet dictionary, 10k chars x 100k rows", hostile.parquet_bytes(hostile.dictionary_bomb(100_000, 10_000),
                                                                             compression="zstd"), hostile.PARQUET),
        ("zstd Arrow dictionary, 5k chars x 100k rows",
         hostile.arrow_stream(hostile.dictionary_bomb(100_000, 5_000), "zstd"), hostile.ARROW_STREAM),
        ("16 MB JSON of [{\"c\":[]},...]", ("[" + ",".join(['{"c":[]}'] * 1_860_000) + "]").encode(),
         "application/json"),
    ]


def post(address: str, body: bytes, content_type: str) -> str:
    request = urllib.request.Request(f"http://{address}/v1/models/iris/outputs", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return str(response.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except OSError:
        return "no answer"


def measure(python: str, name: str, body: bytes, content_type: str, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "drift.yaml"
        config.write_text(CONFIG)
        service, address = fleetscope_server(["drift", "serve", f"--config.file={config}",
                                              f"--storage.path={Path(directory) / 'store.sqlite'}"], Path(directory),
                                             python=python)
        service.start(timeout=60)
        try:
            reference = json.dumps(outputs(500, seed=1)).encode()
            urllib.request.urlopen(urllib.request.Request(f"http://{address}/v1/models/iris/reference",
                                                          data=reference, method="PUT",
                                                          headers={"Content-Type": "application/json"}),
                                   timeout=60).read()
            idle = memory_mib(service.pid)
            answers: list[str] = []
            senders = [threading.Thread(target=lambda: answers.append(post(address, body, content_type)))
                       for _ in range(concurrency)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(180)
            alive = service.running
            peak = memory_mib(service.pid) if alive else float("nan")
        finally:
            service.stop()
    return {"body": name, "bytes": len(body), "answers": sorted(answers), "idle_peak_rss_mib": idle,
            "peak_rss_mib": peak, "alive": alive}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--python", default=sys.executable, help="interpreter the service runs with")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    rows = [measure(args.python, *body, args.concurrency) for body in bodies()]
    for row in rows:
        answers = ", ".join(f"{answer} x{row['answers'].count(answer)}" for answer in sorted(set(row["answers"])))
        growth = row["peak_rss_mib"] - row["idle_peak_rss_mib"]
        print(f"{row['body']:45} {row['bytes']:>10,} B  {'up' if row['alive'] else 'DIED':4}  "
              f"peak RSS {row['peak_rss_mib']:7.0f} MiB (+{growth:.0f} over idle)  answers: {answers}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
