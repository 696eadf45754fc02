"""Profiles taken apart and put back together with one thing changed, as a hostile replica would send them."""

from __future__ import annotations

import json
import random
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from fleetscope.drift.profiles import FORMAT_VERSION, MAGIC, profile

KINDS = {"numerical": ["score"], "categorical": ["label"]}


def honest(rows: int = 2000, seed: int = 1, distinct_labels: int = 3) -> bytes:
    """A replica's profile of score (a KLL sketch past 1,000 distinct values) and label."""
    rng = np.random.default_rng(seed)
    labels = [f"class-{value}" for value in rng.integers(0, distinct_labels, rows)]
    return profile(pd.DataFrame({"score": rng.normal(0, 1, rows), "label": labels}), **KINDS).to_bytes()


def parts(body: bytes) -> tuple[dict, list[bytes]]:
    """The header and the blobs (counts and sketches, in the columns' order) of a profile."""
    raw = zlib.decompress(body[5:])
    (length,) = struct.unpack_from("<I", raw, 0)
    header, offset, blobs = json.loads(raw[4:4 + length]), 4 + length, []
    while offset < len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        blobs.append(raw[offset + 4:offset + 4 + size])
        offset += 4 + size
    return header, blobs


def assemble(header: dict | str, blobs: list[bytes]) -> bytes:
    text = (header if isinstance(header, str) else json.dumps(header, allow_nan=True)).encode()
    raw = struct.pack("<I", len(text)) + text + b"".join(struct.pack("<I", len(blob)) + blob for blob in blobs)
    return MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(raw)


def with_column(body: bytes, name: str, **fields: object) -> bytes:
    """The profile with fields of one column's header entry set (json.dumps writes inf and nan as JSON's
    Infinity and NaN, as a hostile client could)."""
    header, blobs = parts(body)
    next(entry for entry in header["columns"] if entry["name"] == name).update(fields)
    return assemble(header, blobs)


def with_header_text(body: bytes, edit: Callable[[str], str]) -> bytes:
    """The profile with its header's JSON text edited as text (numbers JSON can hold but Python would not write)."""
    header, blobs = parts(body)
    return assemble(edit(json.dumps(header, allow_nan=True)), blobs)


def with_blob(body: bytes, index: int, edit: Callable[[bytes], bytes]) -> bytes:
    header, blobs = parts(body)
    blobs[index] = edit(blobs[index])
    return assemble(header, blobs)


def kll_levels_swapped(blob: bytes) -> bytes:
    """A KLL sketch whose first two level boundaries are exchanged: DataSketches 5.2.0 reads it, then crashes the
    process when its ranks are read."""
    levels = struct.unpack_from("<II", blob, 20)
    return blob[:20] + struct.pack("<II", levels[1], levels[0]) + blob[28:]


def frequent_map_of(lg_size: int) -> Callable[[bytes], bytes]:
    """A frequent-items sketch declaring a map of 2^lg_size slots (2^30: DataSketches allocates 2 GiB)."""
    return lambda blob: blob[:3] + bytes([lg_size, lg_size]) + blob[5:]


def sketch_index(body: bytes, name: str) -> int:
    """The index in parts()'s blobs of a column's sketch."""
    header, _ = parts(body)
    index = 0
    for entry in header["columns"]:
        index += entry.get("counts") == "binary"
        if entry["name"] == name:
            return index
        index += entry.get("sketch") is not None
    raise KeyError(name)


def mutated(body: bytes, rng: random.Random) -> bytes:
    """A profile with its header fields or its sketches' bytes changed at random, recompressed, so that the
    mutations reach the checks past the framing."""
    header, blobs = parts(body)
    if rng.random() < 0.5 and blobs:
        index = rng.randrange(len(blobs))
        data = bytearray(blobs[index])
        for _ in range(rng.randint(1, 4)):
            if not data:
                break
            at = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[at] = rng.randrange(256)
            else:
                data[at:at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80",
                                              b"\x00\x00\x00\x00"])
        blobs[index] = bytes(data)
        return assemble(header, blobs)
    column = rng.choice(header["columns"])
    field = rng.choice(["rows", "missing", "family", "declared", "minimum", "maximum", "mean", "squared_deviations",
                        "sketch", "counts", "name", "k"])
    value = rng.choice([-1, 0, 1, 2 ** 63, 10 ** 30, 1e30, float("inf"), float("-inf"), float("nan"), "string",
                        "numerical", None, [], {}, True, "x" * 300, column.get("rows", 0) + 1])
    if field == "k":
        header["k"] = value
    else:
        column[field] = value
    return assemble(header, blobs)
