"""Facts from NCCL_DEBUG=INFO logs (for example written with NCCL_DEBUG_FILE=/path/nccl.%h.%p.log):
the transports, algorithms and channels each communicator set up, the network NCCL chose,
and NCCL WARN lines counted by category.

NCCL prefixes every line with <hostname>:<pid>:<tid> [<cuda device>]. A communicator's set-up
lines run on the thread that logged its "... - Init START", up to its "Init COMPLETE", so the
thread ties them to the communicator (src/init.cc, ncclCommInitRankFunc). Every way of making
a communicator logs that pair under its own name: ncclCommInitRank, ncclCommInitRankConfig,
ncclCommInitAll, ncclCommInitRankScalable, ncclCommSplit, ncclCommShrink, ncclCommGrow.

The communicator's id is the hash the Inspector plugin writes as the header's id. Fresh
communicators print it ("commId 0x..."); released NCCL prints none for those made by
ncclCommSplit or ncclCommShrink, only their parent's pointer, childCount (splitCount in older
releases) and color, from which NCCL derives it: split_comm_id() derives it the same way, the
parent's id known from the parent's own init lines.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import dataclass, field

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import nccl as m
from fleetscope.exporters.nccl.aggregate import clean_name

_PREFIX = re.compile(r"^(?P<host>[^:\s]+):(?P<pid>\d+):(?P<tid>\d+) \[[^\]]*\] (?:\S+:\d+ )?NCCL (?P<level>INFO|WARN) (?P<text>.*)$")
_INIT = re.compile(r"^(?:\[Rank \d+\] )?ncclComm[A-Za-z]+ comm (?P<pointer>0x[0-9a-f]+) rank -?\d+ nranks \d+ "
                   r".*- ?Init (?P<phase>START|COMPLETE)")
_COMM_ID = re.compile(r" commId (?P<comm>0x[0-9a-f]+)")
_PARENT = re.compile(r" parent (?P<parent>0x[0-9a-f]+) (?:childCount|splitCount) (?P<child>-?\d+) color (?P<color>-?\d+)")
_VIA = re.compile(r"^Channel \d+/\d+ : .* via (?P<transport>[A-Za-z0-9]+(?:/[A-Za-z0-9]+)?)")
_RING = re.compile(r"^Channel \d+/\d+ :\s+\d+(?:\s+\d+)+\s*$")
_TREE = re.compile(r"^Trees \[")
_CHANNELS = re.compile(r"^(?P<coll>\d+) coll channels, (?:(?P<collnet>\d+) collnet channels, )?(?:(?P<nvls>\d+) nvls channels, )?(?P<p2p>\d+) p2p channels")
_NETWORK = re.compile(r"^Using network (?P<network>\S+)")
_CATEGORIES = (("network", re.compile(r"^NET/|\bIB\b|socket|Got completion", re.I)),
               ("cuda", re.compile(r"\bcuda\b", re.I)),
               ("timeout", re.compile(r"timeout|timed out|watchdog", re.I)),
               ("memory", re.compile(r"alloc|out of memory", re.I)))
MAX_COMMUNICATORS = 256
MAX_THREADS = 4096
_MASK = (1 << 64) - 1


def warning_category(text: str) -> str:
    return next((name for name, pattern in _CATEGORIES if pattern.search(text)), "other")


def split_comm_id(parent_id: str, child_count: int, color: int) -> str:
    """The id NCCL gives a communicator split (or shrunk) from `parent_id`: eatHash over the
    parent's hash, childCount and color, then digestHash (src/init.cc, src/include/utils.h)."""
    accumulator = (1, 1)
    for piece in (struct.pack("<Q", int(parent_id, 16)), struct.pack("<i", child_count), struct.pack("<i", color)):
        accumulator = _eat_hash(accumulator, piece)
    return f"0x{_digest_hash(accumulator):x}"


def _eat_hash(accumulator: tuple[int, int], data: bytes) -> tuple[int, int]:
    low, high = accumulator[0] ^ len(data), accumulator[1]
    for start in range(0, len(data), 8):
        low = (low + high) & _MASK
        high ^= low
        low ^= low >> 31
        low = (low * 0x9DE62BBC8CEF3CE3) & _MASK
        high ^= high >> 32
        high = (high * 0x485CD6311B599E79) & _MASK
        low = (low + int.from_bytes(data[start:start + 8], "little")) & _MASK
    return low, high


