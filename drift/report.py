"""Evidently itself, run on the same data and settings as compare(): the HTML report the
service serves for a person to look at, and the numbers the parity tests check against."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import re
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from fleetscope.drift.columns import ColumnKind


def evidently_snapshot(reference: pd.DataFrame, current: pd.DataFrame,
                       kinds: Mapping[str, ColumnKind] | None = None,
                       methods: Mapping[str, str] | None = None,
                       thresholds: Mapping[str, float] | None = None, drift_share: float = 0.5):
    """Run Evidently's DataDriftPreset; with `kinds` None, Evidently infers column kinds itself. Embedding
    columns, and text descriptors' columns (not in the frames), are left out: the preset has no place for them."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    if kinds is not None:
        kinds = {name: kind for name, kind in kinds.items()
                 if kind is not ColumnKind.EMBEDDING and name in current.columns}
        methods = {name: method for name, method in (methods or {}).items() if name in kinds}
        thresholds = {name: threshold for name, threshold in (thresholds or {}).items() if name in kinds}

    preset = DataDriftPreset(drift_share=drift_share, per_column_method=dict(methods or {}) or None,
                             per_column_threshold=dict(thresholds or {}) or None)
    report = Report([preset], include_tests=True)
    if kinds is None:
        return _quietly(report.run, current, reference)
    definition = DataDefinition(
        numerical_columns=[name for name, kind in kinds.items() if kind is ColumnKind.NUMERICAL],
        categorical_columns=[name for name, kind in kinds.items() if kind is ColumnKind.CATEGORICAL],
        text_columns=[name for name, kind in kinds.items() if kind is ColumnKind.TEXT])
    columns = list(kinds)
    return _quietly(report.run, Dataset.from_pandas(current[columns], data_definition=definition),
                    Dataset.from_pandas(reference[columns], data_definition=definition))


@dataclass(frozen=True)
class SafeReport:
    """A report page and the Content-Security-Policy to serve it with."""
    html: str
    content_security_policy: str


# Everything but the report's own scripts is refused: no script from anywhere else, no
# request out of the page, no form, no framing by another site. The widgets style themselves
# inline and the font and images are data: URLs.
_POLICY = ("default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data: blob:; "
           "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_NO_DATA = "<!-- no embedded data -->"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def evidently_html(snapshot) -> SafeReport:
    """Evidently's standalone HTML report, with the data it embeds made safe to open.

    Evidently writes the report's data (which holds the category values the service was sent)
    into a <script> block with json.dumps, which leaves `</script>` as it is: a value can close
    the block and open a script of its own. Here the data is written with every character that
    HTML could act on escaped, and the page allows only its own inline scripts, by hash."""
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.legacy.utils import NumpyEncoder
    from evidently.legacy.utils.dashboard import TemplateParams, dashboard_info_to_json, file_html_template

    widgets = [group_widget(title="", widgets=snapshot._widgets)] + snapshot._tests_widgets
    params = _template_params(widgets, TemplateParams)
    page = file_html_template(dataclasses.replace(params, embed_data=False))
    dashboard = _script_safe(dashboard_info_to_json(params.dashboard_info))
    graphs = _script_safe(json.dumps(params.additional_graphs, cls=NumpyEncoder))
    data = (f"<script>\n    var {params.dashboard_id} = {dashboard};\n"
            f"    var additional_graphs_{params.dashboard_id} = {graphs};\n</script>")
    if page.count(_NO_DATA) != 1:
        raise RuntimeError("Evidently's report template changed: cannot place the escaped data")
    page = page.replace(_NO_DATA, data)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                      for body in _INLINE_SCRIPT.findall(page))
    return SafeReport(page, _POLICY.format(scripts=hashes))


def with_banner(report: SafeReport, text: str) -> SafeReport:
    """The report with a notice at the top of its page (escaped; styled inline, which the policy allows)."""
    start = report.html.find("<body")
    end = report.html.find(">", start) + 1
    if start < 0 or end <= 0:
        raise RuntimeError("Evidently's report template changed: it has no <body> to put the notice in")
    banner = (f'<div role="note" style="padding:12px 16px;background:#fff4ce;border-bottom:1px solid #e0c060;'
              f'font:14px sans-serif">{html.escape(text)}</div>')
    return SafeReport(report.html[:end] + banner + report.html[end:], report.content_security_policy)


def _template_params(widgets: list, template_params: type):
    """The TemplateParams Evidently's render_widgets builds (evidently 0.7.23, core/metric_types.py)."""
    from evidently.legacy.model.dashboard import DashboardInfo
    from evidently.legacy.model.widget import AdditionalGraphInfo, BaseWidgetInfo
    from evidently.legacy.renderers.base_renderer import DetailsInfo

    items = []
    for widget in widgets:
        for graph in widget.get_additional_graphs():
            info = graph.params if isinstance(graph, AdditionalGraphInfo) else graph
            items.append(DetailsInfo(title="", info=info, id=graph.id))
    graphs = {f"{item.id}": item.info.dict() if isinstance(item.info, BaseWidgetInfo) else item.info for item in items}
    return template_params(dashboard_id="metric_" + uuid.uuid4().hex,
                           dashboard_info=DashboardInfo(name="Report", widgets=widgets), additional_graphs=graphs)


_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def _script_safe(json_text: str) -> str:
    """JSON that means the same to JavaScript and cannot end or alter the <script> it sits in."""
    return json_text.translate(_SCRIPT_ESCAPES)


def evidently_numbers(snapshot) -> dict:
    """{"columns": {name: (method id, score, threshold, drifted)}, "share": .., "count": ..}."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    method_ids = {test.display_name: name for name, by_kind in _registered_stat_tests.items()
                  for test in by_kind.values()}
    data = snapshot.dict()
    drifted = {test["metric_config"]["params"]["column"]: test["status"] == "FAIL"
               for test in data["tests"] if test["metric_config"]["params"]["type"].endswith(":ValueDrift")}
    numbers: dict = {"columns": {}}
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":DriftedColumnsCount"):
            numbers["share"] = metric["value"]["share"]
            numbers["count"] = metric["value"]["count"]
        elif config["type"].endswith(":ValueDrift"):
            column = config["column"]
            method = method_ids.get(config["method"], config["method"])
            numbers["columns"][column] = (method, metric["value"], config["threshold"], drifted[column])
    return numbers


def _quietly(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)
