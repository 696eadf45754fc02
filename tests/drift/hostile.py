"""Hostile bodies for the drift service, made small: each declares far more than it carries."""

from __future__ import annotations

import io
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as parquet

from fleetscope.drift.service.arrow_ipc import FlatbufferTable
from tests.drift.support import outputs

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
PARQUET = "application/vnd.apache.parquet"


def iris_table(rows: int = 50, seed: int = 1) -> pa.Table:
    return pa.Table.from_pylist(outputs(rows, seed=seed))


def arrow_stream(table: pa.Table, compression: str | None = None, batch_rows: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
    return sink.getvalue().to_pybytes()


def arrow_file(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def parquet_bytes(table: pa.Table, **options) -> bytes:
    sink = io.BytesIO()
    parquet.write_table(table, sink, **options)
    return sink.getvalue()


def _record_batch(stream: bytes) -> tuple[int, FlatbufferTable, int]:
    """(where the first record batch's metadata starts, its RecordBatch table, where its body starts)."""
    position = 0
    while position < len(stream):
        length = struct.unpack_from("<i", stream, position + 4)[0]  # after the 0xFFFFFFFF continuation
        start = position + 8
        metadata = stream[start:start + length]
        message = FlatbufferTable.root(metadata)
        body_length = message.scalar(3, "q", 0)
        if message.scalar(1, "B", 0) == 3:
            return start, message.table(2), start + length
        position = start + length + body_length
    raise ValueError("no record batch in the stream")


def with_declared_rows(stream: bytes, rows: int) -> bytes:
    """The stream with its first batch (and each of its columns) declaring `rows` rows."""
    patched = bytearray(stream)
    start, batch, _ = _record_batch(stream)
    struct.pack_into("<q", patched, start + batch.field_position(0), rows)
    return bytes(patched)


def with_declared_uncompressed_size(stream: bytes, size: int) -> bytes:
    """A compressed stream whose first buffer claims to decompress to `size` bytes (a zip bomb's header)."""
    patched = bytearray(stream)
    _, batch, body = _record_batch(stream)
    offset, length = next((offset, length) for offset, length in batch.structs(2, "qq") if length >= 8)
    struct.pack_into("<q", patched, body + offset, size)
    return bytes(patched)


def dictionary_bomb(rows: int, value_length: int, columns: tuple[str, ...] = ("label", "region")) -> pa.Table:
    """Text columns of one long value repeated on every row, dictionary-encoded: tiny on the wire."""
    indices = pa.array(np.zeros(rows, dtype=np.int32))
    arrays = {"score": pa.array(np.zeros(rows))}
    for name in columns:
        arrays[name] = pa.DictionaryArray.from_arrays(indices, pa.array([name[0] * value_length]))
    return pa.table(arrays)
