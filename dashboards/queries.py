"""The generated dashboards' panels and queries, with Grafana's variables replaced so that
Prometheus itself can run them (the tests and `fleetscope dashboards preview` do)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

JSON_DIRECTORY = Path(__file__).resolve().parent / "json"
# A variable's name starts with a letter or _: "$1" in label_replace() is a regex group, which Grafana leaves alone.
_VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")


@dataclass(frozen=True)
class PanelQueries:
    dashboard: str
    panel_id: int
    title: str
    kind: str
    unit: str
    exprs: tuple[str, ...]
    legends: tuple[str, ...]


def load(directory: Path = JSON_DIRECTORY) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def panels(board: dict) -> Iterator[dict]:
    for panel in board["panels"]:
        if panel["type"] != "row":
            yield panel
        yield from panel.get("panels", ())


def panel_queries(board: dict) -> Iterator[PanelQueries]:
    for panel in panels(board):
        targets = panel.get("targets", [])
        yield PanelQueries(board["uid"], panel["id"], panel["title"], panel["type"],
                           panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""),
                           tuple(target["expr"] for target in targets),
                           tuple(target.get("legendFormat", "") for target in targets))


def defaults(board: dict) -> dict[str, str]:
    """Each variable's value when a person opens the dashboard: "All" (.*) for filters, and for a filter of one
    value, the first of its values; here, as no query is run, any (.*) stands for it."""
    values = {}
    for variable in board.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value")
        if variable.get("includeAll") and current in (None, "$__all"):
            values[variable["name"]] = variable.get("allValue", ".*")
        elif current is not None:
            values[variable["name"]] = current
        elif variable.get("type") == "query":
            values[variable["name"]] = ".*"
    return values


def concrete(expr: str, values: dict[str, str], rate_interval: str, time_range_seconds: int = 6 * 3600) -> str:
    """The expression as Grafana would send it: variables substituted, $__rate_interval and $__interval set, and
    $__range and $__range_s for a time range (the dashboards open on 6 hours)."""
    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name in ("__rate_interval", "__interval"):
            return rate_interval
        if name in ("__range", "__range_s"):
            return f"{time_range_seconds}s" if name == "__range" else str(time_range_seconds)
        if name not in values:
            raise KeyError(f"variable ${name} is not defined by the dashboard")
        return values[name]
    return _VARIABLE.sub(substitute, expr)
