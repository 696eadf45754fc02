"""What the remediation tests share: Alertmanager webhook bodies, and a scheduler held in memory."""

from __future__ import annotations

import json
from typing import Any

from fleetscope.remediation.nodes import REASON_PREFIX, BackendError, Group, NodeView


def alert(alertname: str, node: str, status: str = "firing", fingerprint: str = "", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": alertname, "hostname": node, **labels},
            "annotations": {"summary": "s"}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint or f"{alertname}-{node}"}


def webhook(*alerts: dict[str, Any]) -> bytes:
    """A notification as Alertmanager 0.25+ posts it (version 4)."""
    firing = any(a["status"] == "firing" for a in alerts)
    return json.dumps({"version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0,
                       "status": "firing" if firing else "resolved", "receiver": "remediation",
                       "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}).encode()


class MemoryBackend:
    """A scheduler of named partitions; drains set a reason, as Slurm's do."""

    name = "slurm"

    def __init__(self, partitions: dict[str, list[str]]) -> None:
        self.partitions = partitions
        self.reasons: dict[str, str] = {}  # drained nodes and why
        self.calls: list[tuple[str, str]] = []
        self.failing = False

    def valid_name(self, node: str) -> bool:
        return node.isidentifier() or node.replace("-", "").isalnum()

    def inspect(self, node: str) -> NodeView:
        if self.failing:
            raise BackendError("sinfo failed (1): slurm_load_partitions: Unable to contact slurm controller")
        groups = tuple(Group(f"partition {name}", frozenset(nodes), frozenset(n for n in nodes if n in self.reasons))
                       for name, nodes in self.partitions.items() if node in nodes)
        if not groups:
            return NodeView(node, exists=False)
        reason = self.reasons.get(node)
        return NodeView(node, True, reason is not None, bool(reason and reason.startswith(REASON_PREFIX)), groups)

    def drain(self, node: str, reason: str) -> None:
        self.calls.append(("drain", node))
        self.reasons[node] = reason

    def resume(self, node: str) -> None:
        self.calls.append(("resume", node))
        del self.reasons[node]
