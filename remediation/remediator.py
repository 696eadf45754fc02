"""The decisions: for each alert of a notification, whether to drain its node, resume it, or refuse and why.

Notifications are decided one at a time (a lock), so two cannot both pass a limit that only one may."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from fleetscope.remediation.audit import AuditLog, read_tail
from fleetscope.remediation.config import Config, Rule
from fleetscope.remediation.limits import HourlyLimit, within_ratio
from fleetscope.remediation.nodes import REASON_PREFIX, Backend, BackendError
from fleetscope.remediation.payload import Alert, Notification


class Remediator:
    def __init__(self, config: Config, backend: Backend, audit: AuditLog,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.backend, self.audit = config, backend, audit
        self._lock, self._clock = threading.Lock(), clock
        self.hourly = HourlyLimit(config.limits.max_actions_per_hour, clock, _past_drains(audit, config.dry_run))
        self._firing: dict[str, set[str]] = defaultdict(set)  # node: the firing alerts that asked to drain it
        self._dry_drained: set[str] = set()  # what a dry run would have drained by now
        self.actions: Counter[tuple[str, str, str]] = Counter()  # (action, backend, dry_run)
        self.refusals: Counter[tuple[str, str]] = Counter()  # (action, reason)
        self.failures: Counter[tuple[str, str]] = Counter()  # (action, backend)

    def handle(self, notification: Notification) -> list[dict[str, Any]]:
        with self._lock:
            return [self._decide(alert) for alert in notification.alerts]

    def _decide(self, alert: Alert) -> dict[str, Any]:
        labels = alert.labels
        action = "drain" if alert.status == "firing" else "resume"
        record: dict[str, Any] = {"time": self._clock(), "alertname": labels["alertname"], "status": alert.status,
                                  "action": action, "fingerprint": alert.fingerprint, "backend": self.backend.name,
                                  "dry_run": self.config.dry_run, "labels": labels}
        rule = self.config.rule_for(labels)
        if rule is None:
            return self.audit.write({**record, "action": "none", "decision": "ignored",
                                     "detail": "no rule matches the alert"})
        node = labels.get(rule.node_label, "")
        record["node"] = node
        if not node:
            return self._refuse(record, "no_node_label", f"the alert has no {rule.node_label} label")
        if not self.backend.valid_name(node):
            return self._refuse(record, "bad_node_name", f"{node!r} is not one {self.backend.name} node's name")
        try:
            if action == "drain":
                return self._drain(record, node, rule, alert)
            return self._resume(record, node, rule, alert)
        except BackendError as error:
            self.failures[(action, self.backend.name)] += 1
            return self.audit.write({**record, "decision": "failed", "detail": str(error)})

    def _drain(self, record: dict[str, Any], node: str, rule: Rule, alert: Alert) -> dict[str, Any]:
        self._firing[node].add(_key(alert))
        view = self.backend.inspect(node)
        if not view.exists:
            return self._refuse(record, "unknown_node", f"{self.backend.name} has no node {node}")
        if view.drained or node in self._dry_drained:
            return self._refuse(record, "already_drained", f"{node} is drained already")
        if not self.hourly.allows():
            return self._refuse(record, "rate_limit", f"{self.hourly.used()} drains in the last hour, "
                                f"limits.max_actions_per_hour is {self.hourly.limit}")
        ratio = self.config.limits.max_drained_ratio
        for group in view.groups:
            drained = len(group.drained | (self._dry_drained & group.nodes) | {node})
            if not within_ratio(drained, len(group.nodes), ratio):
                return self._refuse(record, "drained_ratio", f"draining {node} would leave {drained} of "
                                    f"{len(group.nodes)} nodes of {group.name} drained, over "
                                    f"limits.max_drained_ratio {ratio:g}")
        reason = f"{REASON_PREFIX} {record['alertname']}" + (f": {rule.reason}" if rule.reason else "")
        if self.config.dry_run:
            self._dry_drained.add(node)
        else:
            self.backend.drain(node, reason)
        self.hourly.record()
        return self._done(record, "drain", reason)

    def _resume(self, record: dict[str, Any], node: str, rule: Rule, alert: Alert) -> dict[str, Any]:
        still = self._firing.pop(node, set()) - {_key(alert)}
        if still:
            self._firing[node] = still
        if not rule.resume_on_resolve:
            return self._refuse(record, "resume_not_allowed", "the rule's resume_on_resolve is false: "
                                "resume the node by hand once it is repaired")
        if still:
            return self._refuse(record, "still_firing", f"{len(still)} other alert(s) that drain {node} still fire")
        view = self.backend.inspect(node)
        if not view.exists:
            return self._refuse(record, "unknown_node", f"{self.backend.name} has no node {node}")
        if not (view.drained and view.ours) and node not in self._dry_drained:
            return self._refuse(record, "not_drained_by_us", f"{node} is not drained by fleetscope remediate "
                                "(someone else drained it, or it was resumed already)")
        if self.config.dry_run:
            self._dry_drained.discard(node)
        else:
            self.backend.resume(node)
        return self._done(record, "resume", "")

    def _done(self, record: dict[str, Any], action: str, reason: str) -> dict[str, Any]:
        dry_run = self.config.dry_run
        self.actions[(action, self.backend.name, str(dry_run).lower())] += 1
        return self.audit.write({**record, "decision": "dry_run" if dry_run else "done",
                                 **({"reason": reason} if reason else {})})

    def _refuse(self, record: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
        self.refusals[(record["action"], reason)] += 1
        return self.audit.write({**record, "decision": "refused", "refusal": reason, "detail": detail})


def _key(alert: Alert) -> str:
    return alert.fingerprint or repr(sorted(alert.labels.items()))


def _past_drains(audit: AuditLog, dry_run: bool) -> list[float]:
    """When the drains of an earlier run (in the same mode) were done, so a restart does not reset the limit."""
    decided = "dry_run" if dry_run else "done"
    return [float(record["time"]) for record in read_tail(audit.path)
            if record.get("action") == "drain" and record.get("decision") == decided
            and isinstance(record.get("time"), int | float)]
