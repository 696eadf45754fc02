"""The last `fleetscope check` on this node, written where the exporter reads it (--record, and the health
collector's --collector.health.check-record), so its time and verdict are served as metrics.

The file also keeps the last run with --active: its time, verdict and each active check's result. A passive run
carries the active section over from the file it replaces, so the rare active run is not forgotten by the frequent
passive ones."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetscope.exporters.health.active import ACTIVE_GPU_CHECKS, ACTIVE_NODE_CHECKS
from fleetscope.exporters.health.model import HEALTHY, LEVELS, Result, failing, verdict

MAX_BYTES = 1024 * 1024
MAX_GPU_INDEX = 1023  # a record is a file on the node: its GPU indices are bounded like the simulation's


@dataclass(frozen=True)
class ActiveCheck:
    time: float
    level: int  # 0 healthy, 1 degraded, 2 unfit (model.LEVELS)
    results: tuple[tuple[str, int | None, int], ...] = ()  # (check, gpu or None for the node, level)


@dataclass(frozen=True)
class LastCheck:
    time: float
    level: int  # 0 healthy, 1 degraded, 2 unfit (model.LEVELS)
    active: ActiveCheck | None = None


def _is_active(result: Result) -> bool:
    return result.check in (ACTIVE_NODE_CHECKS if result.gpu is None else ACTIVE_GPU_CHECKS)


def write(path: Path, checked_at: float, results: Sequence[Result], active: bool = False) -> None:
    """Atomically: the exporter never reads half a file. active: this run included the active checks."""
    outcome = verdict(results)
    document: dict[str, Any] = {"time": checked_at, "verdict": outcome,
                                "failed": [f"{result.subject} {result.check}" for result in failing(results)]}
    if active:
        ran = [result for result in results if _is_active(result)]
        document["active"] = {"time": checked_at, "verdict": verdict(ran),
                              "failed": [f"{result.subject} {result.check}" for result in failing(ran)],
                              "results": [{"check": r.check, "gpu": r.gpu, "status": r.status} for r in ran]}
    else:
        previous = _load(path)
        if isinstance(previous, dict) and isinstance(previous.get("active"), dict):
            document["active"] = previous["active"]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load(path: Path) -> Any:
    try:
        with open(path, "rb") as file:
            return json.loads(file.read(MAX_BYTES))
    except (OSError, ValueError):
        return None


def _level(outcome: Any) -> int:
    return LEVELS["ok" if outcome == HEALTHY else outcome]


def read(path: Path) -> LastCheck | None:
    """None where there is no record, or it cannot be read or understood; an active section that cannot be
    understood is left out, and so is any active result of a check or GPU no active check has."""
    document = _load(path)
    try:
        last = LastCheck(float(document["time"]), _level(document["verdict"]))
    except (KeyError, TypeError, ValueError):
        return None
    section = document.get("active")
    try:
        active = ActiveCheck(float(section["time"]), _level(section["verdict"]),
                             tuple(_active_results(section.get("results"))))
    except (KeyError, TypeError, ValueError, AttributeError):
        return last
    return LastCheck(last.time, last.level, active)


def _active_results(items: Any) -> list[tuple[str, int | None, int]]:
    results: dict[tuple[str, int | None], int] = {}  # one per check and GPU, whatever the file repeats
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("status") not in LEVELS:
            continue
        check, gpu = item.get("check"), item.get("gpu")
        if gpu is None and check in ACTIVE_NODE_CHECKS:
            results[(check, None)] = LEVELS[item["status"]]
        elif (check in ACTIVE_GPU_CHECKS and isinstance(gpu, int) and not isinstance(gpu, bool)
              and 0 <= gpu <= MAX_GPU_INDEX):
            results[(check, gpu)] = LEVELS[item["status"]]
    return [(check, gpu, level) for (check, gpu), level in results.items()]
