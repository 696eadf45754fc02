"""What a check says: a Result per check and subject, and the verdict of many."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Ordered by how bad: a node's verdict is its worst result. Unknown (the check could not read what it needs)
# never makes a node unfit by itself.
OK, UNKNOWN, DEGRADED, UNFIT = "ok", "unknown", "degraded", "unfit"
STATUSES = (OK, UNKNOWN, DEGRADED, UNFIT)
# The value each status is served as (fleetscope_gpu_health, fleetscope_node_health); unknown is absent.
LEVELS = {OK: 0, DEGRADED: 1, UNFIT: 2}
HEALTHY = "healthy"  # the verdict of a node whose every result is ok or unknown


@dataclass(frozen=True)
class Result:
    check: str  # one of checks.GPU_CHECKS or checks.NODE_CHECKS: a bounded label value
    status: str
    gpu: int | None = None  # None for a check of the node as a whole
    observed: str = ""  # what was read, in a few words
    reason: str = ""  # why it is not ok
    recommendation: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.check}: status {self.status!r} is not one of {STATUSES}")

    @property
    def subject(self) -> str:
        return "node" if self.gpu is None else f"gpu {self.gpu}"

    def as_dict(self) -> dict[str, object]:
        return {"check": self.check, "gpu": self.gpu, "status": self.status, "observed": self.observed,
                "reason": self.reason, "recommendation": self.recommendation}


def verdict(results: Iterable[Result]) -> str:
    """healthy, degraded or unfit: the worst of the results."""
    worst = max((STATUSES.index(result.status) for result in results), default=0)
    status = STATUSES[worst]
    return HEALTHY if status in (OK, UNKNOWN) else status


def failing(results: Iterable[Result]) -> list[Result]:
    """The results that are degraded or unfit, the unfit first."""
    bad = [result for result in results if result.status in (DEGRADED, UNFIT)]
    return sorted(bad, key=lambda result: (result.status != UNFIT, result.gpu is not None, result.gpu or 0))
