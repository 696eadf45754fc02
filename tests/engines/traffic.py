"""What the engine labs share: a phase's requests sent at once, and what an OpenAI-API client saw, tallied by
outcome. The standard library only: a lab may run inside an engine's own virtual environment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def at_once(calls: Sequence[Callable[[], T]], gap: float, timeout: float) -> list[T]:
    """Each call in a thread of its own, started `gap` seconds apart, every result back within `timeout`."""
    results: list[T | None] = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(gap)
    for thread in threads:
        thread.join(timeout)
    assert all(r is not None for r in results), "a request of the phase never returned"
    return results  # type: ignore[return-value]


@dataclass
class Completion:
    """One OpenAI-API request as its client saw it."""
    kind: str  # what the client meant: stop, length, too_long, bad_parameter, unknown_model, cancelled, overload
    status: int  # the HTTP status, 0 where the client closed the stream
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0  # from sending to the last byte read, on the client


def completion_counts(outcomes: Sequence[Completion], rejected: Collection[int] = (429, 503)) -> dict[str, int]:
    """What the client saw, by outcome; `rejected` the statuses the engine refuses with for overload."""
    tally = {"sent": len(outcomes), "stop": 0, "length": 0, "client_error": 0, "rejected": 0, "cancelled": 0,
             "server_error": 0}
    for o in outcomes:
        if o.status == 200:
            tally[o.finish_reason if o.finish_reason in ("stop", "length") else "server_error"] += 1
        elif o.status == 0:
            tally["cancelled"] += 1
        elif o.status in rejected:
            tally["rejected"] += 1
        elif 400 <= o.status < 500:
            tally["client_error"] += 1
        else:
            tally["server_error"] += 1
    return tally
