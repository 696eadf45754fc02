"""Ingest of ground truth: a label batch joined to the model's stored outputs by request id, or stored
pre-joined (fleetscope.drift.service.outcomes reads it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetscope.drift.service import outcomes
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.store import LabelResult, Store
from fleetscope.drift.service.writes import MAX_CLOCK_AHEAD_SECONDS

if TYPE_CHECKING:
    from fleetscope.drift.service.service import DriftService


def ingest(service: DriftService, name: str, body: bytes, content_type: str, batch_id: str | None = None,
           slot_taken: bool = False) -> LabelResult:
    """Joins a batch of ground truth to the model's outputs, or stores it pre-joined; all of it or nothing.
    Labels that join nothing are counted by reason in the result, not refused."""
    with service.writes.to(name, slot_taken) as model:
        config = model.config
        kind, rows = outcomes.read_labels(config, body, content_type, service.batch_limits)
        assert config.quality is not None  # read_labels refuses a model without one
        oldest = service.clock() - config.quality.horizon
        if kind == "joined":
            result = service.store.add_labels(name, rows, oldest, batch_id, digest=Store.digest(body, content_type))
        else:
            latest = service.clock() + MAX_CLOCK_AHEAD_SECONDS
            late = next((index for index, row in enumerate(rows) if row[0] is not None and row[0] > latest), None)
            if late is not None:
                raise BadBatch(400, "bad_time", f"row {late}, column {outcomes.TIME!r}: the output is dated in "
                                                "the future; check the sender's clock", len(rows))
            kept = [row for row in rows if row[0] is None or row[0] >= oldest]
            result = service.store.add_joined(name, kept, batch_id, beyond_horizon=len(rows) - len(kept),
                                              digest=Store.digest(body, content_type))
    if not result.replayed:
        for outcome, count in result.counts.items():
            service.labels[name, outcome] += count
        service.label_delays.setdefault(name, outcomes.DelayHistogram()).observe(result.delays)
    return result
