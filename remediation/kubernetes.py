"""Kubernetes: a node drained by cordoning it (spec.unschedulable) and tainting it, resumed by undoing both.

Each change is a JSON merge patch of the node carrying the resourceVersion it was computed from, so a node
changed in between (another controller, a person with kubectl) is answered 409 and never overwritten: the
taints list is replaced whole, as merge patches replace lists."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from fleetscope.remediation.config import KubernetesSettings
from fleetscope.remediation.kube_api import KubeApi
from fleetscope.remediation.nodes import BackendError, Group, NodeView

MERGE_PATCH = "application/merge-patch+json"
REASON_ANNOTATION = "fleetscope.io/remediation-reason"
# A node's name is a DNS subdomain.
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings, api: KubeApi) -> None:
        self._settings, self._api = settings, api
        self._taint = {"key": settings.taint.key, "value": settings.taint.value, "effect": settings.taint.effect}

    def valid_name(self, node: str) -> bool:
        return bool(_NODE_NAME.match(node))

    def inspect(self, node: str) -> NodeView:
        query = f"?labelSelector={urllib.parse.quote(self._settings.node_selector)}" \
            if self._settings.node_selector else ""
        items = self._api.request("GET", f"/api/v1/nodes{query}").get("items")
        if not isinstance(items, list):
            raise BackendError("GET /api/v1/nodes: the answer holds no items")
        names = {_name(item) for item in items}
        drained = {_name(item) for item in items if _cordoned(item)}
        target = next((item for item in items if _name(item) == node), None)
        if target is None:
            return NodeView(node, exists=False)
        group = "cluster" + (f" nodes {self._settings.node_selector}" if self._settings.node_selector else "")
        return NodeView(node, exists=True, drained=_cordoned(target), ours=self._tainted(target),
                        groups=(Group(group, frozenset(names), frozenset(drained)),))

    def drain(self, node: str, reason: str) -> None:
        current = self._get(node)
        taints = [taint for taint in _taints(current) if taint.get("key") != self._taint["key"]] + [self._taint]
        self._patch(node, current, {"unschedulable": True, "taints": taints}, {REASON_ANNOTATION: reason})

    def resume(self, node: str) -> None:
        current = self._get(node)
        taints = [taint for taint in _taints(current) if taint.get("key") != self._taint["key"]]
        self._patch(node, current, {"unschedulable": False, "taints": taints}, {REASON_ANNOTATION: None})

    def patch_body(self, node: str, current: dict[str, Any], spec: dict[str, Any],
                   annotations: dict[str, str | None]) -> dict[str, Any]:
        metadata = current.get("metadata") or {}
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "resourceVersion": str(metadata.get("resourceVersion", "")),
                             "annotations": annotations},
                "spec": spec}

    def _get(self, node: str) -> dict[str, Any]:
        return self._api.request("GET", f"/api/v1/nodes/{node}")

    def _patch(self, node: str, current: dict[str, Any], spec: dict[str, Any],
               annotations: dict[str, str | None]) -> None:
        self._api.request("PATCH", f"/api/v1/nodes/{node}", self.patch_body(node, current, spec, annotations),
                          MERGE_PATCH)

    def _tainted(self, item: dict[str, Any]) -> bool:
        return any(taint.get("key") == self._taint["key"] for taint in _taints(item))


def _name(item: Any) -> str:
    return str(((item or {}).get("metadata") or {}).get("name", ""))


def _cordoned(item: dict[str, Any]) -> bool:
    return bool((item.get("spec") or {}).get("unschedulable"))


def _taints(item: dict[str, Any]) -> list[dict[str, Any]]:
    taints = (item.get("spec") or {}).get("taints") or []
    return [taint for taint in taints if isinstance(taint, dict)]
