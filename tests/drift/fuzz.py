"""Seeded mutation of valid bodies in every format the drift service takes."""

from __future__ import annotations

import json
import random

import pandas as pd

from tests.drift import hostile
from tests.drift.support import outputs

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
