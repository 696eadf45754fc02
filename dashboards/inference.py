"""Inference: request rate, errors, latency percentiles, time to first token and per output
token, queue time, tokens, and the latency SLO's burn rate and error budget, per model and
engine, from the SDK's histograms."""

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from fleetscope.dashboards.build import (RATE, Query, Row, dashboard, datasource_variable, label_variable,
                                         stat_panel, timeseries_panel)
from fleetscope.dashboards.common import TITLES, UIDS, links_except, m
from fleetscope.exporters.catalog import inference

SERIES = 'cluster=~"$cluster",namespace=~"$namespace",model=~"$model",engine=~"$engine"'
WITHIN_THRESHOLD = SERIES + ',le="$slo_threshold"'
SERVER_ERRORS = 'outcome="error"'
BY = "model, engine"
LEGEND = "{{model}} ({{engine}})"
SLO_THRESHOLDS = ("0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0")  # bucket bounds as the SDK writes them
SLO_TARGETS = ("0.9", "0.95", "0.99", "0.995", "0.999")


def _requests(matchers: str = "", window: str = RATE) -> str:
    selector = SERIES + ("," + matchers if matchers else "")
    return f"sum by ({BY}) (rate({m(inference.REQUESTS, selector)}[{window}]))"


def _quantile(quantile: float, spec, legend: str) -> Query:
    return Query(f"histogram_quantile({quantile}, sum by (le, {BY}) (rate({m(spec, SERIES, '_bucket')}[{RATE}])))",
                 f"p{quantile * 100:g} {legend}")


def _good_ratio(window: str) -> str:
    """Share of requests within the SLO threshold over the window (a bucket bound)."""
    duration = inference.REQUEST_DURATION
    return (f"sum by ({BY}) (increase({m(duration, WITHIN_THRESHOLD, '_bucket')}[{window}])) / "
            f"sum by ({BY}) (increase({m(duration, SERIES, '_count')}[{window}]))")


def build() -> dict:
    traffic = Row("Traffic and errors", [
        timeseries_panel("Requests per second", "Requests finished per second, by model and engine.", "reqps",
                         Query(_requests(), LEGEND)),
        timeseries_panel("Error ratio", "Share of requests that failed on the server (outcome error); client "
                                        "errors and cancellations are not counted.", "percentunit",
                         Query(f"({_requests(SERVER_ERRORS)} or {_requests()} * 0) / "
                               f"{_requests()}", LEGEND), min=0),
        timeseries_panel("Requests by outcome", "Requests per second by outcome: success, error, client_error, "
                                                "cancelled.", "reqps",
                         Query(f"sum by ({BY}, outcome) (rate({m(inference.REQUESTS, SERIES)}[{RATE}]))",
                               LEGEND + " {{outcome}}"), stacked=True),
        timeseries_panel("In flight", "Requests started and not finished.", "none",
                         Query(f"sum by ({BY}) ({m(inference.IN_FLIGHT, SERIES)})", LEGEND), min=0),
    ])
    latency = Row("Latency", [
        timeseries_panel("Request latency p50, p90, p99", "From arrival to last byte, from the request duration "
                                                          "histogram.", "s",
                         *(_quantile(q, inference.REQUEST_DURATION, LEGEND) for q in (0.5, 0.9, 0.99))),
        timeseries_panel("Time to first token p50, p99", "From arrival to the first output token.", "s",
                         *(_quantile(q, inference.TIME_TO_FIRST_TOKEN, LEGEND) for q in (0.5, 0.99))),
        timeseries_panel("Time per output token p50, p99", "Mean time per output token after the first.", "s",
                         *(_quantile(q, inference.TIME_PER_OUTPUT_TOKEN, LEGEND) for q in (0.5, 0.99))),
        timeseries_panel("Queue time p50, p99", "Time a request waited before the model started on it.", "s",
                         *(_quantile(q, inference.QUEUE_DURATION, LEGEND) for q in (0.5, 0.99))),
        timeseries_panel("Tokens per second", "Input and output tokens per second.", "none",
                         Query(f"sum by ({BY}, token_type) (rate({m(inference.REQUEST_TOKENS, SERIES, '_sum')}"
                               f"[{RATE}]))", LEGEND + " {{token_type}}"), width=24),
    ])
    slo = Row("Latency SLO: $slo_target of requests within $slo_threshold s", [
        timeseries_panel("Burn rate, 1h and 5m", "How fast the error budget burns: 1 spends it exactly over the "
                                                 "SLO period; 14.4 over 1h and 5m pages (SRE Workbook).", "none",
                         Query(f"(1 - ({_good_ratio('1h')})) / (1 - $slo_target)", "1h " + LEGEND),
                         Query(f"(1 - ({_good_ratio('5m')})) / (1 - $slo_target)", "5m " + LEGEND),
                         thresholds=[(6, "orange"), (14.4, "red")]),
        timeseries_panel("Burn rate, 6h and 30m", "6 over 6h and 30m pages too; 3 over 1d and 1 over 3d open "
                                                  "tickets.", "none",
                         Query(f"(1 - ({_good_ratio('6h')})) / (1 - $slo_target)", "6h " + LEGEND),
                         Query(f"(1 - ({_good_ratio('30m')})) / (1 - $slo_target)", "30m " + LEGEND),
                         thresholds=[(6, "orange"), (14.4, "red")]),
        stat_panel("Error budget left, 30 days", "Share of the 30-day error budget not yet spent.", "percentunit",
                   Query(f"1 - (1 - ({_good_ratio('30d')})) / (1 - $slo_target)", LEGEND),
                   thresholds=[(0, "red"), (0.25, "orange"), (0.5, "green")], width=12),
        stat_panel("Requests within the threshold, 30 days", "Share of requests that finished within "
                                                             "$slo_threshold s over 30 days.", "percentunit",
                   Query(_good_ratio("30d"), LEGEND), width=12),
    ])
    variables = [datasource_variable(),
                 label_variable("cluster", "Cluster", inference.IN_FLIGHT.name),
                 label_variable("namespace", "Namespace", inference.IN_FLIGHT.name, 'cluster=~"$cluster"'),
                 label_variable("model", "Model", inference.IN_FLIGHT.name,
                                'cluster=~"$cluster",namespace=~"$namespace"'),
                 label_variable("engine", "Engine", inference.IN_FLIGHT.name,
                                'cluster=~"$cluster",namespace=~"$namespace",model=~"$model"'),
                 _custom("slo_threshold", "SLO latency threshold (s)", SLO_THRESHOLDS, "1.0"),
                 _custom("slo_target", "SLO target", SLO_TARGETS, "0.99")]
    return dashboard(UIDS["inference"], TITLES["inference"],
                     "Inference per model and engine: traffic, errors, latency percentiles, time to first token "
                     "and per output token, queue time, tokens, and the latency SLO's burn rates and error budget.",
                     variables, [traffic, latency, slo], links_except("inference"))


def _custom(name: str, label: str, values: tuple[str, ...], default: str) -> builders.CustomVariable:
    return (builders.CustomVariable(name).label(label).values(",".join(values))
            .current(models.VariableOption(selected=True, text=default, value=default)))
