"""`fleetscope dashboards preview`: each dashboard's panels, with the series Prometheus returns
for them, drawn with matplotlib where Grafana would put them, one PNG per dashboard.
Time series are drawn as lines; stats and tables as their latest values.

Grafana cannot be installed everywhere; this shows what a dashboard will show, from the same
committed JSON and the same queries, against any Prometheus."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from fleetscope import durations
from fleetscope.dashboards import queries
from fleetscope.localstack import prometheus

DESCRIPTION = "Render every generated dashboard's panels, with data from a Prometheus, to PNG images."
ROW_HEIGHT_INCHES = 0.42
WIDTH_INCHES = 20.0
LEFT, WIDTH, TOP = 0.03, 0.965, 0.975  # figure fractions: room for tick labels and the title
HIDDEN_LABELS = ("__name__", "uuid", "pci_bus_id", "model_name", "job", "instance")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus.url", dest="prometheus_url", default="http://127.0.0.1:9090",
                        help="Prometheus to run the panels' queries against")
    parser.add_argument("--output", type=Path, default=Path("dashboard-previews"), help="folder for the PNGs")
    parser.add_argument("--range", dest="time_range", type=durations.argument, default=900.0,
                        help="time range the time-series panels show, ending now")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval stands for")
    parser.add_argument("--dashboard", action="append", help="only this dashboard uid (repeatable)")


def run(args: argparse.Namespace) -> int:
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

    values = queries.defaults(board)
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
            axes.plot(times, [float(point[1]) for point in series["values"]], linewidth=1,
                      label=_legend(target.get("legendFormat", ""), series["metric"])[:40])
            drawn += 1
    axes.tick_params(labelsize=7)
    axes.set_xlabel("seconds before now", fontsize=7)
    axes.set_ylabel(unit, fontsize=7)
    if drawn:
        if axes.get_legend_handles_labels()[1]:
            axes.legend(fontsize=6, loc="upper left", ncol=2, frameon=False)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)


def _latest(axes, panel: dict, url: str, values: dict, rate_interval: str, unit: str) -> None:
    rows = []
    for target in panel["targets"]:
        expr = queries.concrete(target["expr"], values, rate_interval)
        for series in _api(url, "query", query=expr):
            labels = series["metric"]
            legend = _legend(target.get("legendFormat", ""), labels)
            if panel["type"] == "table":  # a table shows the series' identity beside the value
                legend = " ".join([f"{key}={value}" for key, value in labels.items() if key not in HIDDEN_LABELS]
                                  + ([legend] if target.get("legendFormat") else []))
            rows.append((legend, float(series["value"][1])))
    axes.set_axis_off()
    if not rows:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    elif panel["type"] == "stat" and len(rows) == 1:
        axes.text(0.5, 0.45, _format(rows[0][1], unit), ha="center", va="center", fontsize=22,
                  transform=axes.transAxes)
    else:
        lines = [f"{label[:110]:110}  {_format(value, unit)}" for label, value in rows[:20]]
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
