"""Which stored rows a window covers, as a range of row numbers.

sliding:  the rows that arrived in the last `duration`, and/or the last `rows` rows;
          with both, the later of the two starts (the smaller window).
tumbling: the latest complete period: by time, aligned to the Unix epoch (a 5m window
          ending at 12:05:00 covers 12:00:00 to 12:05:00); by rows, the latest complete
          block of `rows` rows.
A rolling reference is the window [now - offset - duration, now - offset).
Every window is capped to the newest limits.max_window_rows rows.
"""

from __future__ import annotations

import math

from fleetscope.drift.service.config import RollingReference, Window
from fleetscope.drift.service.store import RowRange, Store


def current_rows(store: Store, model: str, window: Window, now: float, max_rows: int) -> RowRange:
    total = store.total_rows(model)
    if window.duration is not None:
        found = store.rows_between_times(model, *current_times(window, now))
    elif window.type == "tumbling":
        rows = window.rows
        assert rows is not None  # a window has a duration or a row count (checked in config)
        end_row = total // rows * rows
        found = RowRange(max(0, end_row - rows), end_row)
    else:
        found = RowRange(0, total)
    if window.type == "sliding" and window.rows is not None:
        found = RowRange(max(found.first, found.end - window.rows), found.end)
    return cap(found, max_rows)


def rolling_reference_rows(store: Store, model: str, rolling: RollingReference, now: float,
                           max_rows: int) -> RowRange:
    return cap(store.rows_between_times(model, *rolling_times(rolling, now)), max_rows)


def rolling_times(rolling: RollingReference, now: float) -> tuple[float, float]:
    """A rolling reference window as times [since, until)."""
    end = now - rolling.offset
    return end - rolling.duration, end


def cap(rows: RowRange, max_rows: int) -> RowRange:
    return RowRange(max(rows.first, rows.end - max_rows), rows.end)


def current_times(window: Window, now: float) -> tuple[float, float]:
    """The current window as times [since, until), for a window by duration (those of models fed profiles are)."""
    assert window.duration is not None  # checked in config for models fed profiles
    if window.type == "tumbling":
        end = math.floor(now / window.duration) * window.duration
        return end - window.duration, end
    return now - window.duration, math.inf
