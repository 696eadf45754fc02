"""The NCCL Inspector plugin's JSON output, line by line, with its context restored.

Inspector writes <NCCL_INSPECTOR_DUMP_DIR>/<hostname>-pid<pid>.log, one JSON object a line.
Up to format v4.2 every line carries its own "header" (communicator) and "metadata"
(process); from v4.3 a "dump_stats" marker carries them once, and the "coll_perf",
"p2p_perf" and "proxy_trace" lines it counts follow. This restores the context as NVIDIA's
inspector_json_reader.py does, and refuses what does not fit rather than guessing.
(Fields: plugins/profiler/inspector/inspector_json.cc in NVIDIA/nccl.)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


class RecordError(ValueError):
    """A line the collector cannot use; `reason` is a bounded label value."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Communicator:
    comm_id: str
    comm_name: str
    rank: int
    n_ranks: int
    nnodes: int
    pid: int


@dataclass(frozen=True)
class Operation:
    comm: Communicator
    kind: str  # "coll" or "p2p"
    operation: str  # AllReduce, AllGather, ..., Send, Recv
    sn: int
    size_bytes: int
    exec_seconds: float
    dumped_at: float  # Unix seconds, from metadata.dump_timestamp_us
    started_at: float | None  # Unix seconds, from event_trace_ts where verbose


@dataclass(frozen=True)
class DumpStats:
    comm: Communicator
    dropped_total: dict[str, int]  # kind -> cumulative records overwritten before a dump


class DumpContext:
    """Per file: the marker whose records are being read. Never shared between files."""

    def __init__(self) -> None:
        self.header: dict | None = None
        self.metadata: dict | None = None
        self.communicator: Communicator | None = None  # of the current marker, parsed once
        self.remaining: dict[str, int] = {}
        # Dumps whose counted records never all arrived (the process died mid-write).
        self.truncated_dumps = 0

    def parse(self, line: bytes) -> Operation | DumpStats | None:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise RecordError("invalid_json") from None
        if not isinstance(record, dict):
            raise RecordError("invalid_json", "not an object")
        if "dump_stats" in record:
            return self._marker(record)
        if self.header is not None and not any(self.remaining.values()) and "header" in record:
            self.header = self.metadata = None  # the v4.3 dump is complete; a self-contained line may follow
        if self.header is not None:
            if len(record) != 1:
                raise RecordError("unexpected_record", "extra fields after a v4.3 marker")
            kind = next(iter(record))
            if self.remaining.get(kind, 0) <= 0:
                raise RecordError("unexpected_record", f"{kind} beyond the marker's count")
            self.remaining[kind] -= 1
            assert self.communicator is not None and self.metadata is not None  # set with the header
            return _operation(record, self.communicator, self.metadata)
        if "header" not in record or "metadata" not in record:
            raise RecordError("missing_context", "a record with no header and no marker before it")
        header, metadata = record["header"], record["metadata"]
        if not isinstance(header, dict) or not isinstance(metadata, dict):
            raise RecordError("bad_field", "header or metadata is not an object")
        return _operation(record, _communicator(header, metadata), metadata)

    def _marker(self, record: dict) -> DumpStats:
        self.truncated_dumps += any(self.remaining.values())
        self.header = self.metadata = None
        self.remaining = {}
        header, metadata, stats = record.get("header"), record.get("metadata"), record["dump_stats"]
        if not isinstance(header, dict) or not isinstance(metadata, dict) or not isinstance(stats, dict):
            raise RecordError("bad_field", "dump_stats marker without header and metadata")
        communicator = _communicator(header, metadata)
        if _version(metadata.get("inspector_output_format_version")) >= (4, 3):
            counts = {"coll_perf": stats.get("coll_records"), "p2p_perf": stats.get("p2p_records"),
                      "proxy_trace": stats.get("proxy_records", 0)}
            if any(type(n) is not int or n < 0 for n in counts.values()):
                raise RecordError("bad_field", "dump_stats record counts")
            self.header, self.metadata, self.communicator, self.remaining = header, metadata, communicator, counts
        dropped = {kind: _int(stats, f"{kind}_dropped_total", 0) for kind in ("coll", "p2p")}
        return DumpStats(communicator, dropped)


def _version(text: Any) -> tuple[int, ...]:
    """'v4.3' -> (4, 3); anything else sorts first."""
    try:
        return tuple(int(part) for part in str(text).lstrip("v").split("."))
    except ValueError:
        return ()


def _communicator(header: dict, metadata: dict) -> Communicator:
    return Communicator(
        comm_id=_text(header, "id"),
        comm_name=_text(header, "comm_name", "unknown"),
        rank=_int(header, "rank"),
        n_ranks=_int(header, "n_ranks"),
        nnodes=_int(header, "nnodes", 1),
        pid=_int(metadata, "pid", 0),
    )


def _operation(record: dict, comm: Communicator, metadata: dict) -> Operation | None:
    for kind in ("coll", "p2p"):
        body = record.get(f"{kind}_perf")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise RecordError("bad_field", f"{kind}_perf is not an object")
        trace = body.get("event_trace_ts")
        started = trace.get(f"{kind}_start_ts") if isinstance(trace, dict) else None
        exec_us = _number(body, f"{kind}_exec_time_us")
        return Operation(
            comm=comm,
            kind=kind,
            operation=_text(body, kind),
            sn=_int(body, f"{kind}_sn"),
            size_bytes=_int(body, f"{kind}_msg_size_bytes"),
            exec_seconds=exec_us / 1e6,
            dumped_at=_number(metadata, "dump_timestamp_us") / 1e6,
            started_at=started / 1e6 if isinstance(started, (int, float)) and started > 0 else None,
        )
    return None  # proxy_trace and records of kinds this collector does not use


def _text(source: dict, key: str, default: str | None = None) -> str:
    value = source.get(key, default)
    if not isinstance(value, str) or not value:
        raise RecordError("bad_field", f"{key} is not a string")
    return value


def _int(source: dict, key: str, default: int | None = None) -> int:
    value = source.get(key, default)
    if type(value) is not int or value < 0:
        raise RecordError("bad_field", f"{key} is not a non-negative integer")
    return value


def _number(source: dict, key: str) -> float:
    value = source.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise RecordError("bad_field", f"{key} is not a finite non-negative number")
    return float(value)


def format_dump(comm: Communicator, records: list[dict], dumped_us: int, hostname: str,
                dropped: dict[str, int] | None = None, mechanism: str = "nccl_profiler_interface") -> list[str]:
    """The lines of one v4.3 dump: the marker with the communicator's header, then its records
    ({"coll_perf": ...} or {"p2p_perf": ...}), as Inspector writes them and DumpContext reads them."""
    dropped = dropped or {}
    marker = {
        "header": {"id": comm.comm_id, "comm_name": comm.comm_name, "rank": comm.rank, "n_ranks": comm.n_ranks,
                   "nnodes": comm.nnodes},
        "metadata": {"inspector_output_format_version": "v4.3", "git_rev": "", "rec_mechanism": mechanism,
                     "dump_timestamp_us": dumped_us, "hostname": hostname, "pid": comm.pid},
        "dump_stats": {kind_stat: value for kind in ("coll", "p2p") for kind_stat, value in (
            (f"{kind}_records", sum(f"{kind}_perf" in r for r in records)),
            (f"{kind}_dropped_total", dropped.get(kind, 0)),
            (f"{kind}_dropped_since_last_dump", 0))},
    }
    return [json.dumps(line, separators=(",", ":")) for line in (marker, *records)]
