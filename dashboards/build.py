"""The few ways fleetscope dashboards are built, over grafana-foundation-sdk: panels laid
out on Grafana's 24-column grid in order, every query against the `datasource` variable,
and the filter variables every dashboard shares.

Dashboards describe panels with `Query` and the panel functions below; `dashboard()` places
them so that they never overlap and numbers them uniquely.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models

DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
GRID_COLUMNS = 24
TAG = "fleetscope"
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass
class Panel:
    kind: str  # timeseries, stat or table
    title: str
    description: str
    unit: str
    queries: Sequence[Query]
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None
    stacked: bool = False
    thresholds: Sequence[tuple[float, str]] = ()  # (from value, colour) after a green base
    links: Sequence[tuple[str, str]] = ()  # (title, url)


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


# -- variables ---------------------------------------------------------------------------

def datasource_variable() -> builders.DatasourceVariable:
    return builders.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, metric: str, matchers: str = "", multi: bool = True,
                   label_name: str | None = None) -> builders.QueryVariable:
    """A filter `$name` from the values of `label_name` (by default `name`) on `metric`,
    narrowed by the filters before it."""
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    return (builders.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query(f"label_values({selector}, {label_name or name})")
            .multi(multi).include_all(True).all_value(".*").current(_all())
            .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(models.VariableSort.ALPHABETICAL_ASC))


def _all() -> models.VariableOption:
    return models.VariableOption(selected=True, text="All", value="$__all")


# -- panels ------------------------------------------------------------------------------

def timeseries_panel(title: str, description: str, unit: str, *queries: Query, **options) -> Panel:
    return Panel("timeseries", title, description, unit, queries, **options)


def stat_panel(title: str, description: str, unit: str, *queries: Query, **options) -> Panel:
    options.setdefault("width", 6)
    options.setdefault("height", 4)
    return Panel("stat", title, description, unit, queries, **options)


def table_panel(title: str, description: str, unit: str, *queries: Query, **options) -> Panel:
    return Panel("table", title, description, unit, queries, **options)


def _targets(panel: Panel) -> list[prometheus.Dataquery]:
    targets = []
    for index, query in enumerate(panel.queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index)).datasource(DATASOURCE)
        if query.legend:
            target = target.legend_format(query.legend)
        if panel.kind in ("stat", "table"):  # the latest value, not a range
            target = target.instant()
        if panel.kind == "table":
            target = target.format(prometheus_models.PromQueryFormat.TABLE)
        targets.append(target)
    return targets


def _thresholds(panel: Panel) -> builders.ThresholdsConfig:
    steps = [models.Threshold(value=None, color="green")]
    steps += [models.Threshold(value=value, color=colour) for value, colour in panel.thresholds]
    return builders.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE).steps(steps)


def _build_panel(panel: Panel, panel_id: int, x: int, y: int):
    built: timeseries.Panel | stat.Panel | table.Panel
    if panel.kind == "timeseries":
        built = (timeseries.Panel().legend(common_builders.VizLegendOptions().show_legend(True)
                                           .display_mode(common.LegendDisplayMode.LIST)
                                           .placement(common.LegendPlacement.BOTTOM))
                 .fill_opacity(10).line_width(1))
        if panel.stacked:
            built = built.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(40)
    elif panel.kind == "stat":
        built = stat.Panel().reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"])) \
            .graph_mode(common.BigValueGraphMode.NONE)
    else:
        built = table.Panel()
        if len(panel.queries) > 1:  # one row per series, a column per query
            built = built.with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
    built = (built.id(panel_id).title(panel.title).description(panel.description).datasource(DATASOURCE)
             .unit(panel.unit).thresholds(_thresholds(panel))
             .grid_pos(models.GridPos(h=panel.height, w=panel.width, x=x, y=y)))
    if panel.min is not None:
        built = built.min(panel.min)
    if panel.max is not None:
        built = built.max(panel.max)
    if panel.links:
        built = built.links([_link(title, url, new_tab=True) for title, url in panel.links])
    for target in _targets(panel):
        built = built.with_target(target)
    return built


def _link(title: str, url: str, new_tab: bool) -> builders.DashboardLink:
    return (builders.DashboardLink(title).type(models.DashboardLinkType.LINK).url(url).tags([])
            .as_dropdown(False).target_blank(new_tab).include_vars(True).keep_time(True)
            .icon("external link" if new_tab else "dashboard"))


# -- dashboards --------------------------------------------------------------------------

def dashboard(uid: str, title: str, description: str, variables: Sequence, rows: Sequence[Row],
              links: Sequence[tuple[str, str]] = ()) -> dict:
    """The dashboard as Grafana's JSON model: rows in order, panels placed left to right."""
    if len(uid) > 40:
        raise ValueError(f"dashboard uid {uid!r} is longer than Grafana's 40 characters")
    built = (builders.Dashboard(title).uid(uid).description(description).tags([TAG]).editable()
             .refresh("1m").time("now-6h", "now").timezone("browser")
             .tooltip(models.DashboardCursorSync.CROSSHAIR))
    for variable in variables:
        built = built.with_variable(variable)
    for link_title, url in links:
        built = built.link(_link(link_title, url, new_tab=False))
    panel_id, y = 1, 0
    for row in rows:
        built = built.with_row(builders.Row(row.title).id(panel_id).grid_pos(models.GridPos(h=1, w=24, x=0, y=y)))
        panel_id, y = panel_id + 1, y + 1
        x, row_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_COLUMNS:
                x, y, row_height = 0, y + row_height, 0
            built = built.with_panel(_build_panel(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return json.loads(json.dumps(built.build(), cls=JSONEncoder))
