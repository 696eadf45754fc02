"""Bytes the drift service stores per byte it receives, for each body format, in the worst shapes found.

For each body (every format the service takes: JSON rows and columns, CSV, Parquet plain and zstd with
dictionaries, Arrow stream and file with lz4 and zstd, a profile; and outputs with request ids, which a model
with quality keeps one row each of) a fresh `fleetscope drift serve` process gets --copies of it, and the row
reports what was received (bodies, and for a profile its request target, which carries the replica and segment),
how much the store grew, and their ratio: as storage.max_bytes counts it (SQLite pages in use plus the
write-ahead log, whose size depends on when SQLite last checkpointed), in pages alone (what stays), and as the
model's quota counts it (fleetscope_drift_storage_model_bytes). "plain IPC"
is what the stored blob would take as the service wrote it before issue 31 (an uncompressed Arrow IPC stream of the
decoded batch), computed here from the same body. The shapes: text that repeats (one 256-character label, a
cycle of 2,100 long labels that outlasts zstd's window), numbers of few values (which Parquet packs in 4 bits),
long distinct request ids with a shared prefix, a long segment label.

Last, the cost of compressing blobs on a realistic 100k-row batch: writing (dictionary encoding and zstd) and
reading one back, against the uncompressed stream, beside what decoding such a batch from JSON takes.

    .venv/bin/python benchmarks/storage_amplification.py [--copies 8] [--rows 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as parquet

from fleetscope.drift.columns import parse_kind
from fleetscope.drift.profiles import profile
from fleetscope.drift.service import blobs
from fleetscope.drift.service.decode import BodyLimits, conform, read_table
from fleetscope.localstack.process import fleetscope_server

CONFIG = """
evaluation_interval: 1h
storage: {max_bytes: 64GiB, max_bytes_per_model: 64GiB}
models:
  iris:
    columns: {score: numerical, label: categorical, region: categorical}
  rated:
    columns: {score: numerical, label: categorical, region: categorical}
    quality: {task: classification, request_id: request_id, prediction: label}
  chat:
    mode: profiles
    columns: {score: numerical, label: categorical, region: categorical}
    segments: [region]
    window: {type: sliding, duration: 10m}
