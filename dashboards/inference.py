"""Inference: traffic and outcomes, latency percentiles, saturation, and the latency SLO's burn
rates, per model and engine, for every engine: the panels read the schema the normalization rules
record (fleetscope.alerts.inference), so a vLLM, Triton or SDK-instrumented server appears alike."""

from collections.abc import Iterable

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from fleetscope.alerts.inference import PREFIX, SERVED, SERVING_SIGNALS, UNMEASURED_SIGNALS
from fleetscope.dashboards.build import (
    Query,
    Row,
    dashboard,
    datasource_variable,
    label_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import TITLES, UIDS, links_except
from fleetscope.mixin.config import LatencySlo, MonitoringConfig

SERIES = 'cluster=~"$cluster",namespace=~"$namespace",model=~"$model",engine=~"$engine"'
BY = "model, engine"
LEGEND = "{{model}} ({{engine}})"
SLO_TARGETS = (0.9, 0.95, 0.99, 0.995, 0.999)
FAILED = "errors|rejected"
OUTCOMES = "errors|rejected|cancelled|client_errors"
SIGNALS = "|".join((*SERVING_SIGNALS, *UNMEASURED_SIGNALS))


def _schema(name: str, matchers: str = "") -> str:
    return f"{PREFIX}{name}{{{SERIES}{',' + matchers if matchers else ''}}}"


def _sum(name: str, by: str = BY) -> str:
    return f"sum by ({by}) ({_schema(name)})"


def _names(names: str, suffix: str) -> str:
    return f'{{__name__=~"{PREFIX}({names}){suffix}",{SERIES}}}'


def _quantiles(latency: str, quantiles: tuple[str, ...]) -> list[Query]:
    # Quantiles cannot be added across clusters: the slowest cluster's is shown. A quantile inside the
    # engine's first bucket is drawn at that boundary and named so: the histogram says no more than that.
    queries = []
    for quantile in quantiles:
        name = f"p{float(quantile) * 100:g}"
        selector = _schema(f"{latency}_seconds:quantile_rate5m", f'quantile="{quantile}"')
        queries.append(Query(f"max by ({BY}) ({selector})", f"{name} {LEGEND}"))
        below = _schema(f"{latency}_seconds:quantile_upper_bound_rate5m", f'quantile="{quantile}"')
        queries.append(Query(f"max by ({BY}) ({below})", f"{name} below the first boundary {LEGEND}"))
    return queries


def _not_measured(signals: str) -> str:
    matcher = f'signal=~"{signals}"'
    return f"max by ({BY}, signal) ({_schema('not_measured', matcher)})"


def _good(window: str) -> str:
    return _schema(f"request_duration_seconds:slo_good_ratio_rate{window}", 'threshold="$slo_threshold"')


def _burn(window: str) -> str:
    return f"(1 - min by ({BY}) ({_good(window)})) / (1 - $slo_target)"


def build(config: MonitoringConfig | None = None) -> dict:
    config = config or MonitoringConfig()
    # The variables open on the alerts' own objective, so the dashboard a burn-rate page links to shows its burn.
    objective = next((slo for slo in config.inference.slos if slo.latency == "request_duration"), LatencySlo())
    thresholds = dict(config.inference.normalization.slo_thresholds)["request_duration"]
    targets = sorted(set(SLO_TARGETS) | {objective.objective})
    traffic = Row("Traffic and outcomes", [
        timeseries_panel("Requests per second", "Requests finished per second, whatever their outcome.", "reqps",
                         Query(_sum("requests:rate5m"), LEGEND)),
        timeseries_panel("Error ratio", "Share of requests the server failed or refused for overload (errors and "
                                        "rejections); client errors and cancellations are not counted. Absent for "
                                        "engines that count neither.", "percentunit",
                         Query(f"sum by ({BY}) ({_names(FAILED, ':rate5m')})\n/ {_sum('requests:rate5m')} > 0",
                               LEGEND), min=0),
        timeseries_panel("Requests by outcome", "Requests per second that did not succeed, by outcome: errors (the "
                                                "server failed), rejected (overload), cancelled (the client went "
                                                "away), client errors (invalid requests).", "reqps",
                         Query(f'sum by ({BY}, outcome) (label_replace({_names(OUTCOMES, ":rate5m")}, "outcome", '
                               f'"$1", "__name__", "{PREFIX}(.+):rate5m"))', LEGEND + " {{outcome}}"),
                         stacked=True),
        timeseries_panel("Tokens per second", "Input (prompt) and output (generated) tokens per second.", "none",
                         Query(_sum("input_tokens:rate5m"), "input " + LEGEND),
                         Query(_sum("output_tokens:rate5m"), "output " + LEGEND)),
        table_panel("Outcomes not measured", "Outcomes the engine does not count for the model: unknown there, "
                                             "not zero (vLLM counts no client cancellations or invalid requests; "
                                             "before 0.13 no errors either). Their rates are absent above.", "none",
                    Query(_not_measured(OUTCOMES), "state"),
                    columns=("model", "engine", "signal"), mappings={"state": {"1": "not measured"}},
                    width=24, height=6),
    ])
    signals = _serving_signals()
    latency = Row("Latency", [
        timeseries_panel("Request latency p50, p90, p99", "From arrival to the last byte.", "s",
                         *_quantiles("request_duration", ("0.5", "0.9", "0.99"))),
        timeseries_panel("Time to first token p50, p99", "From arrival to the first output token.", "s",
                         *_quantiles("time_to_first_token", ("0.5", "0.99"))),
        timeseries_panel("Time per output token p50, p99", "One observation per request: its time after the first "
                                                           "token over its output tokens after the first.", "s",
                         *_quantiles("time_per_output_token", ("0.5", "0.99"))),
        timeseries_panel("Inter-token latency p50, p99 and mean", "One observation per decode step or token, "
                                                                  "weighted by tokens: what a streaming reader "
                                                                  "sees between tokens.", "s",
                         *_quantiles("inter_token_latency", ("0.5", "0.99")),
                         Query(f"max by ({BY}) ({_schema('inter_token_latency_seconds:mean_rate5m')})",
                               f"mean {LEGEND}")),
        timeseries_panel("Queue time p50, p99", "Time a request waited before the model started on it.", "s",
                         *_quantiles("queue_duration", ("0.5", "0.99")), width=24),
    ])
    saturation = Row("Saturation", [
        timeseries_panel("KV cache usage", "The fullest replica's KV cache, 0-1. Near full, new requests wait for "
                                           "blocks and running ones are preempted.", "percentunit",
                         Query(f"max by ({BY}) ({_schema('kv_cache_usage_ratio')})", LEGEND),
                         min=0, max=1, thresholds=[(0.9, "orange"), (0.95, "red")], width=8),
        timeseries_panel("Requests running and waiting", "Requests in a batch on the GPUs, and requests queued for "
                                                         "one. A queue that keeps growing outpaces capacity.", "none",
                         Query(_sum("requests_running"), "running " + LEGEND),
                         Query(_sum("requests_waiting"), "waiting " + LEGEND), min=0, width=8),
        timeseries_panel("Preemptions per second", "Running requests evicted from the KV cache and recomputed "
                                                   "later (vLLM preemptions, SGLang retractions).", "none",
                         Query(_sum("preemptions:rate5m"), LEGEND), min=0, width=8),
    ])
    gpus, tokens = _schema("gpus:count"), _schema("output_tokens:rate5m")
    efficiency = Row("Serving efficiency: the GPUs that serve each model", [
        timeseries_panel("Energy per 1k output tokens", "GPU energy per thousand output tokens: the energy of the "
                                                        "GPUs serving the model (their energy counters, else their "
                                                        "power), split by share, over its output tokens.", "joule",
                         Query(f"1000 * sum by ({BY}) ({_schema('energy_joules_per_output_token:rate5m')} "
                               f"* on (cluster, namespace, model, engine) {tokens})\n/ sum by ({BY}) ({tokens})",
                               LEGEND), min=0),
        timeseries_panel("Output tokens per GPU-second", "Output tokens per second over the GPUs serving the model, "
                                                         "per cluster.", "none",
                         Query(_schema("output_tokens_per_gpu_second:rate5m"), LEGEND + " {{cluster}}"), min=0),
        timeseries_panel("GPUs and their utilization", "GPUs serving each model (shares of shared GPUs added up), "
                                                       "and their utilization, weighted by share.", "none",
                         Query(f"sum by ({BY}) ({gpus})", "GPUs " + LEGEND),
                         Query(f"sum by ({BY}) ({_schema('gpu_utilization_ratio')} "
                               f"* on (cluster, namespace, model, engine) {gpus})\n/ sum by ({BY}) ({gpus}) > 0",
                               "utilization " + LEGEND), min=0),
        timeseries_panel("GPU-seconds per request", "GPUs serving the model over its requests per second: the GPU "
                                                    "time one request costs, per cluster.", "s",
                         Query(_schema("gpu_seconds_per_request:rate5m"), LEGEND + " {{cluster}}"), min=0),
        stat_panel("GPU-hours idle while serving", "GPU-hours the model's GPUs spent idle over the dashboard's "
                                                   "time range: GPUs times (1 - utilization), added up.", "h",
                   Query(f"sum by ({BY}) (avg_over_time(((1 - {_schema('gpu_utilization_ratio')}) "
                         f"* on (cluster, namespace, model, engine) {gpus})[$__range:$__rate_interval]))"
                         " * $__range_s / 3600", LEGEND), width=12),
        stat_panel("Power of the serving GPUs", "Power the model's GPUs draw now, by share.", "watt",
                   Query(f"sum by ({BY}) ({_schema('gpu_power_watts')})", LEGEND), width=12),
    ])
    slo = Row("Latency SLO: $slo_target of requests within $slo_threshold s", [
        timeseries_panel("Burn rate, 1h and 5m", "How fast the error budget burns: 1 spends it exactly over the "
                                                 "SLO period; 14.4 over 1h and 5m pages (SRE Workbook). Engines "
                                                 "without a bucket at the threshold have no ratio (see "
                                                 "FleetscopeInferenceSLOUnmeasurable).", "none",
                         Query(_burn("1h"), "1h " + LEGEND), Query(_burn("5m"), "5m " + LEGEND),
                         thresholds=[(6, "orange"), (14.4, "red")]),
        timeseries_panel("Burn rate, 6h and 30m", "6 over 6h and 30m pages too; 3 over 1d and 1 over 3d open "
                                                  "tickets.", "none",
                         Query(_burn("6h"), "6h " + LEGEND), Query(_burn("30m"), "30m " + LEGEND),
                         thresholds=[(6, "orange"), (14.4, "red")]),
        stat_panel("30-day budget spent in 3 days", "Share of a 30-day error budget that the last 3 days spent: "
                                                    "above 10% is faster than the budget allows.", "percentunit",
                   Query(f"{_burn('3d')} * 3 / 30", LEGEND), thresholds=[(0.1, "orange"), (0.25, "red")],
                   width=12),
        stat_panel("Requests within the threshold, 3 days", "Share of requests that finished within "
                                                            "$slo_threshold s over 3 days.", "percentunit",
                   Query(f"min by ({BY}) ({_good('3d')})", LEGEND), width=12),
    ])
    variables = [datasource_variable(),
                 label_variable("cluster", "Cluster", SERVED),
                 label_variable("namespace", "Namespace", SERVED, 'cluster=~"$cluster"'),
                 label_variable("model", "Model", SERVED, 'cluster=~"$cluster",namespace=~"$namespace"'),
                 label_variable("engine", "Engine", SERVED,
                                'cluster=~"$cluster",namespace=~"$namespace",model=~"$model"'),
                 _custom("slo_threshold", "SLO latency threshold (s)", thresholds, objective.threshold),
                 _custom("slo_target", "SLO target", targets, objective.objective)]
    return dashboard(UIDS["inference"], TITLES["inference"],
                     "Inference per model and engine, over every engine the normalization rules map: traffic and "
                     "outcomes, latency percentiles, saturation (KV cache, queue, preemptions), serving efficiency "
                     "(energy per token, GPUs and their use), and the latency SLO's burn rates.", variables,
                     [traffic, latency, saturation, signals, efficiency, slo], links_except("inference"))


def _serving_signals() -> Row:
    # Ratios and means cannot be added across clusters: the worst cluster's is shown.
    def phase(name: str, label: str) -> list[Query]:
        mean = Query(f"max by ({BY}) ({_schema(f'{name}_seconds:mean_rate5m')})", f"{label} mean {LEGEND}")
        return [mean] + [Query(query.expr, f"{label} {query.legend}") for query in _quantiles(name, ("0.9",))]

    return Row("Serving signals", [
        timeseries_panel("Prefix-cache hit ratio", "Share of prompt tokens found in the prefix cache (the worst "
                                                   "cluster's). A fall below its usual level means prompts are "
                                                   "computed again: time to first token rises next. Engines that "
                                                   "count no prefix cache are listed below as not measured.",
                         "percentunit", Query(f"min by ({BY}) ({_schema('prefix_cache_hit_ratio:rate5m')})", LEGEND),
                         min=0, max=1),
        timeseries_panel("Speculative-decoding acceptance", "Share of draft tokens the target model accepted (the "
                                                            "worst cluster's). Falling, the draft model costs more "
                                                            "than it saves. Absent where speculative decoding is "
                                                            "off.", "percentunit",
                         Query(f"min by ({BY}) ({_schema('spec_decode_acceptance_ratio:rate5m')})", LEGEND),
                         min=0, max=1),
        timeseries_panel("Prefill and decode time per request", "Per request: from first scheduled to its first "
                                                                "token (prefill), and from the first token to the "
                                                                "last (decode); mean and p90.", "s",
                         *phase("prefill_duration", "prefill"), *phase("decode_duration", "decode")),
        timeseries_panel("KV transfer time", "Time to move a request's KV cache from a prefill worker to a decode "
                                             "worker in disaggregated serving (vLLM's NIXL connector, SGLang's "
                                             "disaggregation; Triton's TensorRT-LLM backend serves a mean only); "
                                             "mean and p90. Absent where serving is not disaggregated.", "s",
                         *phase("kv_transfer_duration", "transfer")),
        timeseries_panel("LoRA adapters running", "LoRA adapters with requests running, per model (vLLM with "
                                                  "--enable-lora; an adapter whose requests wait for a slot is not "
                                                  "counted), and each adapter while it runs. Requests per adapter "
                                                  "are not measured by any engine: listed below.", "none",
                         Query(f"max by ({BY}) ({_schema('lora_adapters_running')})", LEGEND),
                         Query(f"max by ({BY}, adapter) ({_schema('lora_adapter_running')})",
                               "{{adapter}} on " + LEGEND), min=0),
        table_panel("Serving signals not measured", "Serving signals the engine's mapping reads no series for "
                                                    "(docs/inference.md, the engine table): unknown there, not "
                                                    "zero.", "none",
                    Query(_not_measured(SIGNALS), "state"),
                    columns=("model", "engine", "signal"), mappings={"state": {"1": "not measured"}},
                    width=24, height=6),
    ])


def _custom(name: str, label: str, values: Iterable[float], default: float) -> builders.CustomVariable:
    return (builders.CustomVariable(name).label(label).values(",".join(f"{value:g}" for value in values))
            .current(models.VariableOption(selected=True, text=f"{default:g}", value=f"{default:g}")))
