"""Ingest of a model's outputs: a batch decoded once, its request ids (for model quality) split off while the
rest is conformed to the model's columns, and both stored in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetscope.drift.service import outcomes
from fleetscope.drift.service.decode import read_table
from fleetscope.drift.service.store import RowRange, Store

if TYPE_CHECKING:
    from fleetscope.drift.service.service import DriftService


def ingest(service: DriftService, name: str, body: bytes, content_type: str, batch_id: str | None = None,
           slot_taken: bool = False) -> RowRange:
    """Validates and stores one batch of outputs; all of it or nothing. A batch id seen before
    for the model stores nothing and answers the rows it was first stored as.

    slot_taken: the caller holds a write slot (the HTTP API takes one before reading the body)."""
    with service.writes.to(name, slot_taken) as model:
        config, limits = model.config, service.batch_limits
        table, ids = outcomes.conform_outputs(config, read_table(body, content_type, limits), limits,
                                              model.output_columns)
        rows = outcomes.output_rows(config, table, ids) if config.quality is not None else None
        stored = service.store.append(name, table, batch_id, rows, digest=Store.digest(body, content_type))
    if not stored.replayed:
        service.rows_accepted[name] += stored.rows
    return stored
