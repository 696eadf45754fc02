"""`fleetscope dashboards preview`: each dashboard's panels, with the series Prometheus returns
for them, drawn with matplotlib where Grafana would put them, one PNG per dashboard.
Time series are drawn as lines (or bars) with their thresholds; stats as their latest values; tables
as Grafana shows them after their transformations and value mappings.

Grafana cannot be installed everywhere; this shows what a dashboard will show, from the same
committed JSON and the same queries, against any Prometheus."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from fleetscope import durations, log
from fleetscope import prometheus_api as prometheus
from fleetscope.dashboards import queries

DESCRIPTION = "Render every generated dashboard's panels, with data from a Prometheus, to PNG images."
ROW_HEIGHT_INCHES = 0.42
WIDTH_INCHES = 20.0
LEFT, WIDTH, TOP = 0.03, 0.965, 0.975  # figure fractions: room for tick labels and the title


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus.url", dest="prometheus_url", default="http://127.0.0.1:9090",
                        help="Prometheus to run the panels' queries against")
    parser.add_argument("--output", type=Path, default=Path("dashboard-previews"), help="folder for the PNGs")
    parser.add_argument("--range", dest="time_range", type=durations.argument, default=900.0,
                        help="time range the time-series panels show, ending now")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval stands for")
    parser.add_argument("--dashboard", action="append", help="only this dashboard uid (repeatable)")


def run(args: argparse.Namespace) -> int:
    try:
        prometheus.api(args.prometheus_url, "query", timeout=30.0, query="1")
    except (OSError, ValueError, prometheus.QueryError) as error:
        reason = getattr(error, "reason", error)  # a URLError's reason: "[Errno 111] Connection refused"
        raise log.UserError(f"cannot query Prometheus at --prometheus.url={args.prometheus_url}: {reason}") from None
    args.output.mkdir(parents=True, exist_ok=True)
    for board in queries.load():
        if args.dashboard and board["uid"] not in args.dashboard:
            continue
        path = args.output / f"{board['uid']}.png"
        render(board, args.prometheus_url, path, args.time_range, args.rate_interval)
        print(path)
    return 0


def render(board: dict, prometheus_url: str, path: Path, time_range: float, rate_interval: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = _chosen(board, prometheus_url, queries.defaults(board), rate_interval)
    grid_rows = max(panel["gridPos"]["y"] + panel["gridPos"]["h"] for panel in board["panels"])
    figure = plt.figure(figsize=(WIDTH_INCHES, grid_rows * ROW_HEIGHT_INCHES + 0.8))
    figure.suptitle(board["title"], fontsize=16, x=0.01, y=0.998, ha="left", va="top")
    now = time.time()
    for panel in board["panels"]:
        x, y, w, h = (panel["gridPos"][key] for key in ("x", "y", "w", "h"))
        box = [LEFT + x / 24 * WIDTH + 0.006, TOP - (y + h) / grid_rows * TOP + 0.006,
               w / 24 * WIDTH - 0.012, h / grid_rows * TOP - 0.022]
        title = _plain(queries.concrete(panel["title"], values, rate_interval))
        if panel["type"] == "row":
            figure.text(box[0], box[1] + box[3] / 2, title, fontsize=12, weight="bold")
            continue
        axes = figure.add_axes((box[0], box[1], box[2], box[3]))
        axes.set_title(title, fontsize=9, loc="left")
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        try:
            if panel["type"] == "timeseries":
                _timeseries(axes, panel, prometheus_url, values, rate_interval, now - time_range, now, unit)
            else:
                _latest(axes, panel, prometheus_url, values, rate_interval, unit)
        except (OSError, ValueError, prometheus.QueryError) as error:
            axes.text(0.5, 0.5, f"query failed: {error}", ha="center", va="center", fontsize=7, color="red",
                      transform=axes.transAxes)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _chosen(board: dict, prometheus_url: str, values: dict[str, str], rate_interval: str) -> dict[str, str]:
    """A variable of one value (no All) set as Grafana opens the dashboard: to the first of its values, sorted."""
    values = dict(values)
    for variable in board.get("templating", {}).get("list", []):
        found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", str(variable.get("query", "")))
        if variable.get("type") != "query" or variable.get("includeAll") or not found:
            continue
        selector = queries.concrete(found.group(1), values, rate_interval)
        try:
            options = prometheus.api(prometheus_url, f"label/{found.group(2)}/values", timeout=30.0,
                                     **{"match[]": selector})
        except prometheus.QueryError:  # a value before it that breaks the selector: the panels will say so
            continue
        if options:
            values[variable["name"]] = sorted(options)[0]
    return values


def _plain(text: str) -> str:
    return text.replace("$", r"\$")  # matplotlib reads $...$ as mathematics


def _api(prometheus_url: str, path: str, **params: str) -> list[dict]:
    return prometheus.api(prometheus_url, path, timeout=30.0, **params)["result"]


def _legend(template: str, labels: dict[str, str]) -> str:
    if not template:
        return ",".join(f"{key}={value}" for key, value in labels.items() if key != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda match: labels.get(match.group(1), ""), template)


def _timeseries(axes, panel: dict, url: str, values: dict, rate_interval: str, start: float, end: float,
                unit: str) -> None:
    step = str(max(1, int((end - start) / 120)))
    drawn = 0
    for target in panel["targets"]:
        expr = queries.concrete(target["expr"], values, rate_interval)
        for series in _api(url, "query_range", query=expr, start=str(start), end=str(end), step=step)[:12]:
            times = [float(point[0]) - end for point in series["values"]]
            label = _legend(target.get("legendFormat", ""), series["metric"])[:40]
            points = [float(point[1]) for point in series["values"]]
            if panel["fieldConfig"]["defaults"].get("custom", {}).get("drawStyle") == "bars":
                axes.bar(times, points, width=float(step), label=label)
            else:
                axes.plot(times, points, linewidth=1, label=label)
            drawn += 1
    custom = panel["fieldConfig"]["defaults"].get("custom", {})
    if custom.get("thresholdsStyle", {}).get("mode", "off") != "off":  # drawn as Grafana draws them: dashed
        for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]:
            axes.axhline(step["value"], color=step["color"], linestyle="--", linewidth=1)
    axes.tick_params(labelsize=7)
    axes.set_xlabel("seconds before now", fontsize=7)
    axes.set_ylabel(unit, fontsize=7)
    if drawn:
        if axes.get_legend_handles_labels()[1]:
            axes.legend(fontsize=6, loc="upper left", ncol=2, frameon=False)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)


def table(panel: dict, results: list[list[dict]]) -> tuple[list[str], list[list[str]]]:
    """The header and rows Grafana shows for a table panel, given each target's instant-query result: its
    transformations applied (merge, the fields kept and their order and names, filter by value, sort) and
    its value mappings."""
    steps = {step["id"]: step.get("options", {}) for step in panel.get("transformations", [])}
    kept = steps.get("filterFieldsByName", {}).get("include", {}).get("names", [])
    raw = ["Value"] if len(results) == 1 else [f"Value #{chr(ord('A') + index)}" for index in range(len(results))]
    present = {label for result in results for series in result for label in series["metric"]}
    columns = [name for name in kept if name not in raw and name in present]  # Grafana keeps only fields that exist
    merged: dict[tuple, dict[str, float]] = {}
    for name, result in zip(raw, results, strict=True):
        for series in result:
            key = tuple(series["metric"].get(column, "") for column in columns)
            merged.setdefault(key, {})[name] = float(series["value"][1])
    renamed = steps.get("organize", {}).get("renameByName", {})
    rows = [dict(zip(columns, key, strict=True)) | {renamed.get(name, name): value for name, value in values.items()}
            for key, values in merged.items()]
    filters = steps.get("filterByValue", {}).get("filters", [])
    if filters:
        rows = [row for row in rows if any(row.get(f["fieldName"], 0) > f["config"]["options"]["value"]
                                           for f in filters)]
    for sort in steps.get("sortBy", {}).get("sort", []):
        rows.sort(key=lambda row: row.get(sort["field"], float("-inf")), reverse=sort.get("desc", False))
    header = columns + [renamed.get(name, name) for name in raw]
    mappings = {override["matcher"]["options"]: property["value"][0]["options"]
                for override in panel["fieldConfig"].get("overrides", [])
                for property in override["properties"] if property["id"] == "mappings"}
    unit, decimals = panel["fieldConfig"]["defaults"].get("unit", ""), panel["fieldConfig"]["defaults"].get("decimals")
    return header, [[_cell(row.get(name), mappings.get(name, {}), unit if name not in columns else "", decimals)
                     for name in header] for row in rows]


def _cell(value: object, mapping: dict, unit: str, decimals: int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:g}"
        if text in mapping:
            return mapping[text]["text"]
        return f"{value:.{decimals}f}" if decimals is not None and not unit.startswith(("bytes", "percent")) \
            else _format(value, unit)
    return str(value)


def _latest(axes, panel: dict, url: str, values: dict, rate_interval: str, unit: str) -> None:
    results = [_api(url, "query", query=queries.concrete(target["expr"], values, rate_interval))
               for target in panel["targets"]]
    axes.set_axis_off()
    if panel["type"] == "table":
        header, rows = table(panel, results)
        if not rows:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
            return
        shown = [header] + rows[:20]
        widths = [max(len(line[index]) for line in shown) for index in range(len(header))]
        lines = ["  ".join(f"{cell:{width}}" for cell, width in zip(line, widths, strict=True))[:200] for line in shown]
        axes.text(0.0, 1.0, "\n".join(lines), ha="left", va="top", family="monospace", fontsize=6.5,
                  transform=axes.transAxes)
        return
    decimals = panel["fieldConfig"]["defaults"].get("decimals")
    stats = [(_legend(target.get("legendFormat", ""), series["metric"]),
              _cell(float(series["value"][1]), {}, unit, decimals))
             for target, result in zip(panel["targets"], results, strict=True) for series in result]
    if not stats:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    elif len(stats) == 1:
        axes.text(0.5, 0.45, stats[0][1], ha="center", va="center", fontsize=22, transform=axes.transAxes)
    else:
        lines = [f"{label[:110]:110}  {value}" for label, value in stats[:20]]
        axes.text(0.0, 1.0, "\n".join(lines), ha="left", va="top", family="monospace", fontsize=6.5,
                  transform=axes.transAxes)


def _format(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value:.1%}"
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(value) < 1024 or suffix == "TiB":
                return f"{value:.1f} {suffix}"
            value /= 1024
    suffixes = {"watt": " W", "joule": " J", "celsius": " °C", "s": " s", "hertz": " Hz"}
    return f"{value:.4g}{suffixes.get(unit, '')}"
