"""What the remediator asks of a scheduler, Slurm or Kubernetes: a node's state, and to drain or resume it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Drains the remediator makes say so in their reason (Slurm) or carry its taint (Kubernetes); only those are ever
# resumed, never a node a person drained.
REASON_PREFIX = "fleetscope:"


class BackendError(RuntimeError):
    """scontrol, sinfo or the Kubernetes API failed; the message says which call and why (never a secret)."""


@dataclass(frozen=True)
class Group:
    """The nodes a node's share limit is counted in: a Slurm partition, or the cluster's selected nodes."""

    name: str
    nodes: frozenset[str]
    drained: frozenset[str]


@dataclass(frozen=True)
class NodeView:
    name: str
    exists: bool
    drained: bool = False
    ours: bool = False  # drained by the remediator
    groups: tuple[Group, ...] = ()


class Backend(Protocol):
    name: str

    def valid_name(self, node: str) -> bool: ...

    def inspect(self, node: str) -> NodeView: ...

    def drain(self, node: str, reason: str) -> None: ...

    def resume(self, node: str) -> None: ...