def _digest_hash(accumulator: tuple[int, int]) -> int:
    value = accumulator[0]
    value ^= value >> 31
    value = (value * 0xBAC3BD562846DE6B) & _MASK
    value = (value + accumulator[1]) & _MASK
    value ^= value >> 32
    return (value * 0x995A187A14E7B445) & _MASK


@dataclass
class _CommFacts:
    transports: set[str] = field(default_factory=set)
    algorithms: set[str] = field(default_factory=set)
    channels: dict[str, int] = field(default_factory=dict)


class DebugLog:
    """Facts from any number of NCCL debug log streams; bounded in communicators and threads."""

    def __init__(self) -> None:
        self._comms: dict[str, _CommFacts] = {}
        self._initializing: dict[tuple[str, str, str], str] = {}  # (host, pid, tid) -> commId
        self._ids: dict[tuple[str, str, str], str] = {}  # (host, pid, comm pointer) -> commId, for splits
        self._networks: set[str] = set()
        self.warnings: Counter[str] = Counter()

    def feed(self, line: str) -> None:
        match = _PREFIX.match(line)
        if match is None:
            return  # the program's own output, interleaved
        text, thread = match["text"].strip(), (match["host"], match["pid"], match["tid"])
        if match["level"] == "WARN":
            self.warnings[warning_category(text)] += 1
            return
        if init := _INIT.match(text):
            comm_id = self._identify(thread, init["pointer"], text)
            if init["phase"] == "START" and comm_id and len(self._initializing) < MAX_THREADS:
                self._initializing[thread] = comm_id
            else:
                self._initializing.pop(thread, None)
            if comm_id:
                self._facts(comm_id)
            return
        if network := _NETWORK.match(text):
            self._networks.add(clean_name(network["network"])[:16])
            return
        comm = self._initializing.get(thread)
        facts = self._facts(comm) if comm else None
        if facts is None:
            return
        if via := _VIA.match(text):
            facts.transports.add(via["transport"])
        elif _RING.match(text):
            facts.algorithms.add("ring")
        elif _TREE.match(text):
            facts.algorithms.add("tree")
        elif channels := _CHANNELS.match(text):
            facts.channels.update({kind: int(n) for kind, n in channels.groupdict().items() if n is not None})

    def emit(self, hostname: str, out: FamilySet) -> None:
        for comm_id, facts in self._comms.items():
            labels = {"hostname": hostname, "comm_id": comm_id}
            for transport in sorted(facts.transports):
                out.add(m.COMM_TRANSPORT, {**labels, "transport": transport}, 1)
            for algorithm in sorted(facts.algorithms):
                out.add(m.COMM_ALGORITHM, {**labels, "algorithm": algorithm}, 1)
            for kind, count in facts.channels.items():
                out.add(m.COMM_CHANNELS, {**labels, "kind": kind}, count)
        for network in sorted(self._networks):
            out.add(m.NETWORK, {"hostname": hostname, "network": network}, 1)
        for category, count in sorted(self.warnings.items()):
            out.add(m.WARNINGS, {"hostname": hostname, "category": category}, count)

    def _identify(self, thread: tuple[str, str, str], pointer: str, text: str) -> str | None:
        """The commId of an init line: printed, derived from a known parent, or remembered by pointer."""
        process = (thread[0], thread[1], pointer)
        if printed := _COMM_ID.search(text):
            comm_id: str | None = printed["comm"]
        elif (split := _PARENT.search(text)) and (parent := self._ids.get((thread[0], thread[1], split["parent"]))):
            comm_id = split_comm_id(parent, int(split["child"]), int(split["color"]))
        else:
            comm_id = self._ids.get(process)
        if comm_id and (process in self._ids or len(self._ids) < MAX_THREADS):
            self._ids[process] = comm_id
        return comm_id

    def _facts(self, comm_id: str) -> _CommFacts | None:
        facts = self._comms.get(comm_id)
        if facts is None and len(self._comms) < MAX_COMMUNICATORS:
            facts = self._comms[comm_id] = _CommFacts()
        return facts
