"""Seeded mutation of valid bodies in every format the drift service takes."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import pandas as pd

from tests.drift import hostile
from tests.drift.support import call, outputs

INTERESTING = [b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00", b"\x01\x00\x00\x00",
               b"\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x00\x00\x00\x00\x00\x00\x00\x80"]
TEXT_TOKENS = [b"[", b"{", b"]", b"}", b",", b'"', b"\\ud800", b"1e999", b"NaN", b"-", b"null", b"1" * 400,
               b'"' + b"x" * 300 + b'"', b"\n", b"nan", b"NA", b",,,,"]


def seed_bodies(rows: int = 40) -> dict[str, tuple[bytes, str]]:
    """One valid body per format: name -> (body, content type)."""
    records = outputs(rows, seed=7)
    table = hostile.iris_table(rows, seed=7)
    dictionary_table = table.set_column(1, "label", table.column("label").dictionary_encode())
    return {
        "json-rows": (json.dumps(records).encode(), "application/json"),
        "json-columns": (json.dumps({"columns": {name: [row[name] for row in records]
                                                 for name in records[0]}}).encode(), "application/json"),
        "csv": (pd.DataFrame(records).to_csv(index=False).encode(), "text/csv"),
        "parquet": (hostile.parquet_bytes(dictionary_table, compression="zstd"), hostile.PARQUET),
        "arrow-stream": (hostile.arrow_stream(dictionary_table, "lz4"), hostile.ARROW_STREAM),
        "arrow-file": (hostile.arrow_file(dictionary_table), hostile.ARROW_FILE),
    }


def mutate(body: bytes, rng: random.Random, text: bool) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 6)):
        if not data:
            break
        at = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.35:
            data[at] = rng.randrange(256)
        elif choice < 0.55:
            token = rng.choice(TEXT_TOKENS if text else INTERESTING)
            data[at:at + (0 if text else len(token))] = token
        elif choice < 0.7:
            del data[at:at + rng.randint(1, 32)]
        elif choice < 0.85:
            end = min(len(data), at + rng.randint(1, 64))
            data[at:at] = data[at:end] * rng.randint(1, 8)
        else:
            del data[at:]
    return bytes(data)


def send_mutations(address: str, path: str, content_type: str, mutated: Callable[[random.Random], bytes],
                   rng: random.Random, deadline: float, statuses: dict[int, int], failures: list[str]) -> None:
    """One client: POSTs mutated bodies until the deadline or the first failure (no answer, or one neither 2xx nor
    4xx), counting the answers by status."""
    while time.monotonic() < deadline and not failures:
        body = mutated(rng)
        try:
            status, answer, _ = call(address, "POST", path, body, content_type)
        except OSError as error:
            failures.append(f"{path}: no answer ({error}) to {body[:200]!r}")
            return
        statuses[status] = statuses.get(status, 0) + 1
        if not (200 <= status < 300 or 400 <= status < 500):
            failures.append(f"{path}: {status} {answer!r} to {body[:200]!r}")