"""
COLUMNS = {"score": "numerical", "label": "categorical", "region": "categorical"}
JSON, CSV, PARQUET = "application/json", "text/csv", "application/vnd.apache.parquet"
STREAM, FILE = "application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file"
PROFILE = "application/vnd.fleetscope.profile"
MAX_BODY = 16 * 1024 * 1024
LABEL = "l" * 256  # limits.max_category_length


def long_labels(count: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))
    return ["".join(rng.choice(letters, 256)) for _ in range(count)]


def digits(rows: int) -> np.ndarray:
    """Numbers of ten values in random order: Parquet stores each in 4 bits, the store as a float64."""
    return np.random.default_rng(2).integers(0, 10, rows).astype(float)


def table_of(score, label, region) -> pa.Table:
    return pa.table({"score": pa.array(score, type=pa.float64()), "label": label, "region": region})


def dictionary(values: list[str], indices: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pa.array(values))


def parquet_bytes(table: pa.Table, compression: str) -> bytes:
    sink = io.BytesIO()
    parquet.write_table(table, sink, compression=compression, use_dictionary=True)
    return sink.getvalue()


def arrow_bytes(table: pa.Table, compression: str, file: bool = False) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with (pa.ipc.new_file if file else pa.ipc.new_stream)(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def json_rows_within(rows: int, row: dict) -> int:
    """As many rows as fit limits.max_body_bytes."""
    return min(rows, MAX_BODY // (len(json.dumps(row)) + 2))


def bodies(rows: int) -> list[tuple[str, str, bytes, str]]:
    """(name, model, body, content type) of each shape."""
    zeros = np.zeros(rows, dtype=np.int32)
    one_label = table_of(np.zeros(rows), dictionary([LABEL], zeros), dictionary(["eu"], zeros))
    cycle = np.arange(rows) % 2100  # 2,100 labels of 256 random characters: 540 KB, past zstd's 512 KiB window
    cycled = table_of(np.zeros(rows), dictionary(long_labels(2100), cycle), dictionary(["eu"], zeros))
    few_numbers = table_of(digits(rows), dictionary(["a"], zeros), dictionary(["eu"], zeros))
    long_row = {"score": 0, "label": LABEL, "region": "eu"}
    short_row = {"score": 7, "label": "a", "region": "b"}
    labels = min(rows, MAX_BODY // 270)  # rows of a long label that fit limits.max_body_bytes, as JSON or CSV
    made = [
        ("JSON rows: one 256-char label", "iris",
         json.dumps([long_row] * json_rows_within(rows, long_row)).encode(), JSON),
        ("JSON rows: few-valued numbers", "iris",
         json.dumps([{**short_row, "score": int(v)} for v in digits(json_rows_within(rows, short_row))]).encode(),
         JSON),
        ("JSON columns: one 256-char label", "iris", json.dumps({"columns": {
            "score": [0] * labels, "label": [LABEL] * labels, "region": ["eu"] * labels}}).encode(), JSON),
        ("JSON columns: few-valued numbers", "iris", json.dumps({"columns": {
            "score": [int(v) for v in digits(rows)], "label": ["a"] * rows, "region": ["b"] * rows}}).encode(), JSON),
        ("CSV: few-valued numbers", "iris",
         ("score,label,region\n" + "".join(f"{int(v)},a,b\n" for v in digits(rows))).encode(), CSV),
        ("CSV: one 256-char label", "iris",
         ("score,label,region\n" + f"0,{LABEL},eu\n" * labels).encode(), CSV),
        ("Parquet plain: one 256-char label", "iris", parquet_bytes(one_label, "none"), PARQUET),
        ("Parquet zstd: one 256-char label (the audit's)", "iris", parquet_bytes(one_label, "zstd"), PARQUET),
        ("Parquet zstd: 2,100 long labels cycling", "iris", parquet_bytes(cycled, "zstd"), PARQUET),
        ("Parquet zstd: few-valued numbers", "iris", parquet_bytes(few_numbers, "zstd"), PARQUET),
        ("Arrow stream lz4: one 256-char label", "iris", arrow_bytes(one_label, "lz4"), STREAM),
        ("Arrow stream zstd: 2,100 long labels cycling", "iris", arrow_bytes(cycled, "zstd"), STREAM),
        ("Arrow stream zstd: few-valued numbers", "iris", arrow_bytes(few_numbers, "zstd"), STREAM),
        ("Arrow file zstd: one 256-char label", "iris", arrow_bytes(one_label, "zstd", file=True), FILE),
    ]
    ids = pa.array([f"{'r' * 240}{index:016d}" for index in range(rows)])  # 256 characters, distinct
    with_ids = pa.table({"request_id": ids, "score": np.zeros(rows), "label": dictionary(["a"], zeros),
                         "region": dictionary(["eu"], zeros)})
    made.append(("Parquet zstd: 256-char request ids (quality)", "rated", parquet_bytes(with_ids, "zstd"), PARQUET))
    frame = pd.DataFrame({"score": digits(1000), "label": long_labels(1000, seed=3)})
    made.append(("Profile: 1,000 long labels, a long segment", "chat",
                 profile(frame, numerical=["score"], categorical=["label"]).to_bytes(), PROFILE))
    small = pd.DataFrame({"score": [0.0], "label": ["a"]})
    made.append(("Profile: one row, a long segment", "chat",
                 profile(small, numerical=["score"], categorical=["label"]).to_bytes(), PROFILE))
    return made


def pages_and_wal(path: Path) -> tuple[int, int]:
    """(bytes of the pages in use, bytes of the write-ahead log) of the store, read beside the service."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        page_size, pages, free = (db.execute(f"PRAGMA {name}").fetchone()[0]
                                  for name in ("page_size", "page_count", "freelist_count"))
    finally:
        db.close()
    wal = Path(f"{path}-wal")
    return (pages - free) * page_size, wal.stat().st_size if wal.exists() else 0


