"""One alert as the areas declare it, and the Prometheus rule it becomes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fleetscope import durations
from fleetscope.mixin.config import URGENCIES, WATCHDOG, MonitoringConfig
from fleetscope.mixin.links import alert_dashboard_url
from fleetscope.mixin.promql import bottom


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    urgency: str  # page, ticket or info (URGENCIES): the severity label is the config's word for it
    summary: str
    description: str  # Go template: $labels, $value and Prometheus' template functions
    for_: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.urgency not in URGENCIES + (WATCHDOG,):
            raise ValueError(f"{self.name}: urgency {self.urgency!r} is not one of {URGENCIES}")
        if not self.name.startswith("Fleetscope"):
            raise ValueError(f"{self.name}: alert names start with Fleetscope")


def alert_rule(alert: Alert, team: str, config: MonitoringConfig, dashboard: str = "") -> dict:
    rule: dict = {"alert": alert.name, "expr": alert.expr}
    if alert.for_:
        rule["for"] = alert.for_
    rule["labels"] = {"severity": config.severities.of(alert.urgency), "team": team, **alert.labels}
    rule["annotations"] = {"summary": alert.summary, "description": alert.description,
                           "runbook_url": runbook_url(alert.name, config)}
    if dashboard:
        rule["annotations"]["dashboard_url"] = alert_dashboard_url(config.grafana_url, dashboard)
    return rule


def runbook_url(name: str, config: MonitoringConfig) -> str:
    return f"{config.runbook_url.rstrip('/')}/{name}.md"


def group(name: str, team: str, config: MonitoringConfig, alerts: list[Alert], dashboard: str) -> dict:
    """A rule group of one area's alerts, each linking to the area's dashboard (fleetscope.mixin.links)."""
    return {"name": name, "rules": [alert_rule(alert, team, config, dashboard) for alert in alerts]}


def record(name: str, expr: str) -> dict:
    """A recording rule."""
    return {"record": name, "expr": expr}


def extremes(name: str, expr: str, k: int, by: str = "cluster", lowest: bool = False) -> dict:
    """A record of the k highest (lowest) series of expr in each `by` group. A fleet-level panel showing the fleet's
    extremes reads these, k series a group at each step whatever the fleet's size, and its topk(k) (bottomk) over
    them answers what it would over expr: the fleet's k highest are among each group's k highest."""
    return record(name, bottom(k, expr, by) if lowest else f"topk by ({by}) ({k}, {expr})")


def seconds(duration: str) -> str:
    """A Prometheus duration as a number of seconds, for comparisons with time()."""
    return f"{durations.parse(duration):g}"


def regex(values: Iterable[object]) -> str:
    """An alternation for =~, from codes or names."""
    return "|".join(str(value) for value in values)
