"""The demo as a guided tour: every receiver's notifications kept in the workdir, the dashboards drawn from the
demo's own Prometheus at the end, and a closing summary of what fired, when, and what resolved."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetscope.localstack.receiver import Notification

WEBHOOK_FILE = "notifications.jsonl"  # each line the body Alertmanager's webhook posted, as it always was
OTHERS_DIR = "notifications"  # <receiver>.jsonl: {"path", "body"} a line, the body as PagerDuty, Opsgenie, Slack got it
DASHBOARDS_DIR = "dashboards"
SUMMARY_FILE = "summary.txt"
DRAWING_BUDGET_SECONDS = 60.0  # the dashboards drawn at the end never hold up stopping for longer


def receiver_of(path: str) -> str:
    """The channel a local notification was sent to, by its path: /webhook, /pagerduty/v2/enqueue,
    /opsgenie/v2/alerts, /slack/<team>, /watchdog (alerts/routing.py local_receivers)."""
    return path.strip("/").split("/", 1)[0] or "unknown"


def keep(notification: Notification, workdir: Path) -> Path:
    """Appends a notification to its receiver's file; the file."""
    receiver = receiver_of(notification.path)
    if receiver == "webhook":
        path, line = workdir / WEBHOOK_FILE, notification.body
    else:
        path, line = workdir / OTHERS_DIR / f"{receiver}.jsonl", {"path": notification.path, "body": notification.body}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(line) + "\n")
    return path


@dataclass(frozen=True)
class Transition:
    at: float  # seconds since the demo started
    status: str  # firing or resolved
    alertname: str
    severity: str
    team: str
    summary: str
    key: str  # which alert of that name (its labels)


def summary(transitions: Sequence[Transition], files: Sequence[Path]) -> list[str]:
    """What fired, when, and whether and when it resolved, one line an alert; then where the files are."""
    lines = ["what fired:"]
    opened: dict[str, Transition] = {}
    closed: dict[str, float] = {}
    for transition in transitions:
        if transition.status == "firing":
            opened.setdefault(transition.key, transition)
            closed.pop(transition.key, None)
        elif transition.key in opened:
            closed[transition.key] = transition.at
    for key, first in sorted(opened.items(), key=lambda item: item[1].at):
        end = f"resolved at {closed[key]:.0f}s" if key in closed else "still firing"
        lines.append(f"  {first.at:5.0f}s  {first.alertname} [{first.severity} → {first.team}], {end}: {first.summary}")
    if not opened:
        lines.append("  nothing (a longer --duration gives the timeline time to play out)")
    lines.append("files:")
    lines += [f"  {path}" for path in files]
    return lines


def draw_dashboards(prometheus_url: str, directory: Path, time_range: float, rate_interval: str) -> list[Path]:
    """Every generated dashboard drawn to PNG from prometheus_url (fleetscope.dashboards.preview), within
    DRAWING_BUDGET_SECONDS; the images drawn."""
    from fleetscope.dashboards import queries
    from fleetscope.dashboards.preview import render

    directory.mkdir(parents=True, exist_ok=True)
    deadline, drawn = time.monotonic() + DRAWING_BUDGET_SECONDS, []
    for board in queries.load():
        if time.monotonic() > deadline:
            break
        path = directory / f"{board['uid']}.png"
        render(board, prometheus_url, path, time_range, rate_interval)
        drawn.append(path)
    return drawn