def model_bytes(address: str, model: str) -> float:
    """The model's bytes as its quota counts them (fleetscope_drift_storage_model_bytes)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=60) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f'fleetscope_drift_storage_model_bytes{{model="{model}"}} '):
                return float(line.split()[-1])
    raise LookupError(model)


def post(address: str, target: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(f"http://{address}{target}", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def plain_ipc_bytes(model: str, body: bytes, content_type: str) -> int | None:
    """What the blob took when batches were stored as uncompressed Arrow IPC (none for profiles and outcomes)."""
    if model != "iris":
        return None
    limits = BodyLimits(100_000, 100, 128 * 1024 * 1024, 256)
    table = conform(read_table(body, content_type, limits), {name: parse_kind(kind) for name, kind in
                                                              COLUMNS.items()}, limits)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return len(sink.getvalue())


def measure(name: str, model: str, body: bytes, content_type: str, copies: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        config, path = Path(directory) / "drift.yaml", Path(directory) / "store.sqlite"
        config.write_text(CONFIG)
        service, address = fleetscope_server(["drift", "serve", f"--config.file={config}",
                                              f"--storage.path={path}"], Path(directory))
        service.start(timeout=60)
        try:
            pages_before, wal_before = pages_and_wal(path)
            counted_before = model_bytes(address, model)
            received, answers = 0, []
            start = (time.time() // 3600 - 2) * 3600
            for copy in range(copies):
                target = f"/v1/models/{model}/outputs"
                if content_type == PROFILE:  # a new interval each: each is a new row, never a merge
                    query = {"replica": "r" * 128, "start": repr(start + 60 * copy), "seconds": "60",
                             "segment": "region=" + "s" * 256}
                    target = f"/v1/models/{model}/profiles?{urllib.parse.urlencode(query)}"
                    received += len(target)
                answers.append(post(address, target, body, content_type))
                received += len(body)
            pages_after, wal_after = pages_and_wal(path)
            counted = model_bytes(address, model) - counted_before
        finally:
            service.stop()
    plain = plain_ipc_bytes(model, body, content_type)
    used = pages_after + wal_after - pages_before - wal_before
    return {"body": name, "format": content_type, "body_bytes": len(body), "copies": copies,
            "answers": sorted(set(answers)), "received_bytes": received, "stored_bytes": used,
            "stored_pages_bytes": pages_after - pages_before, "ratio": used / received,
            "pages_ratio": (pages_after - pages_before) / received, "model_bytes": counted,
            "model_ratio": counted / received,
            "plain_ipc_ratio": None if plain is None else plain * copies / received}


def blob_costs(rows: int) -> dict:
    """Milliseconds to write and to read back one realistic batch's blob, compressed and not."""
    rng = np.random.default_rng(5)
    columns = {f"number_{index}": rng.normal(size=rows) for index in range(10)}
    columns.update({f"category_{index}": rng.choice([f"value-{value}" for value in range(5 + 5 * index)], rows)
                    for index in range(10)})
    table = pa.table(columns)  # the 20-column model of benchmarks/drift_profiles.py

    def plain() -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def best(call, number: int = 10) -> float:
        return min(timeit.repeat(call, number=number, repeat=5)) / number * 1000

    compressed, uncompressed = blobs.encoded(table), plain()
    body = json.dumps({"columns": {name: column.to_pylist() for name, column in zip(table.column_names,
                                                                                  table.columns, strict=True)}})
    limits = BodyLimits(rows, 100, 1 << 30, 256)
    kinds = {name: parse_kind("numerical" if name.startswith("number") else "categorical")
             for name in table.column_names}
    return {"rows": rows, "columns": table.num_columns, "plain_bytes": len(uncompressed),
            "compressed_bytes": len(compressed),
            "write_ms": best(lambda: blobs.encoded(table)), "plain_write_ms": best(plain),
            "read_ms": best(lambda: blobs.decoded(compressed)),
            "plain_read_ms": best(lambda: pa.ipc.open_stream(pa.py_buffer(uncompressed)).read_all()),
            "json_decode_ms": best(lambda: conform(read_table(body.encode(), JSON, limits), kinds, limits), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=8, help="times each body is sent, each stored anew")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each batch (limits.max_rows_per_batch)")
    parser.add_argument("--only", help="only the bodies whose name holds this")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args()
    rows = [measure(*shape, args.copies) for shape in bodies(args.rows) if not args.only or args.only in shape[0]]
    print(f"{'body':48} {'body':>11} {'received':>12} {'stored':>12} {'ratio':>7} {'pages':>7} {'quota':>7} "
          f"{'plain IPC':>9}  answers")
    for row in rows:
        plain = "" if row["plain_ipc_ratio"] is None else f"{row['plain_ipc_ratio']:9.1f}"
        print(f"{row['body']:48} {row['body_bytes']:>11,} {row['received_bytes']:>12,} {row['stored_bytes']:>12,} "
              f"{row['ratio']:7.2f} {row['pages_ratio']:7.2f} {row['model_ratio']:7.2f} {plain:>9}  {row['answers']}")
    costs = blob_costs(args.rows)
    print(f"\nblob of {costs['rows']:,} rows x {costs['columns']} columns: {costs['plain_bytes']:,} B plain, "
          f"{costs['compressed_bytes']:,} B compressed; write {costs['write_ms']:.1f} ms vs "
          f"{costs['plain_write_ms']:.1f} ms ({costs['write_ms'] / costs['plain_write_ms']:.0f}x), read "
          f"{costs['read_ms']:.1f} ms vs {costs['plain_read_ms']:.2f} ms "
          f"({costs['read_ms'] / costs['plain_read_ms']:.0f}x); decoding it from JSON takes "
          f"{costs['json_decode_ms']:.0f} ms")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"bodies": rows, "blob": costs}, out, indent=2)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
