"""The few ways fleetscope dashboards are built, over grafana-foundation-sdk: panels laid
out on Grafana's 24-column grid in order, every query against the `datasource` variable,
and the filter variables every dashboard shares.

Dashboards describe panels with `Query` and the panel functions below; `dashboard()` places
them so that they never overlap and numbers them uniquely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
    thresholds: Sequence[tuple[float, str]] = ()  # (from value, colour) after a green base; drawn on time series
    links: Sequence[tuple[str, str]] = ()  # (title, url)
    decimals: int | None = None  # 0 for counts of events: never "1.008 XIDs"
    bars: bool = False  # events per $__interval, drawn as bars
    interval: str = ""  # the shortest $__interval: the scrape interval, below which increase() has no samples
    # Tables: the label columns shown, in order, before the queries' values (named by their legends); every
    # other label is left out. Rows may be kept only where one of some values is above 0, and are sorted by the
    # first value, largest first. Mappings name a column's values (an XID code: what it means).
    columns: Sequence[str] = ()
    nonzero_in: Sequence[str] = ()
    mappings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


# -- variables ---------------------------------------------------------------------------

def datasource_variable() -> builders.DatasourceVariable:
    return builders.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, metric: str, matchers: str = "", multi: bool = True,
                   label_name: str | None = None, one: bool = False) -> builders.QueryVariable:
    """A filter `$name` from the values of `label_name` (by default `name`) on `metric`,
    narrowed by the filters before it; All by default, or with `one`, a single value, the first."""
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    variable = (builders.QueryVariable(name).label(label).datasource(DATASOURCE)
                .query(f"label_values({selector}, {label_name or name})")
                .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(models.VariableSort.ALPHABETICAL_ASC))
    if one:
        return variable.multi(False).include_all(False)
    return variable.multi(multi).include_all(True).all_value(".*").current(_all())


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
    if not options.get("columns"):
        raise ValueError(f"table {title!r}: name the label columns it shows")
    if any(not query.legend for query in queries):
        raise ValueError(f"table {title!r}: every query needs a legend, its value column's name")
    return Panel("table", title, description, unit, queries, **options)


EVENT_INTERVAL = "1m"  # increase() over a $__interval shorter than a few scrapes finds nothing


def events_panel(title: str, description: str, *queries: Query, **options) -> Panel:
    """Counts of events (XIDs, link downs, remapped rows) per $__interval, as bars of whole numbers; the
    queries read increase(...[$__interval])."""
    options.setdefault("interval", EVENT_INTERVAL)
    return Panel("timeseries", title, description, "none", queries, bars=True, decimals=0, min=0, **options)


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


def _table_transformations(panel: Panel) -> list[models.DataTransformerConfig]:
    """As Grafana needs them to read as a table: one row per series (merged across queries), only the named
    label columns and the values, named and ordered, then filtered and sorted."""
    values = [query.legend for query in panel.queries]
    raw = ["Value"] if len(values) == 1 else [f"Value #{chr(ord('A') + index)}" for index in range(len(values))]
    steps = [models.DataTransformerConfig(id_val="merge", options={})] if len(values) > 1 else []
    steps.append(models.DataTransformerConfig(id_val="filterFieldsByName", options={
        "include": {"names": [*panel.columns, *raw]}}))
    steps.append(models.DataTransformerConfig(id_val="organize", options={
        "excludeByName": {}, "renameByName": dict(zip(raw, values, strict=True)),
        "indexByName": {name: index for index, name in enumerate([*panel.columns, *raw])}}))
    if panel.nonzero_in:
        steps.append(models.DataTransformerConfig(id_val="filterByValue", options={
            "type": "include", "match": "any",
            "filters": [{"fieldName": name, "config": {"id": "greater", "options": {"value": 0}}}
                        for name in panel.nonzero_in]}))
    steps.append(models.DataTransformerConfig(id_val="sortBy", options={"sort": [{"field": values[0], "desc": True}]}))
    return steps


def _mapping(names: Mapping[str, str]) -> models.ValueMap:
    return models.ValueMap(options={value: models.ValueMappingResult(text=text, index=index)
                                    for index, (value, text) in enumerate(names.items())})


def _thresholds(panel: Panel) -> builders.ThresholdsConfig:
    steps = [models.Threshold(value=None, color="green")]
    steps += [models.Threshold(value=value, color=colour) for value, colour in panel.thresholds]
    return builders.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE).steps(steps)


def _build_panel(panel: Panel, panel_id: int, x: int, y: int):
    built: timeseries.Panel | stat.Panel | table.Panel
    if panel.kind == "timeseries":
        # A legend as a table with its figures, sortable: which series peaked, which is highest now.
        built = (timeseries.Panel().legend(common_builders.VizLegendOptions().show_legend(True)
                                           .display_mode(common.LegendDisplayMode.TABLE)
                                           .placement(common.LegendPlacement.BOTTOM)
                                           .calcs(["mean", "max", "lastNotNull"]))
                 .fill_opacity(10).line_width(1))
        if panel.stacked:
            built = built.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(40)
        if panel.bars:
            built = built.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
        if panel.thresholds:  # Grafana draws a time series' thresholds only when asked
            built = built.thresholds_style(common_builders.GraphThresholdsStyleConfig()
                                           .mode(common.GraphThresholdsStyleMode.DASHED))
    elif panel.kind == "stat":
        built = stat.Panel().reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"])) \
            .graph_mode(common.BigValueGraphMode.NONE)
    else:
        built = table.Panel()
        for step in _table_transformations(panel):
            built = built.with_transformation(step)
        for column, names in panel.mappings.items():
            built = built.override_by_name(column, [models.DynamicConfigValue(id_val="mappings",
                                                                              value=[_mapping(names)])])
    built = (built.id(panel_id).title(panel.title).description(panel.description).datasource(DATASOURCE)
             .unit(panel.unit).thresholds(_thresholds(panel))
             .grid_pos(models.GridPos(h=panel.height, w=panel.width, x=x, y=y)))
    if panel.decimals is not None:
        built = built.decimals(panel.decimals)
    if panel.interval:
        built = built.interval(panel.interval)
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
