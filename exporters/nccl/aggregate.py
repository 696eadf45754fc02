"""NCCL operations folded into bounded state: counters and histograms that add up correctly
in PromQL, per-rank lateness and per-communicator skew, and the last progress of each
communicator for hang detection.

NCCL numbers each operation type of a communicator on its own (comm->seqNumber[func] in
src/plugin/profiler.cc), so an AllGather and a ReduceScatter on a tensor-parallel communicator
share sequence numbers: the ranks' records of one collective are joined by (operation, sn).
"""

from __future__ import annotations

import re
import statistics
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass, field

from fleetscope.catalog import FamilySet, cumulative_buckets
from fleetscope.exporters.catalog import nccl as m
from fleetscope.exporters.nccl.inspector import DumpStats, Operation, RecordError
from fleetscope.exporters.nccl.operations import bus_bytes

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SIZE_BUCKETS = ((64 * KiB, "0-64KiB"), (MiB, "64KiB-1MiB"), (16 * MiB, "1-16MiB"), (256 * MiB, "16-256MiB"),
                (4 * GiB, "256MiB-4GiB"), (float("inf"), "4GiB+"))
DURATION_BOUNDS = (*m.DURATION.buckets, float("inf"))
MAX_RANKS_PER_COMM = 256  # ranks of one communicator seen on this node
MAX_PENDING_GROUPS = 64  # collectives waiting for the other local ranks' records
SETTLE_AFTER = 8  # a collective this many behind the newest is settled with the ranks it has
SMOOTHING = 0.1  # weight of the newest collective in the lateness and skew averages
_OPERATION = re.compile(r"^[A-Za-z]{1,32}$")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/-]")


def size_bucket(size_bytes: int) -> str:
    return next(label for bound, label in SIZE_BUCKETS if size_bytes < bound)


def clean_name(name: str) -> str:
    """A communicator name as a bounded label value."""
    return _NAME_UNSAFE.sub("_", name.strip())[:64] or "unknown"


