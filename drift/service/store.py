"""Durable storage of accepted outputs, references and model schemas, in SQLite.

Why SQLite: it ships with Python, and one transaction per batch gives exactly what the API
promises: a batch is stored whole or not at all, and once the commit returns it survives
kill -9 and power loss (write-ahead log with synchronous=FULL). Batches are stored as Arrow
IPC blobs, one row per batch, so a 10,000-row batch is one insert and windows read back as
Arrow tables without per-row decoding. DuckDB would add a large dependency and takes a
process-wide file lock; Parquet segments would need a write-ahead log of our own. The blobs are
zstd-compressed, their text columns dictionary-encoded where values repeat: what a body compressed
(a Parquet dictionary of one long label on 100,000 rows) stays compressed on disk.

Every accepted row gets a number, per model, in arrival order; windows are ranges of those
numbers, so the exact rows of an evaluation can be read again for its report.

A model whose quality is measured keeps one row per output in `outcomes` (its request id, segment, prediction
and confidence), written in the batch's transaction; a label fills in its actual value. Pre-joined labels
(prediction, confidence and actual together) are outcomes without a request id.

Models fed profiles instead of rows keep one merged profile per segment and interval: a replica's profile is
merged into its interval's row in the transaction that records its receipt (replica, segment, interval), so a
retry or a duplicate is stored once. Intervals older than a roll-up age are merged into hourly ones.

The store is bounded (StorageLimits: storage.max_bytes, storage.max_bytes_per_model). Used bytes are what SQLite
really takes: pages in use (not free ones) and the write-ahead log. A model's bytes are what its rows take: blobs as
stored, and estimates for the small rows (outcomes, receipts, idempotency keys); they are counted when the store
opens and kept up to date in each write's and delete's transaction. A write that would pass a limit is refused
(StorageRefused, 507) with nothing stored or, with when_full: drop_oldest, first deletes the oldest batches,
profile intervals and outcomes (its model's for the quota, any model's for the whole store), counted in
evicted_bytes. An Idempotency-Key is bound to the digest of its first body: another body under it is refused (422).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa

from fleetscope import log
from fleetscope.drift import samples
from fleetscope.drift.profiles import Profile, ProfileError
from fleetscope.drift.service import blobs
from fleetscope.drift.service.config import Limits, StorageLimits
from fleetscope.drift.service.decode import BadBatch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY, schema TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, model TEXT NOT NULL, received_at REAL NOT NULL,
    first_row INTEGER NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS batches_by_model_row ON batches (model, first_row);
CREATE INDEX IF NOT EXISTS batches_by_model_time ON batches (model, received_at);
CREATE TABLE IF NOT EXISTS row_counters (
    model TEXT PRIMARY KEY, next_row INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batch_ids (
    model TEXT NOT NULL, batch_id TEXT NOT NULL, first_row INTEGER NOT NULL, rows INTEGER NOT NULL,
    received_at REAL NOT NULL, digest BLOB, PRIMARY KEY (model, batch_id));
CREATE INDEX IF NOT EXISTS batch_ids_by_time ON batch_ids (received_at);
CREATE TABLE IF NOT EXISTS model_references (
    model TEXT PRIMARY KEY, updated_at REAL NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS profile_intervals (
    model TEXT NOT NULL, segment TEXT NOT NULL, start REAL NOT NULL, seconds REAL NOT NULL,
    rows INTEGER NOT NULL, profiles INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (model, segment, start, seconds));
CREATE INDEX IF NOT EXISTS profile_intervals_by_start ON profile_intervals (model, start, seconds);
CREATE TABLE IF NOT EXISTS profile_receipts (
    model TEXT NOT NULL, replica TEXT NOT NULL, segment TEXT NOT NULL, start REAL NOT NULL,
    received_at REAL NOT NULL, PRIMARY KEY (model, replica, segment, start));
CREATE INDEX IF NOT EXISTS profile_receipts_by_start ON profile_receipts (model, start, replica);
CREATE TABLE IF NOT EXISTS profile_references (
    model TEXT PRIMARY KEY, updated_at REAL NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY, model TEXT NOT NULL, request_id TEXT, output_at REAL NOT NULL, segment TEXT NOT NULL,
    prediction, confidence REAL, actual, labelled_at REAL);
CREATE UNIQUE INDEX IF NOT EXISTS outcomes_by_request ON outcomes (model, request_id);
CREATE INDEX IF NOT EXISTS outcomes_by_time ON outcomes (model, output_at);
CREATE TABLE IF NOT EXISTS label_batches (
    model TEXT NOT NULL, batch_id TEXT NOT NULL, received_at REAL NOT NULL, result TEXT NOT NULL, digest BLOB,
    PRIMARY KEY (model, batch_id));
"""
# Columns added since the first release, added to a store written before them when it opens.
_MIGRATIONS = (("batch_ids", "digest", "BLOB"), ("label_batches", "digest", "BLOB"),
               ("outcomes", "output_row", "INTEGER"))  # the output's row number, to read its inputs back


_log = log.get("fleetscope.drift")

OPEN_INTERVALS = 256  # merged interval profiles kept in memory: an interval per segment per model, a few at once
# After a checkpoint SQLite cuts the write-ahead log back to this; retention's vacuum moves this much between two.
WAL_BYTES = 64 * 1024 * 1024
_DEFAULT_LIMITS = Limits()
_T = TypeVar("_T")

# What each table's rows count towards their model's bytes (storage.max_bytes_per_model), in SQL: blobs as stored,
# text as its UTF-8 bytes times the b-tree entries that hold it (the row and its indexes), numbers as 8, and _ROW
# for the rest of a row and its index entries. The Python estimates below (_*_bytes) agree with them.
_ROW = 64


def _text(column: str) -> str:
    return f"COALESCE(length(CAST({column} AS BLOB)), 0)"


def _value(column: str) -> str:
    return (f"(CASE typeof({column}) WHEN 'null' THEN 0 WHEN 'text' THEN length(CAST({column} AS BLOB)) "
            f"WHEN 'blob' THEN length({column}) ELSE 8 END)")


