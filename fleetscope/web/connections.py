"""Bounds on connections, shared by both HTTP stacks (the exporter's threads, uvicorn's event loop).

A client that connects and then sends its request slowly, or not at all, would otherwise hold
a connection (and in the exporter a thread) for ever; thousands of them exhaust file
descriptors and the honest scraper is refused. Two rules stop that:

- a connection must deliver a complete request head within `header_timeout` of connecting,
  and the next one within `idle_timeout` of its last response (keep-alive); past that it is
  closed, however many bytes it trickles;
- at most `max_connections` are open; a new one over the cap closes the connection that has
  waited longest for its request head (a slow or idle client; an honest one sends its head at
  once), and is itself refused only when every open connection is busy with a request.

So an attacker holding the cap only ever evicts its own connections, and a scrape goes through.
"""

from __future__ import annotations

import resource
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleetscope import log


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1024
    header_timeout: float = 10.0  # connect to a complete request head
    idle_timeout: float = 60.0  # a keep-alive connection's wait for its next request
    body_timeout: float = 30.0  # request head to the whole body (where a body is read)

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("the connection cap must be at least 1")
        if min(self.header_timeout, self.idle_timeout, self.body_timeout) <= 0:
            raise ValueError("timeouts must be positive")


Connection = TypeVar("Connection")


class Waiting(Generic[Connection]):
    """The open connections waiting for a request head, oldest first, each with its deadline.

    Not tied to sockets or transports: `close` is how a connection is ended. Thread-safe."""

    def __init__(self, limits: ConnectionLimits, close: Callable[[Connection], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._close, self._clock = close, clock
        self._waiting: OrderedDict[Connection, float] = OrderedDict()
        self._open: set[Connection] = set()
        self._lock = threading.Lock()
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0

    @property
    def open(self) -> int:
        return len(self._open)

    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._open)

    def opened(self, connection: Connection) -> bool:
        """A new connection; False when it must be refused (the cap is reached and all are busy)."""
        with self._lock:
            victim = None
            if len(self._open) >= self.limits.max_connections:
                if not self._waiting:
                    self.refused += 1
                    return False
                victim, _ = self._waiting.popitem(last=False)
                self._open.discard(victim)  # counted out now, so its late closed() changes nothing
                self.evicted += 1
            self._open.add(connection)
            self._waiting[connection] = self._clock() + self.limits.header_timeout
        if victim is not None:
            self._close(victim)
        return True

    def request_started(self, connection: Connection) -> None:
        with self._lock:
            self._waiting.pop(connection, None)

    def response_sent(self, connection: Connection) -> None:
        """The connection stays open for its next request, for at most idle_timeout."""
        with self._lock:
            if connection in self._open:
                self._waiting.pop(connection, None)
                self._waiting[connection] = self._clock() + self.limits.idle_timeout

    def closed(self, connection: Connection) -> None:
        """A connection ended (by either side); one that was evicted is not counted twice."""
        with self._lock:
            self._waiting.pop(connection, None)
            self._open.discard(connection)

    def expire(self) -> None:
        """Closes every connection past its deadline; call it about once a second."""
        now, expired = self._clock(), []
        with self._lock:
            for connection, deadline in list(self._waiting.items()):
                if deadline <= now:
                    expired.append(connection)
                    del self._waiting[connection]
        self.timed_out += len(expired)
        for connection in expired:
            self._close(connection)


# Files a service holds besides its connections: the store, logs, sysfs and NVML handles.
_OTHER_FILES = 64


def raise_open_file_limit(limits: ConnectionLimits) -> int:
    """Raises the soft limit on open files to the hard one, as Go programs do at start: the
    common default soft limit (1024) would otherwise cap connections below max_connections, and
    accept() failing is worse than the cap's eviction. Warns when even that leaves too little
    room for the cap; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, limits.max_connections + 1024)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < limits.max_connections + _OTHER_FILES:
        log.get("fleetscope.web").warning(
            "the open-file limit is below the connection cap: raise it (ulimit -n, LimitNOFILE=) or lower the cap",
            extra={"open_file_limit": soft, "max_connections": limits.max_connections})
    return soft
