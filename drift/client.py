"""A client for model servers: hands outputs to the drift service without ever getting in
the way of serving.

    client = DriftClient("http://drift:9840", "iris", token=os.environ.get("DRIFT_TOKEN"))
    client.send({"score": 0.93, "label": "setosa"})     # never blocks, never raises
    ...
    client.close()                                      # flushes what it can

Rows queue in memory up to `max_queue_rows`; past that new rows are dropped and counted.
A background thread posts them in batches (JSON columns) every `flush_interval` or once
`batch_rows` are waiting. A failed post (network, 408, 429, 5xx) is retried with exponential
backoff and jitter, honouring Retry-After, up to `max_retries`; a batch the service refuses
as invalid (any other 4xx) is dropped and counted, since sending it again cannot succeed.
Every post of a batch carries the same Idempotency-Key, so a retry after an acknowledgement
that was lost stores nothing twice.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.metrics_core import Metric

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.drift import catalog

_log = log.get("fleetscope.drift.client")
# 408: the body was too slow to arrive; 429: too many writes at once. Both can succeed later.
RETRIED_CLIENT_ERRORS = (408, 429)
Row = Mapping[str, object]  # one model output: column name to value


class DriftClient:
    def __init__(self, url: str, model: str, token: str | None = None, batch_rows: int = 1000,
                 flush_interval: float = 1.0, max_queue_rows: int = 100_000, max_retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0) -> None:
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model}/outputs"
        self.model = model
        self.batch_rows, self.flush_interval = batch_rows, flush_interval
        self.max_queue_rows, self.max_retries = max_queue_rows, max_retries
        self.backoff, self.max_backoff, self.timeout = backoff, max_backoff, timeout
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._queue: deque[Row] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self.sent = 0
        self.dropped: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name=f"drift-client-{model}", daemon=True)
        self._thread.start()

    def send(self, row: Row) -> bool:
        """Queues one output row; False (and counted) if the queue is full or the client closed."""
        return self.send_many((row,)) == 1

    def send_many(self, rows: Iterable[Row]) -> int:
        """Queues rows; returns how many were queued, the rest counted as dropped."""
        queued = 0
        with self._lock:
            for row in rows:
                if self._closing.is_set():
                    self.dropped["closed"] += 1
                elif len(self._queue) >= self.max_queue_rows:
                    self.dropped["queue_full"] += 1
                else:
                    self._queue.append(row)
                    queued += 1
            if len(self._queue) >= self.batch_rows:
                self._wake.set()
        return queued

    @property
    def queued(self) -> int:
        return len(self._queue)

    def close(self, timeout: float = 10.0) -> None:
        """Stops taking rows and flushes what is queued, for at most `timeout` seconds."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)

    def collect(self) -> Iterator[Metric]:
        """The client's counters, for a prometheus_client registry of the model server."""
        families = FamilySet()
        families.add(catalog.CLIENT_ROWS_SENT, {"model": self.model}, self.sent)
        for reason, count in sorted(self.dropped.items()):
            families.add(catalog.CLIENT_ROWS_DROPPED, {"model": self.model, "reason": reason}, count)
        families.add(catalog.CLIENT_QUEUE_ROWS, {"model": self.model}, len(self._queue))
        yield from families.metrics()

    # -- the background thread --------------------------------------------------------

    def _run(self) -> None:
        deadline = None
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            closing = self._closing.is_set()
            if closing and deadline is None:
                deadline = time.monotonic() + self.timeout
            while self._queue:
                batch = self._take()
                if not self._deliver(batch, deadline):
                    break
                if len(self._queue) < self.batch_rows and not closing:
                    break
            if closing:
                with self._lock:
                    if self._queue:
                        self.dropped["closed"] += len(self._queue)
                        self._queue.clear()
                return

    def _take(self) -> list[Row]:
        with self._lock:
            return [self._queue.popleft() for _ in range(min(self.batch_rows, len(self._queue)))]

    def _deliver(self, batch: list[Row], deadline: float | None) -> bool:
        """Posts one batch with retries; False when it was given up (the rows are counted as dropped)."""
        try:
            body = json.dumps({"columns": _columns(batch)}, allow_nan=False).encode()
        except (TypeError, ValueError) as error:
            _log.warning("drift client dropped an unserializable batch", extra={"error": str(error)})
            self.dropped["invalid"] += len(batch)
            return True
        batch_id = uuid.uuid4().hex
        for attempt in range(self.max_retries + 1):
            status, retry_after = self._post(body, batch_id)
            if status == 202:
                self.sent += len(batch)
                return True
            if status is not None and 400 <= status < 500 and status not in RETRIED_CLIENT_ERRORS:
                _log.warning("drift service refused a batch", extra={"status": status, "rows": len(batch)})
                self.dropped["rejected"] += len(batch)
                return True
            delay = retry_after if retry_after is not None else min(self.max_backoff, self.backoff * 2 ** attempt)
            delay *= random.uniform(0.8, 1.2)
            if deadline is not None and time.monotonic() + delay > deadline or attempt == self.max_retries:
                break
            if self._closing.wait(delay) and deadline is None:
                deadline = time.monotonic() + self.timeout
        self.dropped["retries_exhausted"] += len(batch)
        return False

    def _post(self, body: bytes, batch_id: str) -> tuple[int | None, float | None]:
        request = urllib.request.Request(self.endpoint, data=body, method="POST",
                                         headers={**self._headers, "Idempotency-Key": batch_id})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, None
        except urllib.error.HTTPError as error:
            retry_after = error.headers.get("Retry-After", "")
            return error.code, float(retry_after) if retry_after.isdigit() else None
        except (OSError, ValueError):
            return None, None


def _columns(rows: list[Row]) -> dict[str, list[object]]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}
