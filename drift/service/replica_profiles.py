"""Ingest of the profiles replicas send (fleetscope.drift.profiles), one interval at a time, and of a profile
set as a model's reference. Their evaluation is fleetscope.drift.service.profiled's."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fleetscope import log
from fleetscope.drift.columns import ColumnKind, value_rules
from fleetscope.drift.profiles import Profile, ProfileError, as_declared
from fleetscope.drift.service import profiled
from fleetscope.drift.service.config import Limits, ModelConfig
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.model_state import ModelState
from fleetscope.drift.service.writes import IDENTIFIER, MAX_CLOCK_AHEAD_SECONDS
from fleetscope.drift.text_descriptors import descriptor_name

if TYPE_CHECKING:
    from fleetscope.drift.service.service import DriftService

_log = log.get("fleetscope.drift")
PROFILE_CONTENT_TYPE = "application/vnd.fleetscope.profile"
# A profile's interval: from a second to an hour, and starting no later than MAX_CLOCK_AHEAD_SECONDS ahead of
# the service's clock.
MAX_INTERVAL_SECONDS = 3600.0


def ingest(service: DriftService, name: str, body: bytes, replica: str, start: float, seconds: float,
           segment: str = "", slot_taken: bool = False) -> tuple[int, bool]:
    """Validates a replica's profile of one interval and merges it into the stored one; returns its rows
    and whether it was stored before (a retry or a duplicate, which stores nothing)."""
    with service.writes.to(name, slot_taken) as model:
        config = model.config
        if not config.profiled:
            raise BadBatch(409, "not_profiled", f"model {name!r} takes rows (mode: rows): POST them to "
                                                f"/v1/models/{name}/outputs, or set mode: profiles")
        if not IDENTIFIER.match(replica):
            raise BadBatch(400, "bad_replica", "replica must be 1-128 letters, digits, '-', '_', '.' or ':'")
        if not (math.isfinite(start) and 1 <= seconds <= MAX_INTERVAL_SECONDS):
            raise BadBatch(400, "bad_interval", f"an interval has a finite start and lasts 1 to "
                                                f"{MAX_INTERVAL_SECONDS:.0f} seconds")
        if start > service.clock() + MAX_CLOCK_AHEAD_SECONDS:
            raise BadBatch(400, "bad_interval", "the interval starts in the future: check the replica's clock")
        try:
            segment = profiled.parse_segment(config, segment, service.limits.max_category_length)
        except ValueError as error:
            raise BadBatch(400, "bad_segment", str(error)) from None
        checked = checked_profile(config, body, service.limits)
        stored = service.store.add_profile(name, segment, start, seconds, replica, checked, limits=service.limits)
    if stored:
        service.rows_accepted[name] += checked.rows
        service.profiles_accepted[name] += 1
    return checked.rows, not stored


def put_reference(service: DriftService, name: str, model: ModelState | None, body: bytes) -> int:
    """A profile as the reference of a model fed profiles; the caller holds the write slot."""
    if model is None or not model.config.profiled:
        raise BadBatch(409, "not_profiled", f"a profile can be the reference of a model fed profiles only; "
                                            f"{'declare' if model is None else 'set mode: profiles for'} "
                                            f"{name!r} in the config")
    checked = checked_profile(model.config, body, service.limits)
    service.store.put_profile_reference(name, checked)
    _log.info("reference profile set", extra={"model": name, "rows": checked.rows})
    return checked.rows


def checked_profile(config: ModelConfig, body: bytes, limits: Limits) -> Profile:
    """A profile read and declared as the model's columns are, its segment columns (constant within a segment)
    left out; BadBatch naming what is wrong with it."""
    try:
        received = Profile.from_bytes(body)
        received.columns = {name: column for name, column in received.columns.items() if name not in config.segments}
        declared = as_declared(received, profiled.compared_kinds(config), limits.max_category_length,
                               limits.max_profile_rows, value_rules(config.columns).dimensions,
                               limits.max_embedding_dimensions, limits.max_exact_categories)
        _check_text_lengths(config, declared, limits.max_text_length)
        return declared
    except ProfileError as error:
        raise BadBatch(400, "bad_profile", str(error)) from None


def _check_text_lengths(config: ModelConfig, checked: Profile, max_length: int) -> None:
    """A text column's longest text, its text_length descriptor's exact maximum, within limits.max_text_length, as
    rows ingest requires of each text; and no text shorter than nothing."""
    for name, kind in config.columns.items():
        if kind is not ColumnKind.TEXT or name in config.segments:
            continue
        lengths = checked.columns[descriptor_name(name, "text_length")]
        if lengths.rows and lengths.maximum > max_length:
            raise ProfileError(f"column {name!r}: a text of {lengths.maximum:.0f} characters; the limit is "
                               f"{max_length} (limits.max_text_length)")
        if lengths.rows and lengths.minimum < 0:
            raise ProfileError(f"column {name!r}: its text_length descriptor holds a negative length")
