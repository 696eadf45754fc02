"""Arrow IPC bodies checked from their metadata before pyarrow expands anything.

pyarrow reads an IPC stream trusting what its messages declare: a record batch's row count,
its buffers' places in the body and, for compressed bodies, each buffer's uncompressed size
(the 8 bytes in front of it), which it allocates before decompressing. A few kilobytes can
so declare gigabytes. Here every message's flatbuffer metadata is read first (pyarrow has
already verified the flatbuffer itself) and the body refused when what it declares is over
the limits; only then does pyarrow read it, and the table is validated in full before use.

A file (``ARROW1`` magic, stream, footer) is read as the stream it contains: the footer's
block offsets are never followed, so a footer cannot point the reader anywhere unchecked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyarrow as pa

_MAGIC = b"ARROW1"
_CONTINUATION = b"\xff\xff\xff\xff"
_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
_NO_COMPRESSION = -1  # the uncompressed-length prefix of a buffer sent uncompressed


class IpcRefused(ValueError):
    """The body declares more than the limits allow, or does not parse; the message says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class IpcLimits:
    max_rows: int
    max_decoded_bytes: int
    max_messages: int = 10_000


def read_stream(body: bytes | memoryview, limits: IpcLimits) -> pa.Table:
    """An Arrow IPC stream as a table, refused before anything is expanded if it declares too much."""
    buffer = pa.py_buffer(body)
    check_stream(buffer, limits)
    table = pa.ipc.open_stream(buffer).read_all()
    table.validate(full=True)
    return table


def read_file(body: bytes, limits: IpcLimits) -> pa.Table:
    """An Arrow IPC file, read through the stream it holds (see the module's docstring)."""
    return read_stream(file_as_stream(body), limits)


def file_as_stream(body: bytes) -> memoryview:
    """The stream part of an Arrow IPC file: after the leading magic, before the footer."""
    if len(body) < 18 or body[:6] != _MAGIC or body[-6:] != _MAGIC:
        raise IpcRefused("malformed", "not an Arrow IPC file: it must begin and end with ARROW1")
    footer_length = struct.unpack_from("<i", body, len(body) - 10)[0]
    stream_end = len(body) - 10 - footer_length
    if footer_length <= 0 or stream_end < 8:
        raise IpcRefused("malformed", "the Arrow IPC file's footer length does not fit the file")
    return memoryview(body)[8:stream_end]


def check_stream(buffer: pa.Buffer, limits: IpcLimits) -> None:
    """Raises IpcRefused unless every message's declared sizes are within the limits."""
    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(buffer))
    decoded, messages, rows = 0, 0, 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        except (pa.ArrowException, OSError, ValueError) as error:
            raise IpcRefused("malformed", f"cannot read the Arrow IPC stream: {error}") from None
        if message is None:
            break
        messages += 1
        if messages > limits.max_messages:
            raise IpcRefused("too_large", f"the stream has more than {limits.max_messages} messages")
        batch_rows, batch_bytes = _declared(message, limits)
        rows, decoded = rows + batch_rows, decoded + batch_bytes
        if rows > limits.max_rows:
            raise IpcRefused("too_many_rows", f"the stream's batches declare more than {limits.max_rows} rows")
        if decoded > limits.max_decoded_bytes:
            raise IpcRefused("too_large", f"the body would decode to more than {limits.max_decoded_bytes} bytes "
                                          "(limits.max_decoded_bytes): send smaller batches")


def _declared(message: pa.ipc.Message, limits: IpcLimits) -> tuple[int, int]:
    """(rows, bytes decoded) a message declares: a record batch's rows, a dictionary batch's or
    a record batch's bytes after decompression; nothing for a schema message."""
    try:
        root = FlatbufferTable.root(message.metadata.to_pybytes())
        header_type = root.scalar(1, "B", 0)
        if header_type == _SCHEMA:
            return 0, 0
        header = root.table(2)
        if header_type == _DICTIONARY_BATCH:
            batch = header.table(1) if header is not None else None
        elif header_type == _RECORD_BATCH:
            batch = header
        else:
            raise IpcRefused("malformed", "the Arrow IPC stream holds a message that is not a schema or a batch")
        if batch is None:
            raise IpcRefused("malformed", "an Arrow IPC batch message has no batch")
        rows = batch.scalar(0, "q", 0)
        if not 0 <= rows <= limits.max_rows:
            raise IpcRefused("too_many_rows", f"an Arrow batch declares {rows} rows; the limit is {limits.max_rows}")
        for length, _nulls in batch.structs(1, "qq"):
            if not 0 <= length <= limits.max_rows:
                raise IpcRefused("too_many_rows", f"an Arrow column declares {length} values; the limit is "
                                                  f"{limits.max_rows}")
        body = message.body
        body_size = body.size if body is not None else 0
        compressed = batch.table(3) is not None
        total = 0
        for offset, length in batch.structs(2, "qq"):
            if offset < 0 or length < 0 or offset + length > body_size:
                raise IpcRefused("malformed", "an Arrow buffer lies outside its message body")
            if compressed and length >= 8:
                uncompressed = struct.unpack("<q", body[offset:offset + 8].to_pybytes())[0]
                total += length if uncompressed == _NO_COMPRESSION else uncompressed
                if uncompressed < _NO_COMPRESSION:
                    raise IpcRefused("malformed", "an Arrow buffer declares a negative size")
            else:
                total += length
        return (rows if header_type == _RECORD_BATCH else 0), total
    except (struct.error, IndexError) as error:
        raise IpcRefused("malformed", f"the Arrow IPC metadata does not parse: {error}") from None


class FlatbufferTable:
    """Just enough of the flatbuffers format to read fields of the Arrow IPC Message table."""

    def __init__(self, data: bytes, position: int) -> None:
        self._data, self._position = data, position
        vtable = position - struct.unpack_from("<i", data, position)[0]
        self._vtable, self._vtable_size = vtable, struct.unpack_from("<H", data, vtable)[0]

    @classmethod
    def root(cls, data: bytes) -> FlatbufferTable:
        return cls(data, struct.unpack_from("<I", data, 0)[0])

    def field_position(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self._vtable_size:
            return None
        offset = struct.unpack_from("<H", self._data, self._vtable + slot)[0]
        return self._position + offset if offset else None

    def scalar(self, index: int, fmt: str, default: int) -> int:
        at = self.field_position(index)
        return default if at is None else struct.unpack_from("<" + fmt, self._data, at)[0]

    def _target(self, index: int) -> int | None:
        at = self.field_position(index)
        return None if at is None else at + struct.unpack_from("<I", self._data, at)[0]

    def table(self, index: int) -> FlatbufferTable | None:
        at = self._target(index)
        return None if at is None else FlatbufferTable(self._data, at)

    def structs(self, index: int, fmt: str) -> list[tuple]:
        at = self._target(index)
        if at is None:
            return []
        count = struct.unpack_from("<I", self._data, at)[0]
        size = struct.calcsize("<" + fmt)
        if at + 4 + count * size > len(self._data):
            raise IndexError("a vector runs past the metadata")
        return [struct.unpack_from("<" + fmt, self._data, at + 4 + i * size) for i in range(count)]