_BYTES = {
    "batches": f"{_ROW} + 3 * length(model) + length(data)",
    "batch_ids": f"{_ROW} + 2 * (length(model) + length(batch_id)) + {_text('digest')}",
    "model_references": f"{_ROW} + 2 * length(model) + length(data)",
    "profile_references": f"{_ROW} + 2 * length(model) + length(data)",
    "profile_intervals": f"{_ROW} + 3 * length(model) + 2 * {_text('segment')} + length(data)",
    "profile_receipts": f"{_ROW} + 3 * (length(model) + {_text('replica')}) + 2 * {_text('segment')}",
    "outcomes": f"{_ROW} + 3 * length(model) + 2 * {_text('request_id')} + {_text('segment')} + "
                f"{_value('prediction')} + {_value('actual')}",
    "label_batches": f"{_ROW} + 2 * (length(model) + length(batch_id)) + length(result) + {_text('digest')}",
}
# What drop_oldest deletes, oldest first: (table, its time column, rows looked at a step).
_EVICTABLE = (("batches", "received_at", 64), ("profile_intervals", "start", 256), ("outcomes", "output_at", 4096))


def _sparing(table: str, keep_interval: int | None) -> tuple[str, tuple]:
    """The condition (and its parameter) that keeps eviction off the profile interval a write merges into."""
    if table == "profile_intervals" and keep_interval is not None:
        return " AND rowid != ?", (keep_interval,)
    return "", ()


