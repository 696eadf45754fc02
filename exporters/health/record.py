"""The last `fleetscope check` on this node, written where the exporter reads it (--record, and the health
collector's --collector.health.check-record), so its time and verdict are served as metrics."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetscope.exporters.health.model import HEALTHY, LEVELS, Result, failing, verdict

MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LastCheck:
    time: float
    level: int  # 0 healthy, 1 degraded, 2 unfit (model.LEVELS)


def write(path: Path, checked_at: float, results: Sequence[Result]) -> None:
    """Atomically: the exporter never reads half a file."""
    outcome = verdict(results)
    document = {"time": checked_at, "verdict": outcome,
                "failed": [f"{result.subject} {result.check}" for result in failing(results)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read(path: Path) -> LastCheck | None:
    """None where there is no record, or it cannot be read or understood."""
    try:
        with open(path, "rb") as file:
            document = json.loads(file.read(MAX_BYTES))
        outcome = document["verdict"]
        level = LEVELS["ok" if outcome == HEALTHY else outcome]
        return LastCheck(float(document["time"]), level)
    except (OSError, ValueError, KeyError, TypeError):
        return None
