"""NCCL RAS (on by default since NCCL 2.24): the job-wide view of every communicator's ranks,
read the way NVIDIA's ncclras client reads it (src/ras/client.cc): a TCP connection to the
RAS port (localhost:28028), "CLIENT PROTOCOL 2", "SET FORMAT json" (NCCL 2.28.7 and newer),
then "STATUS" and the report until the connection closes.

A communicator whose ranks disagree on how many collectives they have run, and whose counts
have stopped moving, is hung; the ranks behind are the ones to look at.

A STATUS report takes longest exactly when a peer is unresponsive: the RAS service waits out
its collective's legs before it answers. ncclras gives the handshake 1 s and the report
1 + RAS_COLLECTIVE_LEG_TIMEOUT_SEC + RAS_COLLECTIVE_EXTRA_TIMEOUT_SEC = 11 s (src/ras/client.cc,
src/ras/ras_internal.h); the service's legs stretch by NCCL_RAS_TIMEOUT_FACTOR
(src/ras/ras_param.cc), and so does the wait here. Queries run on their own thread (the
nccl_ras collector), so a slow report never delays the Inspector files.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import nccl as m

_logger = log.get("fleetscope.exporters.nccl")
PROTOCOL = 2
HANDSHAKE_TIMEOUT_SECONDS = 1.0  # TIMEOUT_INCREMENT in src/ras/client.cc
HANDSHAKE_ATTEMPTS = 3  # ncclras retries a handshake that timed out; a few tries suffice for an exporter
LEG_TIMEOUT_SECONDS = 5.0  # RAS_COLLECTIVE_LEG_TIMEOUT_SEC
EXTRA_TIMEOUT_SECONDS = 5.0  # RAS_COLLECTIVE_EXTRA_TIMEOUT_SEC
MAX_REPORT_BYTES = 64 << 20
MAX_COMMUNICATORS = 64
MAX_LAGGING_RANKS = 8
# NCCL 2.28.9 writes a missing rank's "nvml_dev" without the comma before its "status".
_MISSING_COMMA = re.compile(r'("nvml_dev":\s*-?\d+)(\s*\n\s*"status")')


class RasError(Exception):
    pass


def report_timeout(timeout_factor: float = 1.0) -> float:
    """Seconds to wait for each read of the STATUS report, as ncclras waits, stretched as the service's legs are."""
    return HANDSHAKE_TIMEOUT_SECONDS + (LEG_TIMEOUT_SECONDS + EXTRA_TIMEOUT_SECONDS) * timeout_factor


def query(host: str, port: int, timeout_factor: float = 1.0) -> dict:
    """One STATUS report as JSON; RasError if the service answers but not as expected, OSError
    (TimeoutError included) if it cannot be reached or does not answer in time."""
    attempts_left = HANDSHAKE_ATTEMPTS
    while True:
        try:
            return _status(host, port, timeout_factor)
        except _HandshakeTimeout:
            attempts_left -= 1
            if not attempts_left:
                raise TimeoutError(f"no handshake in {HANDSHAKE_ATTEMPTS} tries") from None


class _HandshakeTimeout(Exception):
    pass


def _status(host: str, port: int, timeout_factor: float) -> dict:
    with socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT_SECONDS) as connection, \
            connection.makefile("rwb") as stream:
        try:
            _say(stream, f"CLIENT PROTOCOL {PROTOCOL}")
            answer = stream.readline(4096).decode(errors="replace")
            if not answer.upper().startswith("SERVER PROTOCOL "):
                raise RasError(f"unexpected handshake answer {answer.strip()!r}")
            _say(stream, "SET FORMAT json")
            answer = stream.readline(4096).decode(errors="replace")
        except TimeoutError:
            raise _HandshakeTimeout from None
        if answer.strip().upper() != "OK":
            raise RasError(f"JSON output refused ({answer.strip()!r}); it needs NCCL 2.28.7 or newer")
        connection.settimeout(report_timeout(timeout_factor))
        _say(stream, "STATUS")
        report = stream.read(MAX_REPORT_BYTES + 1)
    if len(report) > MAX_REPORT_BYTES:
        raise RasError("report larger than 64 MiB")
    return parse_report(report.decode(errors="replace"))


def _say(stream, line: str) -> None:
    stream.write(f"{line}\n".encode())
    stream.flush()


def parse_report(text: str) -> dict:
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        try:
            report = json.loads(_MISSING_COMMA.sub(r"\1,\2", text))
        except json.JSONDecodeError as error:
            raise RasError(f"report is not JSON: {error}") from None
    if not isinstance(report, dict) or not isinstance(report.get("communicators", []), list):
        raise RasError("report has no communicators list")
    return report


@dataclass
class _Progress:
    highest: int = -1
    changed_at: float = 0.0


