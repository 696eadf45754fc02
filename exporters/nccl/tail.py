"""Following an append-only file across truncation and rotation, line by line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import BinaryIO

MAX_LINE_BYTES = 1 << 20  # an Inspector line is a few hundred bytes; a verbose one a few KiB


# In Chunk.lines: the file was replaced or truncated here, and what follows is a new stream.
RESTART = None


@dataclass
class Chunk:
    lines: list[bytes | None] = field(default_factory=list)
    oversized: int = 0  # lines dropped for exceeding MAX_LINE_BYTES


class FileTail:
    """Reads complete lines as they are appended.

    The file stays open, so when it is rotated (renamed, a new one created at the path)
    the rest of the old one is still read before the new one is followed from its start.
    A truncated file is read again from its start. A line without its newline yet waits.
    """

    def __init__(self, path: str):
        self.path = path
        self._file: BinaryIO | None = None
        self._partial = b""
        self._skipping = False  # inside an oversized line, dropping until its newline

    def read(self, max_bytes: int = 1 << 20) -> Chunk:
        """At most about max_bytes of new lines (more if a line straddles the end of the read).
        An empty chunk with no RESTART means the reader has caught up."""
        chunk = Chunk()
        if self._file is None and not self._open(chunk):
            return chunk
        assert self._file is not None
        self._drain(chunk, max_bytes)
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return chunk  # rotated away and not yet recreated: keep the old file until it is
        current = os.fstat(self._file.fileno())
        if (on_disk.st_dev, on_disk.st_ino) != (current.st_dev, current.st_ino):
            self.close()
            if self._open(chunk):
                self._drain(chunk, max_bytes)
        elif current.st_size < self._file.tell():
            self._file.seek(0)
            self._restart(chunk)
            self._drain(chunk, max_bytes)
        return chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self, chunk: Chunk) -> bool:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 (held open across reads; close() closes it)
        except OSError:
            return False
        self._restart(chunk)
        return True

    def _restart(self, chunk: Chunk) -> None:
        self._partial, self._skipping = b"", False
        chunk.lines.append(RESTART)

    def _drain(self, chunk: Chunk, max_bytes: int) -> None:
        assert self._file is not None
        data = self._file.read(max_bytes)
        if not data:
            return
        pieces = (self._partial + data).split(b"\n")
        self._partial = pieces.pop()
        for piece in pieces:
            if self._skipping:
                self._skipping = False  # the end of the oversized line
            elif len(piece) > MAX_LINE_BYTES:
                chunk.oversized += 1
            elif piece.strip():
                chunk.lines.append(piece)
        if len(self._partial) > MAX_LINE_BYTES:
            chunk.oversized += 0 if self._skipping else 1
            self._partial, self._skipping = b"", True
