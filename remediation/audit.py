"""The audit log: every decision the remediator makes, one JSON object a line, appended and flushed before the
decision is answered; each also goes to the structured log."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetscope import log

_log = log.get("fleetscope.remediation")
# How much of an existing log is read back at start-up (the last hour's drains): its tail, never the whole file.
TAIL_BYTES = 8 * 1024 * 1024


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (held open for the process' life)

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        when = float(record.get("time", time.time()))  # the remediator's clock, which its rate limit reads
        entry = {**record, "time": when, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))}
        line = json.dumps(entry, ensure_ascii=True, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        level = logging.WARNING if record.get("decision") == "failed" else logging.INFO
        _log.log(level, "remediation decision", extra={key: value for key, value in record.items()
                                                        if key != "labels"})
        return entry

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_tail(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an existing audit log's last TAIL_BYTES, oldest first; lines that do not parse (a line cut
    by a crash, or the first line of the tail) are skipped."""
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - TAIL_BYTES))
            tail = file.read()
    except FileNotFoundError:
        return
    for line in tail.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record
