"""The rate limit: at most N drains in any hour, counted over a sliding window that survives a restart (it is
read back from the audit log)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

HOUR = 3600.0


class HourlyLimit:
    def __init__(self, limit: int, clock: Callable[[], float] = time.time, past: Iterable[float] = ()) -> None:
        self.limit, self._clock = limit, clock
        now = clock()
        self._times = deque(sorted(t for t in past if now - HOUR < t <= now))

    def used(self) -> int:
        cutoff = self._clock() - HOUR
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()
        return len(self._times)

    def allows(self) -> bool:
        return self.used() < self.limit

    def record(self) -> None:
        self._times.append(self._clock())


def within_ratio(drained_after: int, nodes: int, ratio: float) -> bool:
    """Whether `drained_after` drained nodes of `nodes` stay within the share `ratio` (a partition of 10 at 0.1
    may have 1 drained; one of 5 at 0.1 none)."""
    return drained_after <= ratio * nodes + 1e-9
