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
that was lost stores nothing twice. A service whose store is full (507) will not have room
again within a retry's backoff: the client keeps the batch and posts nothing for Retry-After
(else max_backoff) seconds, while new rows queue up to max_queue_rows.

With mode="profile" (for models the service is configured to take profiles of) the rows never leave
the process: each flush summarizes the queued rows into the current interval's profile per segment
(fleetscope.drift.profiles, merged as it goes), and once an interval has ended its profiles are posted
to /v1/models/{model}/profiles, keyed by replica, segment and interval start, so that a retry is stored
once. Rows are filed under the interval in which they are summarized (within flush_interval of when
they were sent). Profile mode needs pandas and datasketches (the `drift` extra) and the model's columns: text
columns are profiled as their descriptors and embedding columns as a count and a sum vector (fleetscope.drift.
profiles); a batch with a value rows ingest would refuse (a text past max_text_length, ragged vectors, ...) is
dropped, counted under the reason the service would give.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.drift import catalog
from fleetscope.drift.sharding import shard_url

_log = log.get("fleetscope.drift.client")
# 408: the body was too slow to arrive; 429: too many writes at once. Both can succeed later.
RETRIED_CLIENT_ERRORS = (408, 429)
# 507: the service's store is full (storage.max_bytes or the model's quota): posting pauses, nothing is retried at once.
STORAGE_FULL = 507
# What became of a post (_deliver_body); all but the first are also the reasons its rows are counted as dropped.
# A post the service refused for good is counted by the service's own reason (unknown_model, schema, ...), or as
# REJECTED where it gave none.
ACCEPTED, REJECTED, FULL, GAVE_UP = "accepted", "rejected", "storage_full", "retries_exhausted"
_SERVICE_REASON = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_REFUSAL_BYTES = 64 << 10  # of a refusal's body; the service's are under 2 KB
MAX_REFUSAL_REASONS = 32  # distinct reasons counted by name; a service that sent more is counted as REJECTED
Row = Mapping[str, object]  # one model output: column name to value