def _value_bytes(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    return len(value) if isinstance(value, bytes) else 8


def _outcome_bytes(model: str, request: str | None, segment: str, prediction: object, actual: object) -> int:
    return (_ROW + 3 * len(model) + 2 * _value_bytes(request) + _value_bytes(segment) + _value_bytes(prediction)
            + _value_bytes(actual))


def _key_bytes(model: str, batch_id: str | None) -> int:
    """An Idempotency-Key's row (batch_ids, label_batches), without a label batch's result."""
    return 0 if batch_id is None else _ROW + 2 * (len(model) + len(batch_id)) + hashlib.sha256().digest_size


class StorageRefused(BadBatch):
    """A write the store has no room for: 507, reason storage_full (storage.max_bytes) or model_quota
    (storage.max_bytes_per_model). Nothing of it is stored."""

    def __init__(self, reason: str, message: str, rows: int | None = None) -> None:
        super().__init__(507, reason, message, rows)


def _full_hint(dropping: bool) -> str:
    if dropping:
        return (", even with the oldest data deleted (storage.when_full: drop_oldest): send smaller batches, or "
                "raise the limit")
    return ": raise the limit, shorten storage.retention, or set storage.when_full: drop_oldest to delete the " \
           "oldest data instead"


def _check_same_body(model: str, batch_id: str, stored: bytes | None, digest: bytes | None, rows: int | None) -> None:
    """BadBatch 422 where an Idempotency-Key seen before comes with another body. A key stored before digests were
    kept (stored None) cannot be checked, and replays."""
    if stored is not None and digest is not None and bytes(stored) != digest:
        raise BadBatch(422, "idempotency_key_reused", f"Idempotency-Key {batch_id!r} of model {model!r} was used for "
                                                      "another body: a retry sends the same body (and Content-Type) as "
                                                      "the first request, and a new batch a new key", rows)


class _CheckpointFirst(Exception):
    """The store is over max_bytes only with its write-ahead log counted: checkpoint it, and write again."""


@dataclass(frozen=True)
class RowRange:
    """Row numbers [first, end) of one model."""
    first: int
    end: int
    replayed: bool = False  # a batch id seen before: these are the rows it was stored as then

    @property
    def rows(self) -> int:
        return max(0, self.end - self.first)


@dataclass
class LabelResult:
    """What became of a batch of labels: counts by outcome, and each joined label's delay after its output."""
    counts: dict[str, int]
    replayed: bool = False  # an Idempotency-Key seen before: these are the counts it had then
    delays: list[float] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    @property
    def labelled(self) -> int:
        return self.counts.get("joined", 0) + self.counts.get("prejoined", 0)


@dataclass
class IntervalProfiles:
    """A window's stored intervals merged per segment, with how many went into each; and how many could not be
    used (damaged, or not mergeable with the rest: written by an older fleetscope that checked profiles less),
    which are left out so that the rest is still evaluated."""
    segments: dict[str, tuple[Profile, int]]
    unusable: int = 0
    exact_categories: int | None = None  # limits.max_exact_categories; past it a merged column becomes a sketch

    def add(self, segment: str, blob: bytes) -> None:
        try:
            found = Profile.from_bytes(blob)
            merged = self.segments.get(segment)
            if merged is None:
                self.segments[segment] = (found, 1)
            else:
                # every profile here was read for this window: merging in place is safe
                merged[0].absorb(found, exact_categories=self.exact_categories)
                self.segments[segment] = (merged[0], merged[1] + 1)
        except ProfileError as error:
            self.unusable += 1
            _log.warning("a stored profile interval cannot be used; it is left out", extra={"error": str(error)})


class Store:
    def __init__(self, path: Path, clock=time.time, limits: StorageLimits | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self.limits = limits or StorageLimits()
        self._write_lock = threading.Lock()
        self._writer = self._connect()
        self._writer.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only
        self._writer.executescript(_SCHEMA)
        for table, column, kind in _MIGRATIONS:
            if column not in {row[1] for row in self._writer.execute(f"PRAGMA table_info({table})")}:
                self._writer.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self._page_size = self._writer.execute("PRAGMA page_size").fetchone()[0]
        # Each model's bytes as its quota counts them (_BYTES), and what drop_oldest deleted of it since opening.
        # A transaction stages its changes, applied once it commits.
        self._model_bytes: Counter[str] = Counter()
        for table, size in _BYTES.items():
            for model, total in self._writer.execute(f"SELECT model, total({size}) FROM {table} GROUP BY model"):
                self._model_bytes[model] += int(total)
        self.evicted_bytes: Counter[str] = Counter()
        self._staged: Counter[str] = Counter()
        self._staged_evicted: Counter[str] = Counter()
        self._checkpointed = False  # this write already checkpointed the write-ahead log to make room
        self._eviction_logged: dict[str, float] = {}  # when drop_oldest's deletions of a model were last logged
        # Distinct replicas that sent a profile of (model, interval start), for limits.max_replicas; a few kept.
        self._replicas: dict[tuple[str, float], int] = {}
        self._reader = self._connect()
        self._read_lock = threading.Lock()
        self._next_row = dict(self._writer.execute("SELECT model, next_row FROM row_counters"))
        # The intervals profiles were last merged into, as stored (insertion order: the oldest first out).
        self._open_intervals: dict[tuple, tuple[Profile, int]] = {}
        self._last_time = self._writer.execute("SELECT COALESCE(MAX(received_at), 0) FROM batches").fetchone()[0]
        self._last_label: dict[str, float | None] = {}

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # durable once COMMIT returns
        connection.execute("PRAGMA busy_timeout=5000")
        connection.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
        return connection

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._transaction_held() as db:
            yield db

    @contextmanager
    def _transaction_held(self) -> Iterator[sqlite3.Connection]:
        """One transaction; the caller holds the write lock. The bytes it stages for models are theirs once it
        commits."""
        self._staged, self._staged_evicted = Counter(), Counter()
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            yield self._writer
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")
        self._model_bytes.update(self._staged)
        for model, evicted in self._staged_evicted.items():
            self.evicted_bytes[model] += evicted
            # Once a minute a model at most: a full store with drop_oldest evicts at every write.
            if time.monotonic() >= self._eviction_logged.get(model, -math.inf) + 60:
                self._eviction_logged[model] = time.monotonic()
                _log.warning("the store is full: the model's oldest data is being deleted (storage.when_full: "
                             "drop_oldest)", extra={"model": model, "bytes_deleted": self.evicted_bytes[model]})

    def _write(self, write: Callable[[sqlite3.Connection], _T], estimate: int = 0) -> _T:
        """write(db) in one transaction; the caller holds the write lock. write calls _make_room before it stores
        anything; where only the write-ahead log stands in the way, the log is checkpointed and write run again.
        estimate: the bytes the write will likely need, so that the log is checkpointed first where that is known
        to be needed."""
        wal = self._wal_bytes()
        first = bool(wal) and self._pages_used(self._writer) + wal + estimate > self.limits.max_bytes
        if first:
            self._checkpoint()
        for checkpointed in (first, True):
            self._checkpointed = checkpointed
            try:
                with self._transaction_held() as db:
                    return write(db)
            except _CheckpointFirst:
                self._checkpoint()
        raise AssertionError("a write made room after a checkpoint")  # _make_room raises _CheckpointFirst once

    # -- limits ----------------------------------------------------------------------

    @staticmethod
    def digest(body: bytes, content_type: str) -> bytes:
        """What an Idempotency-Key is bound to: the SHA-256 of the request's Content-Type and its raw body."""
        media = content_type.encode("utf-8", "surrogatepass")
        return hashlib.sha256(len(media).to_bytes(8, "big") + media + body).digest()

    def used_bytes(self) -> int:
        """What the store holds as storage.max_bytes counts it: SQLite's pages in use, and its write-ahead log."""
        with self._read_lock:
            pages = self._pages_used(self._reader)
        return pages + self._wal_bytes()

    def model_bytes(self, model: str) -> int:
        """What the model's data takes, as storage.max_bytes_per_model counts it."""
        return self._model_bytes[model]

    def _pages_used(self, db: sqlite3.Connection) -> int:
        pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages) * self._page_size

    def _wal_bytes(self) -> int:
        try:
            return Path(f"{self.path}-wal").stat().st_size
        except FileNotFoundError:
            return 0

    def _checkpoint(self) -> None:
        """Copies the write-ahead log into the database and empties it (the caller holds the write lock)."""
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _make_room(self, db: sqlite3.Connection, model: str, incoming: int, rows: int | None = None,
                   keep_interval: int | None = None) -> None:
        """Room for `incoming` more bytes of the model, within its quota and the store's limit, or StorageRefused.
        With when_full: drop_oldest, the oldest data goes first: the model's for its quota, any model's for the
        store's limit (but the profile interval keep_interval, which this write merges into)."""
        if incoming <= 0:  # a write that takes no more room is always allowed, even past a limit lowered since
            return
        limits, drop = self.limits, self.limits.when_full == "drop_oldest"

        def model_excess() -> int:
            return self._model_bytes[model] + self._staged[model] + incoming - limits.model_quota

        if model_excess() > 0 and drop:
            self._evict(db, model, model_excess, keep_interval)
        if model_excess() > 0:
            held = self._model_bytes[model] + self._staged[model]
            raise StorageRefused("model_quota", f"model {model!r} holds {held:,} bytes and this write needs about "
                                                f"{incoming:,} more, past storage.max_bytes_per_model "
                                                f"({limits.model_quota:,} bytes)" + _full_hint(drop), rows)
        wal = self._wal_bytes()

        def store_excess() -> int:
            return self._pages_used(db) + wal + incoming - limits.max_bytes

        if store_excess() > 0 and wal and not self._checkpointed:
            raise _CheckpointFirst
        if store_excess() > 0 and drop:
            self._evict(db, None, store_excess, keep_interval)
        if store_excess() > 0:
            held = self._pages_used(db) + wal
            raise StorageRefused("storage_full", f"the store holds {held:,} bytes and this write needs about "
                                                 f"{incoming:,} more, past storage.max_bytes ({limits.max_bytes:,} "
                                                 f"bytes)" + _full_hint(drop), rows)

    def _evict(self, db: sqlite3.Connection, scope: str | None, excess: Callable[[], int],
               keep_interval: int | None) -> None:
        """Deletes the oldest batches, profile intervals (with their receipts) and outcomes of the model (scope), or of
        every model (None), until excess() is no longer above 0 or nothing is left to delete."""
        models = [scope] if scope is not None else sorted(set(self._model_bytes) | set(self._staged))
        while (needed := excess()) > 0:
            oldest = []
            for model in models:
                for table, column, _ in _EVICTABLE:
                    kept, spared = _sparing(table, keep_interval)
                    found = db.execute(f"SELECT {column} FROM {table} WHERE model = ?{kept} ORDER BY {column} LIMIT 1",
                                       (model, *spared)).fetchone()
                    if found is not None:
                        oldest.append((found[0], table, model))
            if not oldest:
                return
            oldest.sort()
            _, table, model = oldest[0]
            until = oldest[1][0] if len(oldest) > 1 else math.inf  # no further than the next oldest of another kind
            column, step = next((column, step) for name, column, step in _EVICTABLE if name == table)
            kept, spared = _sparing(table, keep_interval)
            extra = ", segment, start" if table == "profile_intervals" else ""
            found = db.execute(f"SELECT rowid, {_BYTES[table]}{extra} FROM {table} WHERE model = ? AND {column} <= ?"
                               f"{kept} ORDER BY {column} LIMIT {step}", (model, until, *spared)).fetchall()
            chosen, freed = [], 0
            for row in found:
                chosen.append(row)
                freed += int(row[1])
                if freed >= needed:
                    break
            receipts = sum(self._delete(db, "profile_receipts", "model = ? AND start = ? AND segment = ?",
                                        (model, row[3], row[2]), count=False)
                           for row in (chosen if table == "profile_intervals" else ()))
            db.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(row[0],) for row in chosen])
            self._staged[model] -= freed
            self._staged_evicted[model] += freed + receipts
            if table == "profile_intervals":
                self._open_intervals.clear()
                self._replicas.clear()

    def _count(self, db: sqlite3.Connection, table: str, where: str, params: tuple, sign: int = 1) -> int:
        """Stages what the rows of `table` matching `where` count towards their models (sign -1: takes it off);
        returns it."""
        counted = 0
        for model, total in db.execute(f"SELECT model, total({_BYTES[table]}) FROM {table} WHERE {where} "
                                       "GROUP BY model", params).fetchall():
            self._staged[model] += sign * int(total)
            counted += int(total)
        return counted

    def _delete(self, db: sqlite3.Connection, table: str, where: str, params: tuple = (), count: bool = True) -> int:
        """Deletes rows, taking their bytes off their models; returns the bytes (or with count, the rows)."""
        freed = self._count(db, table, where, params, -1)
        deleted = db.execute(f"DELETE FROM {table} WHERE {where}", params).rowcount
        return deleted if count else freed

    # -- models and references -------------------------------------------------------

    def models(self) -> dict[str, dict]:
        with self._read_lock:
            return {name: json.loads(schema) for name, schema in
                    self._reader.execute("SELECT name, schema FROM models ORDER BY name")}

    def put_model(self, name: str, schema: dict) -> None:
        with self._transaction() as db:
            self._upsert_model(db, name, schema)

    def _upsert_model(self, db: sqlite3.Connection, name: str, schema: dict) -> None:
        db.execute("INSERT INTO models (name, schema, created_at) VALUES (?, ?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET schema = excluded.schema",
                   (name, json.dumps(schema, sort_keys=True), self._clock()))

    def put_reference(self, model: str, table: pa.Table, schema: dict | None = None) -> None:
        """Sets the model's reference, and its schema when given, in one transaction."""
        self._set_reference("model_references", model, table.num_rows, blobs.encoded(table), schema)

    def _set_reference(self, kind: str, model: str, rows: int, data: bytes, schema: dict | None) -> None:
        """One reference a model: rows (model_references) or a profile (profile_references); setting one
        removes the other."""
        other = {"model_references": "profile_references", "profile_references": "model_references"}[kind]

        def write(db: sqlite3.Connection) -> None:
            replaced = sum(db.execute(f"SELECT total({_BYTES[table]}) FROM {table} WHERE model = ?",
                                      (model,)).fetchone()[0] for table in (kind, other))
            self._make_room(db, model, _ROW + 2 * len(model) + len(data) - int(replaced))
            if schema is not None:
                self._upsert_model(db, model, schema)
            self._count(db, kind, "model = ?", (model,), -1)
            db.execute(f"INSERT INTO {kind} (model, updated_at, rows, data) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (model) DO UPDATE SET updated_at = excluded.updated_at, rows = excluded.rows, "
                       "data = excluded.data", (model, self._clock(), rows, data))
            self._count(db, kind, "model = ?", (model,))
            self._delete(db, other, "model = ?", (model,))

        with self._write_lock:
            self._write(write, len(data))

    def reference_version(self, model: str) -> float | None:
        """When the model's reference was last set, without reading it; None if it has none."""
        with self._read_lock:
            found = self._reader.execute("SELECT updated_at FROM model_references WHERE model = ?",
                                         (model,)).fetchone()
        return None if found is None else found[0]

    def reference(self, model: str) -> tuple[float, pa.Table] | None:
        with self._read_lock:
            found = self._reader.execute("SELECT updated_at, data FROM model_references WHERE model = ?",
                                         (model,)).fetchone()
        return None if found is None else (found[0], blobs.decoded(found[1]))

    def reference_schema(self, model: str) -> pa.Schema | None:
        """The schema of the model's reference, without decoding its rows; None if it has none."""
        with self._read_lock:
            found = self._reader.execute("SELECT data FROM model_references WHERE model = ?", (model,)).fetchone()
        return None if found is None else blobs.schema_of(found[0])

    # -- outputs ---------------------------------------------------------------------

    def append(self, model: str, table: pa.Table, batch_id: str | None = None,
               outcomes: list[tuple] | None = None, digest: bytes | None = None) -> RowRange:
        """Stores a batch; when this returns, the batch is on disk. A batch id already stored for
        the model (a client's retry after a lost acknowledgement) stores nothing and returns the
        rows it was stored as, so a batch is kept once however often it is sent; sent with another
        body (digest: Store.digest of the request), it is refused (422).

        outcomes: (request id, segment, prediction, confidence[, the row's position in the batch]) of each row with
        a request id, for quality; a request id stored before keeps its first output. StorageRefused (507) where
        there is no room."""
        blob = blobs.encoded(table)
        rows = table.num_rows
        with self._write_lock:
            if batch_id is not None:
                seen = self._writer.execute("SELECT first_row, rows, digest FROM batch_ids WHERE model = ? AND "
                                            "batch_id = ?", (model, batch_id)).fetchone()
                if seen is not None:
                    _check_same_body(model, batch_id, seen[2], digest, rows)
                    return RowRange(seen[0], seen[0] + seen[1], replayed=True)
            incoming = _ROW + 3 * len(model) + len(blob) + _key_bytes(model, batch_id) + sum(
                _outcome_bytes(model, request, segment, prediction, None)
                for request, segment, prediction, *_ in outcomes or ())

            def write(db: sqlite3.Connection) -> tuple[float, int]:
                self._make_room(db, model, incoming, rows)
                received_at = max(self._clock(), self._last_time)  # arrival order and time agree
                first = self._next_row.get(model, 0)
                stored = db.execute("INSERT INTO batches (model, received_at, first_row, rows, data) "
                                    "VALUES (?, ?, ?, ?, ?)", (model, received_at, first, rows, blob))
                self._count(db, "batches", "rowid = ?", (stored.lastrowid,))
                db.execute("INSERT INTO row_counters (model, next_row) VALUES (?, ?) "
                           "ON CONFLICT (model) DO UPDATE SET next_row = excluded.next_row", (model, first + rows))
                if batch_id is not None:
                    key = db.execute("INSERT INTO batch_ids (model, batch_id, first_row, rows, received_at, digest) "
                                     "VALUES (?, ?, ?, ?, ?, ?)", (model, batch_id, first, rows, received_at, digest))
                    self._count(db, "batch_ids", "rowid = ?", (key.lastrowid,))
                if outcomes:
                    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM outcomes").fetchone()[0]
                    db.executemany("INSERT OR IGNORE INTO outcomes (model, request_id, output_at, segment, prediction, "
                                   "confidence, output_row) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   [(model, request, received_at, segment, prediction, confidence,
                                     first + position[0] if position else None)
                                    for request, segment, prediction, confidence, *position in outcomes])
                    self._count(db, "outcomes", "id > ?", (last,))
                return received_at, first

            received_at, first = self._write(write, incoming)
            # still under the write lock: the next append sees these once the commit has happened
            self._last_time = received_at
            self._next_row[model] = first + rows
        return RowRange(first, first + rows)

    def total_rows(self, model: str) -> int:
        """Rows ever accepted for the model (row numbers run from 0 to this)."""
        return self._next_row.get(model, 0)

    def rows_between_times(self, model: str, since: float, until: float) -> RowRange:
        """The rows that arrived in [since, until)."""
        with self._read_lock:
            first, end = self._reader.execute(
                "SELECT MIN(first_row), MAX(first_row + rows) FROM batches "
                "WHERE model = ? AND received_at >= ? AND received_at < ?", (model, since, until)).fetchone()
        return RowRange(0, 0) if first is None else RowRange(first, end)

    def read(self, model: str, rows: RowRange, columns: list[str]) -> pa.Table | None:
        """The stored rows of the range (fewer where retention removed some), or None if none."""
        with self._read_lock:
            found = self._reader.execute(
                "SELECT first_row, data FROM batches WHERE model = ? AND first_row < ? AND first_row + rows > ? "
                "ORDER BY first_row", (model, rows.end, rows.first)).fetchall()
        pieces = []
        for first_row, blob in found:
            table = blobs.decoded(blob).select(columns)
            start = max(0, rows.first - first_row)
            stop = min(table.num_rows, rows.end - first_row)
            pieces.append(table.slice(start, stop - start))
        if not pieces:
            return None
        # Batches whose vectors differ in length (stored before a reference set the length, or under another
        # reference) come back as plain lists, for the evaluation to skip that column saying so.
        same = all(piece.schema == pieces[0].schema for piece in pieces)
        return pa.concat_tables(pieces, promote_options="none" if same else "permissive")

    # -- ground truth ----------------------------------------------------------------

    def add_labels(self, model: str, labels: list[tuple[str, object]], oldest_output: float,
                   batch_id: str | None = None, digest: bytes | None = None) -> LabelResult:
        """Joins (request id, actual) to the stored outputs; durable when this returns. A label is counted by
        what became of it: joined, unknown_request (no output of that id), beyond_horizon (its output arrived
        before oldest_output) or duplicate (the output has its label already). A batch id seen before replays its
        first result, or is refused (422) with another body (digest, as in append)."""
        def join(db: sqlite3.Connection, now: float, result: LabelResult) -> None:
            # One lookup of the whole batch (a temporary table joined in SQLite), then one update of the rows it
            # labels, rather than two statements a label from Python (measured: 14,100 -> 16,000 labels a second
            # at 10^6 stored outputs).
            db.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (position INTEGER PRIMARY KEY, request_id TEXT)")
            db.execute("DELETE FROM incoming")
            db.executemany("INSERT INTO incoming (position, request_id) VALUES (?, ?)",
                           [(position, request) for position, (request, _) in enumerate(labels)])
            found = db.execute("SELECT incoming.position, outcomes.id, outcomes.output_at, outcomes.actual IS NOT NULL "
                               "FROM incoming LEFT JOIN outcomes ON outcomes.model = ? AND outcomes.request_id = "
                               "incoming.request_id ORDER BY incoming.position", (model,)).fetchall()
            updates, labelled = [], set()
            for position, row, output_at, had_label in found:
                if row is None:
                    result.count("unknown_request")
                elif had_label or row in labelled:  # labelled before, or earlier in this batch
                    result.count("duplicate")
                elif output_at < oldest_output:
                    result.count("beyond_horizon")
                else:
                    labelled.add(row)
                    updates.append((labels[position][1], now, row))
                    result.count("joined")
                    result.delays.append(now - output_at)
            db.executemany("UPDATE outcomes SET actual = ?, labelled_at = ? WHERE id = ?", updates)
            self._staged[model] += sum(_value_bytes(actual) for actual, _, _ in updates)  # as _BYTES counts them
            db.execute("DELETE FROM incoming")
        incoming = sum(_value_bytes(actual) for _, actual in labels)
        return self._label_batch(model, batch_id, digest, incoming, len(labels), join)

    def add_joined(self, model: str, rows: list[tuple], batch_id: str | None = None,
                   beyond_horizon: int = 0, digest: bytes | None = None) -> LabelResult:
        """Stores pre-joined outcomes: (output time or None for now, segment, prediction, confidence, actual);
        beyond_horizon: rows of the batch left out as too old, counted in the result (and in a replay's)."""
        def insert(db: sqlite3.Connection, now: float, result: LabelResult) -> None:
            last = db.execute("SELECT COALESCE(MAX(id), 0) FROM outcomes").fetchone()[0]
            db.executemany("INSERT INTO outcomes (model, output_at, segment, prediction, confidence, actual, "
                           "labelled_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(model, now if at is None else at, segment, prediction, confidence, actual, now)
                            for at, segment, prediction, confidence, actual in rows])
            self._count(db, "outcomes", "id > ?", (last,))
            result.counts["prejoined"] = len(rows)
            if beyond_horizon:
                result.counts["beyond_horizon"] = beyond_horizon
            result.delays.extend(now - at for at, *_ in rows if at is not None)
        incoming = sum(_outcome_bytes(model, None, segment, prediction, actual)
                       for _, segment, prediction, _, actual in rows)
        return self._label_batch(model, batch_id, digest, incoming, len(rows) + beyond_horizon, insert)

    def _label_batch(self, model: str, batch_id: str | None, digest: bytes | None, incoming: int, rows: int,
                     write: Callable[[sqlite3.Connection, float, LabelResult], None]) -> LabelResult:
        """write(db, now, result) in one transaction with room for `incoming` bytes (and the batch id's row)."""
        with self._write_lock:
            if batch_id is not None:
                seen = self._writer.execute("SELECT result, digest FROM label_batches WHERE model = ? AND batch_id = ?",
                                            (model, batch_id)).fetchone()
                if seen is not None:
                    _check_same_body(model, batch_id, seen[1], digest, rows)
                    return LabelResult(json.loads(seen[0]), replayed=True)

            def transaction(db: sqlite3.Connection) -> tuple[float, LabelResult]:
                self._make_room(db, model, incoming + _key_bytes(model, batch_id), rows)
                result = LabelResult({})
                now = self._clock()
                write(db, now, result)
                if batch_id is not None:
                    key = db.execute("INSERT INTO label_batches (model, batch_id, received_at, result, digest) "
                                     "VALUES (?, ?, ?, ?, ?)",
                                     (model, batch_id, now, json.dumps(result.counts), digest))
                    self._count(db, "label_batches", "rowid = ?", (key.lastrowid,))
                return now, result

            now, result = self._write(transaction, incoming)
            if result.labelled:
                self._last_label[model] = now
        return result

    def outcomes_between(self, model: str, since: float, until: float) -> list[tuple]:
        """(segment, prediction, confidence, actual or None) of the outputs that arrived in (since, until]: a window
        ending now holds what arrived this second."""
        with self._read_lock:
            return self._reader.execute("SELECT segment, prediction, confidence, actual FROM outcomes WHERE model = ? "
                                        "AND output_at > ? AND output_at <= ?", (model, since, until)).fetchall()

    def labelled_before(self, model: str, until: float, rows: int) -> list[tuple]:
        """(prediction, confidence, actual) of the latest `rows` labelled outputs that arrived by `until`."""
        with self._read_lock:
            return self._reader.execute(
                "SELECT prediction, confidence, actual FROM outcomes WHERE model = ? AND output_at <= ? AND actual IS "
                "NOT NULL ORDER BY output_at DESC LIMIT ?", (model, until, rows)).fetchall()

    def labelled_outputs_before(self, model: str, until: float, rows: int) -> list[tuple]:
        """(row number or None, prediction, actual) of the latest `rows` labelled outputs that arrived by `until`,
        newest first; None for a pre-joined label's or one stored before row numbers were kept."""
        with self._read_lock:
            return self._reader.execute(
                "SELECT output_row, prediction, actual FROM outcomes WHERE model = ? AND output_at <= ? AND actual IS "
                "NOT NULL ORDER BY output_at DESC LIMIT ?", (model, until, rows)).fetchall()

    def output_rows_between(self, model: str, since: float, until: float) -> list[tuple]:
        """(row number or None, prediction) of the outcomes (outputs with a request id, pre-joined labels) that
        arrived in (since, until]."""
        with self._read_lock:
            return self._reader.execute("SELECT output_row, prediction FROM outcomes WHERE model = ? AND output_at > ? "
                                        "AND output_at <= ?", (model, since, until)).fetchall()

    def numbers_at(self, model: str, rows: list[int | None], columns: list[str]) -> dict[str, np.ndarray]:
        """The numerical columns' values at these row numbers, NaN where there is none (a null, None for the row,
        a row retention removed, a column its batch does not hold). Only the batches holding them are read, one
        at a time: what this holds is a batch and the values found."""
        wanted = np.array([-1 if row is None else row for row in rows], dtype=np.int64)
        found = {name: np.full(len(wanted), np.nan) for name in columns}
        order = np.argsort(wanted, kind="stable")
        ordered = wanted[order]
        present = ordered[ordered >= 0]
        if not len(present) or not columns:
            return found
        with self._read_lock:
            batches = self._reader.execute(
                "SELECT id, first_row, rows FROM batches WHERE model = ? AND first_row <= ? AND first_row + rows > ? "
                "ORDER BY first_row", (model, int(present[-1]), int(present[0]))).fetchall()
        for batch, first_row, count in batches:
            start, stop = np.searchsorted(ordered, [first_row, first_row + count])
            if start == stop:
                continue
            with self._read_lock:
                stored = self._reader.execute("SELECT data FROM batches WHERE id = ?", (batch,)).fetchone()
            if stored is None:  # removed by retention since
                continue
            table = blobs.decoded(stored[0])
            positions = pa.array(ordered[start:stop] - first_row)
            for name in columns:
                if name in table.column_names:
                    values = table.column(name).take(positions).cast(pa.float64())
                    found[name][order[start:stop]] = values.to_numpy(zero_copy_only=False)
        return found

    def last_label_time(self, model: str) -> float | None:
        """When a label for the model was last stored (since the store was opened, or as read at opening)."""
        if model not in self._last_label:
            with self._read_lock:
                found = self._reader.execute("SELECT MAX(labelled_at) FROM outcomes WHERE model = ?",
                                             (model,)).fetchone()[0]
            self._last_label[model] = found
        return self._last_label[model]

    # -- profiles --------------------------------------------------------------------

    def add_profile(self, model: str, segment: str, start: float, seconds: float, replica: str,
                    profile: Profile, *, limits: Limits = _DEFAULT_LIMITS) -> bool:
        """Merges a replica's profile of an interval into the stored one; durable when this returns. False,
        storing nothing, when this replica's profile of that segment and interval was stored before.

        limits: an interval holds at most limits.max_segment_values segment labels of the model, and profiles of
        at most limits.max_replicas replicas; past them BadBatch (400). StorageRefused (507) where there is no room."""
        key = (model, segment, start, seconds)

        def write(db: sqlite3.Connection) -> tuple[Profile, int, int | None] | None:
            seen = db.execute("SELECT 1 FROM profile_receipts WHERE model = ? AND replica = ? AND segment = ? "
                              "AND start = ?", (model, replica, segment, start)).fetchone()
            if seen is not None:
                return None
            row = db.execute(f"SELECT rowid, {_BYTES['profile_intervals']} FROM profile_intervals WHERE {_INTERVAL}",
                             key).fetchone()
            if row is None:
                _check_segments(db, key, limits.max_segment_values)
            replicas = self._check_replicas(db, model, replica, start, limits.max_replicas)
            try:
                stored = None if row is None else self._open_intervals.get(key) or _stored_interval(db, key)
                merged, count = (profile, 1) if stored is None else (
                    stored[0].merge(profile, sample_cap=samples.INTERVAL_ROWS,
                                    exact_categories=limits.max_exact_categories), stored[1] + 1)
            except ProfileError as error:
                # Stored by an older fleetscope that checked profiles less: no evaluation can use it, and it gives
                # way to this profile rather than refuse every replica's that follows.
                _log.warning("a stored profile interval cannot be merged with; this profile replaces it",
                             extra={"model": model, "segment": segment, "start": start, "error": str(error)})
                merged, count = profile, 1
            blob = merged.to_bytes()
            replaced = 0 if row is None else int(row[1])
            receipt = _ROW + 3 * (len(model) + _value_bytes(replica)) + 2 * _value_bytes(segment)
            self._make_room(db, model, _ROW + 3 * len(model) + 2 * _value_bytes(segment) + len(blob) - replaced +
                            receipt, keep_interval=None if row is None else row[0])
            self._staged[model] -= replaced
            _put_interval(db, key, merged, count, blob)
            self._count(db, "profile_intervals", _INTERVAL, key)
            sent = db.execute("INSERT INTO profile_receipts (model, replica, segment, start, received_at) "
                              "VALUES (?, ?, ?, ?, ?)", (model, replica, segment, start, self._clock()))
            self._count(db, "profile_receipts", "rowid = ?", (sent.lastrowid,))
            return merged, count, replicas

        with self._write_lock:
            done = self._write(write)
            if done is None:
                return False
            merged, count, replicas = done
            # Committed: the next profile of the interval merges into this one without reading it back. Kept the
            # newest, so that the intervals replicas still send to are the last to go.
            self._open_intervals.pop(key, None)
            self._open_intervals[key] = (merged, count)
            while len(self._open_intervals) > OPEN_INTERVALS:
                self._open_intervals.pop(next(iter(self._open_intervals)))
            if replicas is not None:  # a replica new to the interval
                self._replicas.pop((model, start), None)
                self._replicas[model, start] = replicas + 1
                while len(self._replicas) > OPEN_INTERVALS:
                    self._replicas.pop(next(iter(self._replicas)))
        return True

    def _check_replicas(self, db: sqlite3.Connection, model: str, replica: str, start: float, limit: int) -> int | None:
        """None where the replica sent a profile of the interval before; else how many replicas did, or BadBatch
        where that many are limits.max_replicas. Counted once an interval, then kept up to date."""
        if db.execute("SELECT 1 FROM profile_receipts WHERE model = ? AND replica = ? AND start = ? LIMIT 1",
                      (model, replica, start)).fetchone() is not None:
            return None
        replicas = self._replicas.get((model, start))
        if replicas is None:
            replicas = db.execute("SELECT COUNT(DISTINCT replica) FROM profile_receipts WHERE model = ? AND start = ?",
                                  (model, start)).fetchone()[0]
        if replicas >= limit:
            raise BadBatch(400, "too_many_replicas", f"{replicas} replicas have sent profiles of model {model!r} for "
                                                     f"the interval starting at {start:.0f}, the most "
                                                     f"limits.max_replicas ({limit}) allows: give each model server "
                                                     "one replica name for its lifetime, or raise the limit")
        return int(replicas)

    def profiles_between(self, model: str, since: float, until: float,
                         exact_categories: int | None = None) -> IntervalProfiles:
        """Per segment, the merged profile of the intervals whose middle lies in [since, until), and how many
        intervals went into it. By the middle, so that an hour rolled up counts in a window that holds most of
        it and not in one that holds little of it. An interval that cannot be read or merged is left out and
        counted. A categorical column merged past exact_categories (the profiles' default where None) becomes a
        frequent-items sketch."""
        with self._read_lock:
            found = self._reader.execute(
                "SELECT segment, data FROM profile_intervals WHERE model = ? AND start + seconds / 2 >= ? "
                "AND start + seconds / 2 < ? ORDER BY segment, start", (model, since, until)).fetchall()
        window = IntervalProfiles({}, exact_categories=exact_categories)
        for segment, blob in found:
            window.add(segment, blob)
        return window

    def put_profile_reference(self, model: str, profile: Profile) -> None:
        """Sets a profile as the model's reference (of a model the config declares)."""
        self._set_reference("profile_references", model, profile.rows, profile.to_bytes(), None)

    def profile_reference(self, model: str) -> tuple[float, Profile] | None:
        with self._read_lock:
            found = self._reader.execute("SELECT updated_at, data FROM profile_references WHERE model = ?",
                                         (model,)).fetchone()
        return None if found is None else (found[0], Profile.from_bytes(found[1]))

    def roll_up(self, older_than: float, period: float = 3600.0, exact_categories: int | None = None) -> int:
        """Merges the intervals that started before `older_than` into one per segment and period (aligned to
        the Unix epoch), categories counted exactly up to exact_categories as in profiles_between(); returns the
        intervals merged away."""
        with self._transaction() as db:
            self._open_intervals.clear()
            found = db.execute(f"SELECT model, segment, start, seconds, profiles, data, {_BYTES['profile_intervals']} "
                               "FROM profile_intervals WHERE start < ? AND seconds < ?",
                               (older_than, period)).fetchall()
            groups: dict[tuple[str, str, float], list[tuple]] = {}
            for row in found:
                groups.setdefault((row[0], row[1], row[2] // period * period), []).append(row)
            for (model, segment, start), rows in groups.items():
                hour = (model, segment, start, period)
                existing = db.execute(f"SELECT profiles, data FROM profile_intervals WHERE {_INTERVAL}",
                                      hour).fetchone()
                merged, count = IntervalProfiles({}, exact_categories=exact_categories), 0
                for profiles, blob in [(row[4], row[5]) for row in rows] + ([existing] if existing else []):
                    left_out = merged.unusable
                    merged.add(segment, blob)  # one an older fleetscope stored that nothing can use is dropped here
                    count += profiles if merged.unusable == left_out else 0
                db.executemany("DELETE FROM profile_intervals WHERE model = ? AND segment = ? AND start = ? AND "
                               "seconds = ?", [(model, segment, row[2], row[3]) for row in rows])
                self._staged[model] -= sum(int(row[6]) for row in rows)
                self._count(db, "profile_intervals", _INTERVAL, hour, -1)
                if segment in merged.segments:
                    _put_interval(db, hour, merged.segments[segment][0], count)
                    self._count(db, "profile_intervals", _INTERVAL, hour)
                else:
                    db.execute(f"DELETE FROM profile_intervals WHERE {_INTERVAL}", hour)
            # A replica retries within minutes: its receipts are kept while its interval is kept apart.
            self._delete(db, "profile_receipts", "start < ?", (older_than,))
            self._replicas.clear()
        return len(found)

    # -- retention -------------------------------------------------------------------

    def compact(self, retention: float) -> int:
        """Deletes batches older than the retention and gives the space back; returns batches deleted."""
        cutoff = self._clock() - retention
        with self._transaction() as db:
            deleted = self._delete(db, "batches", "received_at < ?", (cutoff,))
            deleted += self._delete(db, "profile_intervals", "start + seconds < ?", (cutoff,))
            deleted += self._delete(db, "outcomes", "output_at < ?", (cutoff,))
            self._delete(db, "label_batches", "received_at < ?", (cutoff,))
            self._open_intervals.clear()
            # a retry comes within seconds; ids are kept as long as their batches
            self._delete(db, "batch_ids", "received_at < ?", (cutoff,))
        if deleted:
            with self._write_lock:
                self._vacuum()
        return deleted

    def _vacuum(self) -> None:
        """Gives free pages back to the file system, WAL_BYTES at a time with a checkpoint after each, so that the
        write-ahead log never holds more than that of moved pages (the caller holds the write lock)."""
        self._checkpoint()
        step = max(1, WAL_BYTES // self._page_size)
        free = self._writer.execute("PRAGMA freelist_count").fetchone()[0]
        while free:
            # executescript runs the pragma to its end: execute() would free one page (it yields an empty row a page)
            self._writer.executescript(f"PRAGMA incremental_vacuum({step});")
            self._checkpoint()
            left = self._writer.execute("PRAGMA freelist_count").fetchone()[0]
            if left >= free:  # a store made before auto_vacuum was set: its free pages stay, to be reused
                return
            free = left

    def readable(self) -> bool:
        try:
            with self._read_lock:
                self._reader.execute("SELECT 1 FROM models LIMIT 1").fetchall()
            return True
        except sqlite3.Error:
            return False

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in (self.path, Path(f"{self.path}-wal"))
                   if path.exists())


def _stored_interval(db: sqlite3.Connection, key: tuple) -> tuple[Profile, int] | None:
    """The merged profile of (model, segment, start, seconds) and how many profiles went into it."""
    found = db.execute("SELECT profiles, data FROM profile_intervals WHERE model = ? AND segment = ? AND start = ? "
                       "AND seconds = ?", key).fetchone()
    return None if found is None else (Profile.from_bytes(found[1]), found[0])


def _put_interval(db: sqlite3.Connection, key: tuple, profile: Profile, profiles: int,
                  blob: bytes | None = None) -> None:
    """blob: the profile's bytes, where the caller has them already."""
    db.execute("INSERT INTO profile_intervals (model, segment, start, seconds, rows, profiles, data) "
               "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, segment, start, seconds) DO UPDATE SET "
               "rows = excluded.rows, profiles = excluded.profiles, data = excluded.data",
               (*key, profile.rows, profiles, profile.to_bytes() if blob is None else blob))


_INTERVAL = "model = ? AND segment = ? AND start = ? AND seconds = ?"


def _check_segments(db: sqlite3.Connection, key: tuple, limit: int) -> None:
    """BadBatch where the interval (model, start, seconds) of `key` holds limits.max_segment_values segments."""
    model, _, start, seconds = key
    segments = db.execute("SELECT COUNT(*) FROM profile_intervals WHERE model = ? AND start = ? AND seconds = ?",
                          (model, start, seconds)).fetchone()[0]
    if segments >= limit:
        raise BadBatch(400, "too_many_segment_values", f"model {model!r} holds profiles of {segments} segments for "
                                                       f"the interval starting at {start:.0f}, the most "
                                                       f"limits.max_segment_values ({limit}) allows: segment by "
                                                       "columns of few values (a region, a model version), or raise "
                                                       "the limit")


# Blobs are Arrow IPC streams with zstd-compressed buffers. A column of few values (at most one distinct value in two
# rows: text, or numbers) is dictionary-encoded first, with the narrowest indices: zstd alone keeps about 1/100 of a
# column of one long label, little of a few thousand long labels repeating past its window, and a byte a row of a
# number of ten values, all of which a Parquet or Arrow body carries once or in a few bits. Whether a column of
# numbers has few values is judged from its first rows, so that distinct numbers (most are) cost no hashing of the
# rest; text is always hashed, since its repeats may lie further apart than any sample (2,100 labels in turn).
# Blobs written before (uncompressed, plain text) read the same.