@dataclass
class RasState:
    """What the last reports said, with when each communicator last made progress."""

    hang_after: float = 60.0
    up: bool = False
    _progress: dict[str, _Progress] = field(default_factory=dict)
    _report: dict = field(default_factory=dict)

    def update(self, report: dict, now: float) -> None:
        self.up, self._report = True, report
        seen = set()
        for comm in _communicators(report):
            comm_id = str(comm.get("hash", ""))
            totals = _totals(comm)
            if not comm_id or not totals:
                continue
            seen.add(comm_id)
            progress = self._progress.setdefault(comm_id, _Progress(changed_at=now))
            if max(totals.values()) != progress.highest:
                progress.highest, progress.changed_at = max(totals.values()), now
        for gone in set(self._progress) - seen:
            del self._progress[gone]

    def failed(self) -> None:
        self.up, self._report = False, {}

    def emit(self, hostname: str, now: float, out: FamilySet) -> None:
        out.add(m.RAS_UP, {"hostname": hostname}, 1 if self.up else 0)
        for comm in _communicators(self._report):
            comm_id = str(comm.get("hash", ""))
            totals = _totals(comm)
            if comm_id not in self._progress:
                continue
            labels = {"hostname": hostname, "comm_id": comm_id}
            missing = [r for r in comm.get("missing_ranks") or [] if isinstance(r, dict)]
            erring = [r for r in comm.get("ranks") or [] if isinstance(r, dict) and _erring(r)]
            out.add(m.RAS_RANKS, labels, _int(comm.get("size"), len(totals) + len(missing)))
            out.add(m.RAS_MISSING_RANKS, labels, _int(comm.get("missing_ranks_count"), len(missing)))
            out.add(m.RAS_DEAD_RANKS, labels,
                    sum(1 for r in missing if isinstance(r.get("status"), dict) and r["status"].get("considered_dead")))
            out.add(m.RAS_ERROR_RANKS, labels, len(erring))
            low, high = min(totals.values()), max(totals.values())
            out.add(m.RAS_COLLECTIVES_MIN, labels, low)
            out.add(m.RAS_COLLECTIVES_MAX, labels, high)
            progress = self._progress[comm_id]
            out.add(m.RAS_LAST_PROGRESS, labels, progress.changed_at)
            stalled = now - progress.changed_at >= self.hang_after
            out.add(m.RAS_HUNG, labels, 1 if stalled and (low != high or missing) else 0)
            if low != high:
                behind = sorted(rank for rank, total in totals.items() if total == low)[:MAX_LAGGING_RANKS]
                for rank in behind:
                    out.add(m.RAS_LAGGING_RANK, {**labels, "rank": str(rank)}, high - low)


def _communicators(report: dict) -> list[dict]:
    return [c for c in report.get("communicators") or [] if isinstance(c, dict)][:MAX_COMMUNICATORS]


def _totals(comm: dict) -> dict[int, int]:
    """Collectives each reporting rank has run, all operations together."""
    totals = {}
    for rank in comm.get("ranks") or []:
        if not isinstance(rank, dict) or type(rank.get("rank")) is not int:
            continue
        counts = rank.get("collective_counts") or {}
        totals[rank["rank"]] = sum(v for v in counts.values() if type(v) is int and v >= 0) \
            if isinstance(counts, dict) else 0
    return totals


def _erring(rank: dict) -> bool:
    status = rank.get("status")
    if not isinstance(status, dict):
        status = {}
    return bool(status.get("async_error")) or bool(status.get("abort_flag"))


def _int(value: object, default: int) -> int:
    return value if type(value) is int and value >= 0 else default


class RasCollector:
    """Queries the NCCL RAS service for hangs, on its own schedule: a report can take 11 s or more."""

    name = "nccl_ras"

    def __init__(self, address: tuple[str, int], hostname: str, hang_after: float = 60.0, timeout_factor: float = 1.0,
                 clock: Callable[[], float] = time.time):
        self._address = address
        self._hostname = hostname
        self._timeout_factor = timeout_factor
        self._clock = clock
        self._state = RasState(hang_after=hang_after)

    def collect(self) -> list[Metric]:
        now = self._clock()
        host, port = self._address
        was_up = self._state.up
        try:
            self._state.update(query(host, port, self._timeout_factor), now)
        except ConnectionRefusedError:
            self._state.failed()  # no NCCL job on this node right now: nothing to say
        except (OSError, RasError) as error:
            self._state.failed()
            if was_up:
                _logger.warning("NCCL RAS stopped answering", extra={"address": f"{host}:{port}",
                                                                     "error": str(error)})
        out = FamilySet()
        self._state.emit(self._hostname, now, out)
        return out.metrics()

    def close(self) -> None:
        pass
