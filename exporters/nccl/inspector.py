"""The NCCL Inspector plugin's JSON output, line by line, with its context restored.

Inspector writes <NCCL_INSPECTOR_DUMP_DIR>/<hostname>-pid<pid>.log, one JSON object a line.
Released NCCL (2.28.3 to 2.30.x) writes inspector_output_format_version "v4.0": every line
carries its own "header" (communicator) and "metadata" (process) with one "coll_perf" or
"p2p_perf"; the header's "comm_name" appears only from NCCL 2.30. Formats v4.1 to v4.4 exist
only in open NVIDIA/nccl pull requests (#2304, #2359): v4.1 and v4.2 lines are self-contained
like v4.0, and from v4.3 a "dump_stats" marker carries the context once for the "coll_perf",
"p2p_perf" and "proxy_trace" lines it counts. Those are read as a tolerated extension, the
context restored as NVIDIA's inspector_json_reader.py does; what does not fit is refused
rather than guessed. (Fields: plugins/profiler/inspector/inspector_json.cc.)

When a rank arrived at a collective: coll_start_ts (verbose dumps) is the host's clock at the
profiler's collective-start event, taken as the call is enqueued, so a CPU running ahead of
its GPU makes it meaningless for lateness; the kernel channel events' kernel_start_ts mark
when the collective's kernel began on each channel, and are used where present.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from fleetscope.exporters.nccl.operations import canonical


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
    operation: str  # canonical (operations.py): AllReduce, AllGather, ..., Send, Recv, Unknown
    sn: int  # NCCL numbers each operation type of a communicator on its own (comm->seqNumber[func])
    size_bytes: int  # per rank, as passed to NCCL
    exec_seconds: float
    dumped_at: float  # Unix seconds, from metadata.dump_timestamp_us
    kernel_started_at: float | None  # Unix seconds: the earliest kernel channel start, where verbose


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
        exec_us = _number(body, f"{kind}_exec_time_us")
        return Operation(
            comm=comm,
            kind=kind,
            operation=canonical(_text(body, kind)),
            sn=_int(body, f"{kind}_sn"),
            size_bytes=_int(body, f"{kind}_msg_size_bytes"),
            exec_seconds=exec_us / 1e6,
            dumped_at=_number(metadata, "dump_timestamp_us") / 1e6,
            kernel_started_at=_kernel_start(body.get("event_trace_ts")),
        )
    return None  # proxy_trace and records of kinds this collector does not use


def _kernel_start(trace: Any) -> float | None:
    """The earliest kernel_start_ts of the kernel channel events, in Unix seconds; None if absent."""
    events = trace.get("kernel_events") if isinstance(trace, dict) else None
    starts = [event.get("kernel_start_ts") for event in events if isinstance(event, dict)] \
        if isinstance(events, list) else []
    valid = [start for start in starts if type(start) is int and start > 0]
    return min(valid) / 1e6 if valid else None


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


def format_lines(comm: Communicator, records: list[dict], dumped_us: int, hostname: str,
                 mechanism: str = "nccl_profiler_interface", with_comm_name: bool = True) -> list[str]:
    """Self-contained v4.0 lines, one per record ({"coll_perf": ...} or {"p2p_perf": ...}), as
    released NCCL writes them; with_comm_name=False writes them as NCCL before 2.30 does."""
    header = {"id": comm.comm_id, **({"comm_name": comm.comm_name} if with_comm_name else {}), "rank": comm.rank,
              "n_ranks": comm.n_ranks, "nnodes": comm.nnodes}
    metadata = {"inspector_output_format_version": "v4.0", "git_rev": "", "rec_mechanism": mechanism,
                "dump_timestamp_us": dumped_us, "hostname": hostname, "pid": comm.pid}
    return [json.dumps({"header": header, "metadata": metadata, **record}, separators=(",", ":")) for record in records]
