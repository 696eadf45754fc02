"""Follows NCCL Inspector output in a directory (NCCL_INSPECTOR_DUMP_DIR), and one level of
per-job subdirectories below it, as the plugin writes it: <hostname>-pid<pid>.log."""

from __future__ import annotations

import glob
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import nccl as m
from fleetscope.exporters.nccl.aggregate import Aggregator
from fleetscope.exporters.nccl.debuglog import DebugLog
from fleetscope.exporters.nccl.inspector import DumpContext, RecordError
from fleetscope.exporters.nccl.tail import RESTART, Chunk, FileTail

PATTERNS = ("*-pid*.log", "*/*-pid*.log")
MAX_FILES = 1024
# Read in 1 MiB pieces, at most this many per file per collection: memory stays bounded by the
# piece, and a file far behind catches up over several collections.
MAX_READS_PER_COLLECTION = 64


class _Followed:
    def __init__(self, path: str, modified: float):
        self.tail = FileTail(path)
        self.context = DumpContext()
        self.modified = modified  # when the file last gave new lines


class NcclCollector:
    name = "nccl"

    def __init__(self, directory: Path, hostname: str, max_communicators: int = 64, idle_seconds: float = 900.0,
                 clock: Callable[[], float] = time.time, before_read: Callable[[], None] | None = None,
                 debug_logs: str = ""):
        """debug_logs: a glob of NCCL_DEBUG=INFO log files to read facts and warnings from.
        (NCCL RAS is queried by its own collector, ras.RasCollector.)"""
        self._before_read = before_read
        self._debug_glob = debug_logs
        self._debug_logs: dict[str, FileTail] = {}
        self._debug = DebugLog()
        self._directory = Path(directory)
        self._hostname = hostname
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._aggregator = Aggregator(max_communicators, idle_seconds)
        self._files: dict[str, _Followed] = {}
        self._rejected: Counter[str] = Counter()

    def collect(self) -> list[Metric]:
        if self._before_read is not None:
            self._before_read()
        now = self._clock()
        self._follow_new_files(now)
        for path, followed in list(self._files.items()):
            self._read(followed, now)
            if not os.path.exists(path) or now - followed.modified > self._idle_seconds:
                followed.tail.close()
                del self._files[path]
        self._aggregator.settle()
        self._aggregator.evict_idle(now)
        self._read_debug_logs()
        out = FamilySet()
        self._aggregator.emit(self._hostname, out)
        self._debug.emit(self._hostname, out)
        out.add(m.FILES, {"hostname": self._hostname}, len(self._files))
        for reason, count in sorted(self._rejected.items()):
            out.add(m.REJECTED, {"hostname": self._hostname, "reason": reason}, count)
        return out.metrics()

    def close(self) -> None:
        for followed in self._files.values():
            followed.tail.close()
        self._files.clear()
        for tail in self._debug_logs.values():
            tail.close()
        self._debug_logs.clear()

    def _read_debug_logs(self) -> None:
        if not self._debug_glob:
            return
        for path in sorted(glob.glob(self._debug_glob))[:MAX_FILES]:
            if path not in self._debug_logs:
                self._debug_logs[path] = FileTail(path)
        for path, tail in list(self._debug_logs.items()):
            for chunk in _new_chunks(tail):
                for line in chunk.lines:
                    if line is not RESTART:
                        self._debug.feed(line.decode(errors="replace"))
            if not os.path.exists(path):
                tail.close()
                del self._debug_logs[path]

    def _follow_new_files(self, now: float) -> None:
        candidates: list[tuple[float, str]] = []
        for pattern in PATTERNS:
            for path in self._directory.glob(pattern):
                try:
                    modified = path.stat().st_mtime
                except OSError:
                    continue
                if str(path) not in self._files and now - modified <= self._idle_seconds:
                    candidates.append((modified, str(path)))
        room = MAX_FILES - len(self._files)
        if len(candidates) > room:
            self._rejected["too_many_files"] += len(candidates) - max(room, 0)
        for modified, name in sorted(candidates, reverse=True)[:max(room, 0)]:
            self._files[name] = _Followed(name, modified)

    def _read(self, followed: _Followed, now: float) -> None:
        for chunk in _new_chunks(followed.tail):
            self._take(followed, chunk, now)

    def _take(self, followed: _Followed, chunk: Chunk, now: float) -> None:
        if chunk.oversized:
            self._rejected["oversized_line"] += chunk.oversized
        if chunk.lines:
            followed.modified = now
        for line in chunk.lines:
            if line is RESTART:
                followed.context = DumpContext()
                continue
            truncated = followed.context.truncated_dumps
            try:
                record = followed.context.parse(line)
                if record is not None:
                    self._aggregator.add(record, now)
            except RecordError as error:
                self._rejected[error.reason] += 1
            if followed.context.truncated_dumps > truncated:
                self._rejected["truncated_dump"] += 1


def _new_chunks(tail: FileTail) -> Iterator[Chunk]:
    """What a file has new, in pieces, until caught up or this collection's share is read."""
    for _ in range(MAX_READS_PER_COLLECTION):
        chunk = tail.read()
        if not chunk.lines and not chunk.oversized:
            return
        yield chunk