@dataclass
class _Totals:
    count: int = 0
    bytes: int = 0
    bus_bytes: float | None = 0.0  # None for an operation with no known bus factor
    seconds: float = 0.0


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BOUNDS))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(DURATION_BOUNDS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        return cumulative_buckets(DURATION_BOUNDS, self.counts)


@dataclass
class _Comm:
    name: str
    n_ranks: int
    nnodes: int
    last_record: float
    last_progress: float = 0.0
    totals: dict[tuple[int, str, str], _Totals] = field(default_factory=dict)
    durations: dict[tuple[str, str], _Histogram] = field(default_factory=dict)
    sequence: dict[tuple[int, str], int] = field(default_factory=dict)  # (rank, operation) -> last sn
    lateness: dict[int, float] = field(default_factory=dict)
    skew: float | None = None
    dropped: dict[tuple[int, str, int], int] = field(default_factory=dict)  # (rank, kind, pid) -> total
    ranks: set[int] = field(default_factory=set)
    # (operation, sn) -> the local ranks' records of that collective, oldest first
    pending: OrderedDict[tuple[str, int], dict[int, Operation]] = field(default_factory=OrderedDict)


class Aggregator:
    def __init__(self, max_communicators: int = 64, idle_seconds: float = 900.0):
        self.max_communicators = max_communicators
        self.idle_seconds = idle_seconds
        self._comms: dict[str, _Comm] = {}

    def add(self, record: Operation | DumpStats, now: float) -> None:
        """Raises RecordError for a record that cannot be taken (its reason is counted)."""
        comm = self._comm(record, now)
        if isinstance(record, DumpStats):
            for kind, total in record.dropped_total.items():
                key = (record.comm.rank, kind, record.comm.pid)
                comm.dropped[key] = max(comm.dropped.get(key, 0), total)
            return
        if not _OPERATION.match(record.operation):
            raise RecordError("bad_field", "operation name")
        rank, size = record.comm.rank, size_bucket(record.size_bytes)
        totals = comm.totals.setdefault((rank, record.operation, size), _Totals())
        totals.count += 1
        totals.bytes += record.size_bytes
        moved = bus_bytes(record.operation, record.size_bytes, record.comm.n_ranks)
        totals.bus_bytes = None if moved is None or totals.bus_bytes is None else totals.bus_bytes + moved
        totals.seconds += record.exec_seconds
        comm.durations.setdefault((record.operation, size), _Histogram()).observe(record.exec_seconds)
        comm.last_progress = max(comm.last_progress, record.dumped_at)
        if record.kind == "coll":
            last = comm.sequence.get((rank, record.operation), 0)
            comm.sequence[(rank, record.operation)] = max(last, record.sn)
            self._join(comm, record)

    def evict_idle(self, now: float) -> None:
        for comm_id in [c for c, comm in self._comms.items() if now - comm.last_record > self.idle_seconds]:
            del self._comms[comm_id]

    def emit(self, hostname: str, out: FamilySet) -> None:
        for comm_id, comm in self._comms.items():
            labels = {"hostname": hostname, "comm_id": comm_id, "comm_name": comm.name}
            out.add(m.COMM_RANKS, labels, comm.n_ranks)
            out.add(m.COMM_NODES, labels, comm.nnodes)
            if comm.last_progress:
                out.add(m.LAST_PROGRESS, labels, comm.last_progress)
            for (rank, operation, size), totals in comm.totals.items():
                series = {**labels, "rank": str(rank), "operation": operation, "size": size}
                out.add(m.COLLECTIVES, series, totals.count)
                out.add(m.BYTES, series, totals.bytes)
                if totals.bus_bytes is not None:
                    out.add(m.BUS_BYTES, series, totals.bus_bytes)
                out.add(m.SECONDS, series, totals.seconds)
            for (operation, size), histogram in comm.durations.items():
                out.add_histogram(m.DURATION, {**labels, "operation": operation, "size": size},
                                  histogram.cumulative(), histogram.total)
            for (rank, operation), sn in comm.sequence.items():
                out.add(m.SEQUENCE, {**labels, "rank": str(rank), "operation": operation}, sn)
            for rank, lateness in comm.lateness.items():
                out.add(m.LATENESS, {**labels, "rank": str(rank)}, lateness)
            if comm.skew is not None:
                out.add(m.SKEW, labels, comm.skew)
            dropped: dict[tuple[int, str], int] = {}
            for (rank, kind, _pid), total in comm.dropped.items():
                dropped[(rank, kind)] = dropped.get((rank, kind), 0) + total
            for (rank, kind), total in dropped.items():
                out.add(m.DROPPED, {**labels, "rank": str(rank), "kind": kind}, total)

    def __len__(self) -> int:
        return len(self._comms)

    def _comm(self, record: Operation | DumpStats, now: float) -> _Comm:
        info = record.comm
        comm = self._comms.get(info.comm_id)
        if comm is None:
            if len(self._comms) >= self.max_communicators:
                raise RecordError("too_many_communicators")
            comm = self._comms[info.comm_id] = _Comm(clean_name(info.comm_name), info.n_ranks, info.nnodes, now)
        if info.rank not in comm.ranks:
            # Global rank numbers can be large (node 100's ranks are 800-807); their count is what is bounded.
            if len(comm.ranks) >= MAX_RANKS_PER_COMM:
                raise RecordError("too_many_ranks")
            comm.ranks.add(info.rank)
        comm.last_record = now
        return comm

    def settle(self) -> None:
        """Turns collectives every local rank has reported (or that are long past) into lateness
        and skew. Called once all files have been read, so no rank's file is read ahead of another's."""
        for comm in self._comms.values():
            if not comm.pending:
                continue
            newest: dict[str, int] = {}
            for operation, sn in comm.pending:
                newest[operation] = max(newest.get(operation, sn), sn)
            local_ranks = len({rank for rank, _ in comm.sequence})
            for key in [(operation, sn) for (operation, sn), group in comm.pending.items()
                        if len(group) >= local_ranks or sn < newest[operation] - SETTLE_AFTER]:
                self._settle(comm, comm.pending.pop(key))

    def _join(self, comm: _Comm, record: Operation) -> None:
        """Groups one collective's records from the local ranks until settle(). While MAX_PENDING_GROUPS
        are waiting, collectives not already waiting are not joined: files are read one after another,
        so a busy communicator's first file alone could otherwise push every group out before the other
        ranks' records arrive. Lateness is a moving average; the collectives joined suffice."""
        key = (record.operation, record.sn)
        group = comm.pending.get(key)
        if group is None:
            if len(comm.pending) >= MAX_PENDING_GROUPS:
                return
            group = comm.pending[key] = {}
        group[record.comm.rank] = record

    def _settle(self, comm: _Comm, group: dict[int, Operation]) -> None:
        if len(group) < 2:
            return
        records = list(group.values())
        arrivals = {r.comm.rank: r.kernel_started_at for r in records if r.kernel_started_at is not None}
        if len(arrivals) < len(records):
            # All ranks leave a synchronous collective together; the one that came last waited least.
            # (Never the host's enqueue time, coll_start_ts: a CPU running ahead makes it the CPU's lateness.)
            arrivals = {r.comm.rank: -r.exec_seconds for r in records}
        middle = statistics.median(arrivals.values())
        late = {rank: arrival - middle for rank, arrival in arrivals.items()}
        for rank, seconds in late.items():
            previous = comm.lateness.get(rank)
            comm.lateness[rank] = seconds if previous is None else previous + SMOOTHING * (seconds - previous)
        worst = max(late.values())
        comm.skew = worst if comm.skew is None else comm.skew + SMOOTHING * (worst - comm.skew)
