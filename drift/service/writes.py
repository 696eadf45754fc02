"""What every write shares: the write slots (limits.max_concurrent_writes), refusals counted by reason, and the
check a write to a model makes first (its shard, its schema)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING

from fleetscope.drift.service.decode import BadBatch, BodyLimits
from fleetscope.drift.service.model_state import ModelState
from fleetscope.drift.sharding import shard_of
from fleetscope.log import quoted
from fleetscope.web import memory

if TYPE_CHECKING:
    from fleetscope.drift.service.config import Limits
    from fleetscope.drift.service.service import DriftService

# A replica's name, and a batch's Idempotency-Key.
IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# How far ahead of the service's clock a replica's clock may be (replicas' clocks drift; one far ahead would
# file outputs in the future).
MAX_CLOCK_AHEAD_SECONDS = 300.0


class Overloaded(Exception):
    """Too much work at once; the client should retry after `retry_after` seconds."""

    counted = False
    reason = "overloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def body_limits(limits: Limits, max_rows: int) -> BodyLimits:
    return BodyLimits(max_rows, limits.max_columns, limits.max_decoded_bytes, limits.max_category_length,
                      limits.max_text_length)


class Writes:
    def __init__(self, service: DriftService) -> None:
        self._service = service
        self._slots = threading.BoundedSemaphore(service.limits.max_concurrent_writes)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of limits.max_concurrent_writes; Overloaded at once when none is free. A write holds
        it from reading its body to storing it, so bodies, decoding and storing together never
        take more memory than the limits allow (docs/operations/security-and-limits.md)."""
        if not self._slots.acquire(blocking=False):
            raise Overloaded(f"{self._service.limits.max_concurrent_writes} writes are in progress "
                             "(limits.max_concurrent_writes); retry shortly", retry_after=1)
        try:
            yield
        finally:
            self._slots.release()
            memory.give_back()  # what a large body took, back to the system once writes pause

    @contextmanager
    def counting_refusals(self, name: str | None) -> Iterator[None]:
        """Counts a write refused for its input or for load, by reason, and lets the refusal through."""
        try:
            yield
        except (BadBatch, Overloaded) as error:
            if not error.counted:  # nested scopes count a refusal once
                error.counted = True
                self.reject(name, error.reason, getattr(error, "rows", None), getattr(error, "column", None))
            raise

    def reject(self, model: str | None, reason: str, rows: int | None, column: str | None = None) -> None:
        """Counts a refused request; names of models the service does not hold (user input,
        unbounded) are all counted as "_unknown". Rows refused for a value of one of the model's
        columns are counted by that column too."""
        service = self._service
        label = model if model in service.held else "_unknown"
        service.batches_rejected[label, reason] += 1
        if rows:
            service.rows_rejected[label, reason] += rows
            if column is not None and label != "_unknown" and column in service.held[label].config.columns:
                service.rows_refused_by_column[label, column] += rows

    def check_shard(self, name: str) -> None:
        """BadBatch 421 naming the right shard when the model belongs to another instance."""
        config = self._service.config
        if not config.owns(name):
            shard = shard_of(name, config.shard_count)
            raise BadBatch(421, "wrong_shard", f"model {quoted(name)} belongs to drift service shard {shard} of "
                                               f"{config.shard_count}; this is shard {config.shard_index}",
                           headers={"Fleetscope-Shard": str(shard)})

    @contextmanager
    def refusals_and_slot(self, name: str, slot_taken: bool) -> Iterator[None]:
        """Refusals counted, a write slot held (unless the caller holds one), and the shard checked."""
        with self.counting_refusals(name), (nullcontext() if slot_taken else self.slot()):
            self.check_shard(name)
            yield

    @contextmanager
    def to(self, name: str, slot_taken: bool) -> Iterator[ModelState]:
        """A write to a model this instance holds: refusals_and_slot(), and BadBatch for a model without a
        schema."""
        with self.refusals_and_slot(name, slot_taken):
            model = self._service.held.get(name)
            if model is None:
                raise BadBatch(404, "unknown_model", f"model {quoted(name)} has no schema: declare it in the config or "
                                                     "PUT its reference first")
            yield model