class DriftClient:
    def __init__(self, url: str, model: str, token: str | None = None, batch_rows: int = 1000,
                 flush_interval: float = 1.0, max_queue_rows: int = 100_000, max_retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0, mode: str = "rows",
                 numerical: Sequence[str] = (), categorical: Sequence[str] = (), segments: Sequence[str] = (),
                 interval: float = 60.0, replica: str | None = None,
                 clock: Callable[[], float] = time.time, shards: int = 1, text: Sequence[str] = (),
                 embeddings: Sequence[str] = (), max_text_length: int = 65_536,
                 max_dimensions: int = 4096, exact_categories: int | None = None) -> None:
        """shards: how many drift service instances the models are spread over; `url` then holds {shard}, and
        the model's shard is chosen as the service instances choose it (fleetscope.drift.sharding).
        text, embeddings (profile mode): the model's text and embedding columns; max_text_length and max_dimensions
        as the service's limits.max_text_length and limits.max_embedding_dimensions. exact_categories (profile
        mode): the most categories a categorical column counts exactly in an interval, a frequent-items sketch
        past it; at most the service's limits.max_exact_categories (None: its default, 100,000)."""
        if mode not in ("rows", "profile"):
            raise ValueError(f"mode must be rows or profile, not {mode!r}")
        self.mode = mode
        url = shard_url(url, model, shards)
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model}/{'outputs' if mode == 'rows' else 'profiles'}"
        self.model = model
        self._profiles = None if mode == "rows" else _Profiles(numerical, categorical, segments, interval,
                                                               replica or _replica_id(), clock, text, embeddings,
                                                               max_text_length, max_dimensions, exact_categories)
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
        self._refusals: set[str] = set()  # the reasons already logged
        self._paused_until = 0.0  # time.monotonic() before which nothing is posted: the service's store is full
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
            if self._profiles is not None:
                self._summarize_and_send(closing, deadline)
                if closing:
                    return
                continue
            while self._queue and (closing or time.monotonic() >= self._paused_until):
                batch = self._take()
                if not self._deliver(batch, deadline, closing):
                    break
                if len(self._queue) < self.batch_rows and not closing:
                    break
            if closing:
                with self._lock:
                    if self._queue:
                        self.dropped["closed"] += len(self._queue)
                        self._queue.clear()
                return

    def _summarize_and_send(self, closing: bool, deadline: float | None) -> None:
        profiles = self._profiles
        assert profiles is not None  # profile mode
        while self._queue:
            batch = self._take()
            try:
                profiles.add(batch)
            except (ValueError, TypeError) as error:  # a value of the wrong type for its column: not summarized
                _log.warning("drift client dropped a batch it could not profile", extra={"error": str(error)})
                self.dropped[getattr(error, "reason", "invalid")] += len(batch)
        for key, (profile, rows) in profiles.due(everything=closing):
            if not closing and time.monotonic() < self._paused_until:  # the store is full: kept for later
                break
            url = f"{self.endpoint}?{urllib.parse.urlencode(profiles.query(key))}"
            delivered = self._deliver_body(profile.to_bytes(), profiles.idempotency_key(key), rows, deadline, url,
                                           "application/vnd.fleetscope.profile")
            if delivered in (GAVE_UP, FULL):  # kept for the next round, unless closing
                if closing or profiles.expired(key):
                    profiles.forget(key)
                    self.dropped[delivered] += rows
                continue
            profiles.forget(key)
            if delivered == ACCEPTED:
                self.sent += rows
            else:
                self.dropped[delivered] += rows
        with self._lock:
            if closing and self._queue:
                self.dropped["closed"] += len(self._queue)
                self._queue.clear()

    def _take(self) -> list[Row]:
        with self._lock:
            return [self._queue.popleft() for _ in range(min(self.batch_rows, len(self._queue)))]

    def _deliver(self, batch: list[Row], deadline: float | None, closing: bool = False) -> bool:
        """Posts one batch with retries; False when it was given up (the rows are counted as dropped) or put back
        at the head of the queue for later (the service's store is full, unless closing)."""
        try:
            body = json.dumps({"columns": _columns(batch)}, allow_nan=False).encode()
        except (TypeError, ValueError) as error:
            _log.warning("drift client dropped an unserializable batch", extra={"error": str(error)})
            self.dropped["invalid"] += len(batch)
            return True
        delivered = self._deliver_body(body, uuid.uuid4().hex, len(batch), deadline)
        if delivered == FULL and not closing:
            with self._lock:  # first out again once the pause is over, as far as the queue has room
                kept = batch[:max(0, self.max_queue_rows - len(self._queue))]
                self._queue.extendleft(reversed(kept))
            if len(kept) < len(batch):
                self.dropped[FULL] += len(batch) - len(kept)
            return False
        if delivered == ACCEPTED:
            self.sent += len(batch)
        else:
            self.dropped[delivered] += len(batch)
        return delivered not in (FULL, GAVE_UP)

    def _deliver_body(self, body: bytes, key: str, rows: int, deadline: float | None, url: str | None = None,
                      content_type: str = "application/json") -> str:
        """Posts a body with retries: ACCEPTED; the service's reason (or REJECTED) when refused for good; FULL at once
        when the service's store is full (posting then pauses); GAVE_UP when retries ran out."""
        for attempt in range(self.max_retries + 1):
            status, retry_after, refusal = self._post(body, key, url or self.endpoint, content_type)
            if status == 202:
                return ACCEPTED
            if status == STORAGE_FULL:
                pause = retry_after if retry_after is not None else self.max_backoff
                self._paused_until = time.monotonic() + pause
                _log.warning("drift service's store is full; posting paused",
                             extra={"status": status, "rows": rows, "seconds": pause})
                return FULL
            if status is not None and 400 <= status < 500 and status not in RETRIED_CLIENT_ERRORS:
                return self._refused(status, refusal, rows)
            delay = retry_after if retry_after is not None else min(self.max_backoff, self.backoff * 2 ** attempt)
            delay *= random.uniform(0.8, 1.2)
            if deadline is not None and time.monotonic() + delay > deadline or attempt == self.max_retries:
                break
            if self._closing.wait(delay) and deadline is None:
                deadline = time.monotonic() + self.timeout
        return GAVE_UP

    def _refused(self, status: int, refusal: dict[str, Any], rows: int) -> str:
        """The reason rows the service refused for good are counted under; logged once per reason, with what the
        service said to do (PUT a reference, declare the model, ...)."""
        reason = refusal.get("reason")
        named = self._refusals - {REJECTED}
        if not isinstance(reason, str) or not _SERVICE_REASON.fullmatch(reason) or \
                reason not in named and len(named) >= MAX_REFUSAL_REASONS:
            reason = REJECTED
        if reason not in self._refusals:
            self._refusals.add(reason)
            message = refusal.get("error")
            _log.warning("drift service refused a batch; later refusals for this reason are only counted",
                         extra={"status": status, "reason": reason, "rows": rows, "model": self.model,
                                "service_said": log.quoted(message) if isinstance(message, str) else ""})
        return reason

    def _post(self, body: bytes, key: str, url: str,
              content_type: str) -> tuple[int | None, float | None, dict[str, Any]]:
        """The status, Retry-After and, for a refusal, the service's JSON answer ({"error", "reason"})."""
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={**self._headers, "Content-Type": content_type,
                                                  "Idempotency-Key": key})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, None, {}
        except urllib.error.HTTPError as error:
            retry_after = error.headers.get("Retry-After", "")
            return error.code, float(retry_after) if retry_after.isdigit() else None, _refusal(error)
        except (OSError, ValueError):
            return None, None, {}


