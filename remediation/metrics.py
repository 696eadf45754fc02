"""The remediator's /metrics page, from its counters and the catalog's specs."""

from __future__ import annotations

from collections import Counter

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from fleetscope.catalog import FamilySet
from fleetscope.remediation import catalog
from fleetscope.remediation.remediator import Remediator
from fleetscope.self_metrics import SelfCollector

# Every label value a counter may take is listed up front, so each series exists (at 0) from the start and
# rate() sees the first action; the values are fixed by the code, never by what a client sends.
ACTIONS = ("drain", "resume")
REFUSAL_REASONS = ("rate_limit", "drained_ratio", "already_drained", "not_drained_by_us", "resume_not_allowed",
                   "still_firing", "unknown_node", "no_node_label", "bad_node_name")
NOTIFICATION_OUTCOMES = ("accepted", "bad_request", "too_large", "timeout", "unauthorized")


class Page(Collector):
    def __init__(self, remediator: Remediator) -> None:
        self._remediator = remediator
        self.notifications: Counter[str] = Counter({outcome: 0 for outcome in NOTIFICATION_OUTCOMES})
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)
        self._registry.register(SelfCollector())

    def render(self) -> bytes:
        return generate_latest(self._registry)

    def collect(self) -> list[Metric]:
        remediator = self._remediator
        backend, dry_run = remediator.backend.name, str(remediator.config.dry_run).lower()
        families = FamilySet()
        for action in ACTIONS:
            families.add(catalog.ACTIONS, {"action": action, "backend": backend, "dry_run": dry_run},
                         remediator.actions[(action, backend, dry_run)])
            families.add(catalog.FAILURES, {"action": action, "backend": backend},
                         remediator.failures[(action, backend)])
        refusals = {(action, reason) for action in ACTIONS for reason in REFUSAL_REASONS} | set(remediator.refusals)
        for action, reason in sorted(refusals):
            families.add(catalog.REFUSALS, {"action": action, "reason": reason}, remediator.refusals[(action, reason)])
        for outcome, count in sorted(self.notifications.items()):
            families.add(catalog.NOTIFICATIONS, {"outcome": outcome}, count)
        families.add(catalog.DRY_RUN, {}, 1.0 if remediator.config.dry_run else 0.0)
        families.add(catalog.RATE_LIMIT_USED, {}, remediator.hourly.used() / remediator.hourly.limit)
        return families.metrics()
