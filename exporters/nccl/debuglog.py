"""Facts from NCCL_DEBUG=INFO logs (for example written with NCCL_DEBUG_FILE=/path/nccl.%h.%p.log):
the transports, algorithms and channels each communicator set up, the network NCCL chose,
and NCCL WARN lines counted by category.

NCCL prefixes every line with <hostname>:<pid>:<tid> [<cuda device>]. A communicator's set-up
lines run on the thread that logged its "ncclCommInitRank ... commId 0x... - Init START",
up to its "Init COMPLETE", so the thread ties them to the communicator. commId is the same
hash the Inspector plugin writes as the header's id.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import nccl as m
from fleetscope.exporters.nccl.aggregate import clean_name

_PREFIX = re.compile(r"^(?P<host>[^:\s]+):(?P<pid>\d+):(?P<tid>\d+) \[[^\]]*\] (?:\S+:\d+ )?NCCL (?P<level>INFO|WARN) (?P<text>.*)$")
_INIT = re.compile(r"ncclCommInitRank(?:Config|Func)? comm 0x[0-9a-f]+ .*commId (?P<comm>0x[0-9a-f]+).* - Init (?P<phase>START|COMPLETE)")
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


def warning_category(text: str) -> str:
    return next((name for name, pattern in _CATEGORIES if pattern.search(text)), "other")


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
        if init := _INIT.search(text):
            if init["phase"] == "START" and len(self._initializing) < MAX_THREADS:
                self._initializing[thread] = init["comm"]
            else:
                self._initializing.pop(thread, None)
            self._facts(init["comm"])
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

    def _facts(self, comm_id: str) -> _CommFacts | None:
        facts = self._comms.get(comm_id)
        if facts is None and len(self._comms) < MAX_COMMUNICATORS:
            facts = self._comms[comm_id] = _CommFacts()
        return facts
