"""Just enough of the protobuf wire format to read the kubelet pod-resources List response.

The four messages it needs are tiny; decoding them here avoids generated code and a
protobuf build step. Unknown fields are skipped, as protobuf requires.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) for each field; length-delimited values are bytes."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == VARINT:
            value, position = _varint(data, position)
        elif wire_type == LENGTH_DELIMITED:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("truncated length-delimited field")
            value, position = data[position:position + length], position + length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            value, position = data[position:position + size], position + size
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield number, value


def strings(data: bytes, number: int) -> list[str]:
    return [value.decode() for n, value in fields(data) if n == number and isinstance(value, bytes)]


def messages(data: bytes, number: int) -> list[bytes]:
    return [value for n, value in fields(data) if n == number and isinstance(value, bytes)]
