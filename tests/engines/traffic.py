"""What the engine labs share: a phase's requests sent at once, an OpenAI-API request and what its client saw,
tallied by outcome, and a phase's page and ground truth written side by side. The standard library only: a lab
may run inside an engine's own virtual environment."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
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


def post_completion(port: int, body: dict, kind: str, timeout: float) -> Completion:
    """POST /v1/completions on 127.0.0.1:port, read whole: its status, and an answer's finish reason and tokens."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
        response = connection.getresponse()
        raw = response.read() or b"{}"
    finally:
        connection.close()
    outcome = Completion(kind, response.status, seconds=time.monotonic() - started)
    if response.status == 200:
        answer = json.loads(raw)
        outcome.finish_reason = answer["choices"][0]["finish_reason"]
        outcome.prompt_tokens = answer["usage"]["prompt_tokens"]
        outcome.completion_tokens = answer["usage"]["completion_tokens"]
    return outcome


def completion_tokens(outcomes: Sequence[Completion]) -> dict[str, object]:
    """Tokens of the requests answered in full; a cancelled stream's are not known to the client."""
    answered = [o for o in outcomes if o.status == 200]
    return {"prompt": sum(o.prompt_tokens or 0 for o in answered),
            "completion": sum(o.completion_tokens or 0 for o in answered),
            "complete": all(o.status != 0 for o in outcomes)}


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


def emptied(folder: Path) -> Path:
    """The fixtures folder of one engine release, made where missing, its earlier recording removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in (*folder.glob("*.prom"), *folder.glob("*.json")):
        old.unlink()
    return folder


def write_phase(folder: Path, index: int, phase: str, page: str, truth: dict) -> str:
    """<index>-<phase>.prom, the page after the phase, and .json, its ground truth; the name they share."""
    name = f"{index:02d}-{phase}"
    (folder / f"{name}.prom").write_text(page)
    (folder / f"{name}.json").write_text(json.dumps(truth, indent=1) + "\n")
    return name
