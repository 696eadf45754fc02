"""How the store keeps a batch of rows: an Arrow IPC stream, zstd-compressed, with columns of few values
dictionary-encoded first (a label repeated on every row compresses well either way, but a few thousand long
labels cycling over 100,000 rows did not: stored ~45x the body that carried them before encoding). Blobs written
uncompressed by an older fleetscope still read."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
_SAMPLE_ROWS = 1024


def encoded(table: pa.Table) -> bytes:
    """The table as an Arrow IPC stream, zstd-compressed, its few-valued columns dictionary-encoded."""
    table = pa.Table.from_arrays([_few_values_encoded(column) for column in table.columns], names=table.column_names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _few_values_encoded(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """A text column, or a number column whose first _SAMPLE_ROWS hold at most one value for two rows, as a
    dictionary with the narrowest indices, where that holds for the whole column; any other column as it is."""
    kind = column.type
    if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return column
    elif 2 * pc.count_distinct(column.slice(0, _SAMPLE_ROWS), mode="all").as_py() > min(len(column), _SAMPLE_ROWS):
        return column
    encoded = pc.dictionary_encode(column.combine_chunks())
    values = len(encoded.dictionary)
    if 2 * values > len(encoded):
        return column
    width = pa.int8() if values <= 2 ** 7 else pa.int16() if values <= 2 ** 15 else pa.int32()
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(width), encoded.dictionary)


def schema_of(blob: bytes) -> pa.Schema:
    """The schema of the table a blob holds, read from the stream's first message alone (nothing decompressed)."""
    return pa.ipc.open_stream(pa.py_buffer(blob)).schema


def decoded(blob: bytes) -> pa.Table:
    """The table a blob holds (written by encoded(), or uncompressed by an older fleetscope), plain columns again."""
    table = pa.ipc.open_stream(pa.py_buffer(blob)).read_all()
    if not any(pa.types.is_dictionary(column.type) for column in table.columns):
        return table
    return pa.Table.from_arrays([column.cast(column.type.value_type) if pa.types.is_dictionary(column.type)
                                 else column for column in table.columns], names=table.column_names)