def _refusal(error: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        answer = json.loads(error.read(MAX_REFUSAL_BYTES))
    except (OSError, ValueError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _columns(rows: list[Row]) -> dict[str, list[object]]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}


def _replica_id() -> str:
    """This process, as one replica: host and process id, and a random part for restarts that reuse the pid."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())[:80]
    return f"{safe}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class _Profiles:
    """Profile mode's state: per (interval start, segment label), the merged profile of the rows summarized
    in that interval and their number."""

    EXPIRY_INTERVALS = 10  # an interval the service has not taken after this many more is given up

    def __init__(self, numerical: Sequence[str], categorical: Sequence[str], segments: Sequence[str],
                 interval: float, replica: str, clock: Callable[[], float], text: Sequence[str] = (),
                 embeddings: Sequence[str] = (), max_text_length: int = 65_536, max_dimensions: int = 4096,
                 exact_categories: int | None = None) -> None:
        if not (numerical or categorical or text or embeddings):
            raise ValueError("profile mode needs the model's columns: numerical=[...], categorical=[...], text=[...] "
                             "and/or embeddings=[...]")
        if not 1 <= interval <= 3600:
            raise ValueError("interval must be between 1 and 3600 seconds")
        # pandas and datasketches: only profile mode loads them
        from fleetscope.drift import profiles
        from fleetscope.drift.columns import category_text
        from fleetscope.drift.segments import segment_label

        self._module, self._label, self._text = profiles, segment_label, category_text
        self._sample_rows = profiles.samples.ROWS  # rows of an interval sent with its profile, for the report
        self.numerical, self.categorical = list(numerical), list(categorical)
        self.text, self.embeddings = list(text), list(embeddings)
        self.max_text_length, self.max_dimensions = max_text_length, max_dimensions
        self.exact_categories = profiles.category_limit(exact_categories)
        self.segments, self.interval, self.replica, self.clock = list(segments), interval, replica, clock
        self.columns = [c for c in self.numerical + self.categorical + self.text + self.embeddings
                        if c not in self.segments]
        self.textual = list(dict.fromkeys(self.categorical + self.segments))
        self.numerical_columns = [c for c in self.numerical if c in self.columns]
        self.categorical_columns = [c for c in self.categorical if c in self.columns]
        self.pending: dict[tuple[float, str], tuple[Any, int]] = {}

    def add(self, rows: list[Row]) -> None:
        import numpy as np
        import pandas as pd

        start = math.floor(self.clock() / self.interval) * self.interval
        columns: dict[str, Any] = {name: [row.get(name) for row in rows]
                                   for name in dict.fromkeys(self.columns + self.segments)}
        for name in self.textual:  # categories as the service stores them: 1 and True as "1" and "true"
            values = columns[name]
            if not all(type(value) is str or value is None for value in values):
                values = [self._text(value) for value in values]
            columns[name] = np.array(values, dtype=object)
        for name in self.numerical_columns:  # None becomes NaN; text raises ValueError, and the batch is refused
            columns[name] = np.array(columns[name], dtype=np.float64)
        for name in self.text + self.embeddings:  # one object per row (np.array would make vectors a matrix)
            columns[name] = pd.Series(columns[name], dtype=object)
        frame = pd.DataFrame(columns, copy=False)
        groups = frame.groupby(self.segments, dropna=False, sort=False) if self.segments else [((), frame)]
        made = []
        for values, group in groups:
            key = (start, self._label(self.segments, values if isinstance(values, tuple) else (values,)))
            pending = self.pending.get(key)
            uncounted = [] if pending is None else [name for name, column in pending[0].columns.items()
                                                    if column.numeric and column.counts is None]
            data = group[self.columns] if self.segments else group  # without segments, the frame is the columns
            made.append((key, self._module.profile(data, self.numerical_columns, self.categorical_columns,
                                                   uncounted=uncounted, text=self.text, embeddings=self.embeddings,
                                                   max_text_length=self.max_text_length,
                                                   max_dimensions=self.max_dimensions,
                                                   exact_categories=self.exact_categories), len(group)))
        for key, profile, count in made:  # all or nothing: a batch that fails to profile changes nothing
            if key in self.pending:
                merged, before = self.pending[key]
                # the pending profile is this client's own
                merged.absorb(profile, self._sample_rows, self.exact_categories)
                profile, count = merged, before + count
            self.pending[key] = (profile, count)

    def due(self, everything: bool) -> list[tuple[tuple[float, str], tuple[Any, int]]]:
        now = self.clock()
        return [(key, found) for key, found in sorted(self.pending.items())
                if everything or key[0] + self.interval <= now]

    def expired(self, key: tuple[float, str]) -> bool:
        return bool(key[0] + self.interval * self.EXPIRY_INTERVALS <= self.clock())

    def forget(self, key: tuple[float, str]) -> None:
        self.pending.pop(key, None)

    def query(self, key: tuple[float, str]) -> dict[str, str]:
        start, label = key
        return {"replica": self.replica, "start": repr(start), "seconds": repr(float(self.interval)),
                **({"segment": label} if label else {})}

    def idempotency_key(self, key: tuple[float, str]) -> str:
        """What the service keys a profile on (it reads them from the query): replica, interval, segment."""
        return f"{self.replica}:{key[0]:.0f}:{key[1]}"
