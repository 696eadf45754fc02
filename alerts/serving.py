"""Alerts on inference serving, read from the normalized recording rules of inference.py, so
they hold for every engine: latency SLOs as multi-window, multi-burn-rate alerts (the SRE
Workbook, chapter 5), error ratio, queue time and time to first token, and the saturation that
comes before them (a full KV cache, preemptions, a growing queue)."""

from __future__ import annotations

from fleetscope import durations
from fleetscope.alerts.inference import PREFIX
from fleetscope.alerts.rule import Alert, group
from fleetscope.mixin.config import LatencySlo, MonitoringConfig
from fleetscope.mixin.matchers import matchers

_MODEL = ("{{ $labels.model }} ({{ $labels.engine }}){{ with $labels.namespace }} in namespace {{ . }}{{ end }}"
          "{{ with $labels.cluster }} of cluster {{ . }}{{ end }}")
_SERIES = "cluster, namespace, model, engine"
THIRTY_DAYS = 30 * 86400


def _budget(objective: float) -> str:
    return f"{1 - objective:.6g}"


def burn_rate_alerts(slo: LatencySlo, config: MonitoringConfig) -> list[Alert]:
    window_rule = f"{PREFIX}{slo.latency}_seconds:slo_good_ratio_rate"
    selector = matchers(slo.selector, f'threshold="{slo.threshold:g}"')
    budget = _budget(slo.objective)
    what = f"{slo.latency.replace('_', ' ')} at or under {slo.threshold:g} s"
    alerts = []
    # Below min_requests_per_second a handful of slow requests is a burn rate in the hundreds: no page on noise.
    busy = f"and on ({_SERIES})\n{PREFIX}requests:rate5m > {config.inference.min_requests_per_second:g}"
    for severity, long, short, rate, for_ in config.inference.burn_rates:
        def burn(window: str) -> str:
            return f"(1 - {window_rule}{window}{{{selector}}}) / {budget}"
        alerts.append(Alert(
            "FleetscopeInferenceLatencyBudgetBurn",
            f"{burn(long)} > {rate:g}\nand\n{burn(short)} > {rate:g}\n{busy}", severity, for_=for_,
            labels={"latency": slo.latency, "objective": f"{slo.objective:g}", "long_window": long,
                    "short_window": short},
            summary=f"{{{{ $labels.model }}}} burns its {slo.latency.replace('_', ' ')} error budget "
                    f"{rate:g}x too fast",
            description=f"{_MODEL} is spending the error budget of its objective ({slo.objective:g} of requests "
                        f"with {what}) {{{{ $value | printf \"%.1f\" }}}} times as fast as the objective allows "
                        f"over {long}, and over {short} too. At {rate:g}x, "
                        f"{rate * durations.parse(long) / THIRTY_DAYS:.1%} of a 30-day budget goes in {long}."))
    return alerts


def unmeasurable_slo_alert(slo: LatencySlo) -> Alert:
    """Info where an engine serves the SLO's histogram without a bucket at its threshold, so that
    the SLO cannot be judged there, rather than judging it at another threshold under the same name."""
    what = slo.latency.replace("_", " ")
    selector = matchers(slo.selector, f'threshold="{slo.threshold:g}"')
    return Alert(
        "FleetscopeInferenceSLOUnmeasurable", f"{PREFIX}{slo.latency}_seconds:slo_threshold_missing{{{selector}}}",
        "info", for_="1h", labels={"latency": slo.latency},
        summary=f"{{{{ $labels.model }}}}'s {what} SLO at {slo.threshold:g} s cannot be judged on "
                f"{{{{ $labels.engine }}}}",
        description=f"{_MODEL} serves its {what} histogram without a bucket boundary at {slo.threshold:g} s, so no "
                    "share of requests under the threshold can be read from it and its latency budget alerts stay "
                    "silent. Add the boundary with the engine's bucket setting (docs/inference.md, the engine "
                    "table), or set the objective at a boundary the engine has.")


def _slow_p90(name: str, latency: str, threshold: float, config: MonitoringConfig, summary: str, waits: str,
              consequence: str) -> Alert:
    i = config.inference
    return Alert(name, f'{PREFIX}{latency}_seconds:quantile_rate5m{{quantile="0.9"}} > {threshold:g}\n'
                       f"and on ({_SERIES})\n{PREFIX}requests:rate5m > {i.min_requests_per_second:g}",
                 "ticket", for_=i.latency_for, summary=summary,
                 description=f"One request in ten to {_MODEL} waits longer than {{{{ $value | humanizeDuration }}}} "
                             f"{waits} (p90 over 5 minutes, threshold {threshold:g} s), for {i.latency_for}"
                             f"{consequence}.")


def serving_alerts(config: MonitoringConfig) -> list[Alert]:
    i = config.inference
    busy = f"{PREFIX}requests:rate5m > {i.min_requests_per_second:g}"
    alerts = [alert for slo in i.slos for alert in burn_rate_alerts(slo, config)]
    alerts += [unmeasurable_slo_alert(slo) for slo in i.slos]
    alerts += [
        Alert("FleetscopeInferenceErrorRatioHigh",
              f"{PREFIX}error_ratio:rate5m > {i.error_ratio:g}\nand on ({_SERIES})\n{busy}", "ticket",
              for_=i.error_ratio_for,
              summary="{{ $labels.model }} fails {{ $value | humanizePercentage }} of its requests",
              description=f"{_MODEL} has failed {{{{ $value | humanizePercentage }}}} of its requests over 5 minutes, "
                          f"for {i.error_ratio_for} (threshold {i.error_ratio:.0%})."),
        _slow_p90("FleetscopeInferenceQueueTimeHigh", "queue_duration", i.queue_p90_seconds, config,
                  "Requests to {{ $labels.model }} wait {{ $value | humanizeDuration }} in the queue",
                  "before it is scheduled", ": the server is short of capacity"),
        _slow_p90("FleetscopeInferenceTimeToFirstTokenHigh", "time_to_first_token", i.time_to_first_token_p90_seconds,
                  config, "{{ $labels.model }} takes {{ $value | humanizeDuration }} to its first token",
                  "for its first token", ""),
    ]
    return alerts + saturation_alerts(config)


def saturation_alerts(config: MonitoringConfig) -> list[Alert]:
    i = config.inference
    waiting = f"{PREFIX}requests_waiting"
    return [
        Alert("FleetscopeInferenceKVCacheNearFull", f"{PREFIX}kv_cache_usage_ratio > {i.kv_cache_usage_ratio:g}",
              "ticket", for_=i.kv_cache_for,
              summary="{{ $labels.model }}'s KV cache is {{ $value | humanizePercentage }} full",
              description=f"The fullest replica of {_MODEL} has held its KV cache above "
                          f"{i.kv_cache_usage_ratio:.0%} for {i.kv_cache_for}: new requests wait for blocks, and "
                          "running ones are preempted and recomputed, before latency shows it."),
        Alert("FleetscopeInferencePreemptionsRising",
              f"{PREFIX}preemptions:rate5m > {i.preemptions_per_second:g}", "ticket", for_=i.preemptions_for,
              summary="{{ $labels.model }} preempts {{ $value | printf \"%.2f\" }} requests a second",
              description=f"{_MODEL} has evicted running requests from its KV cache at "
                          f"{{{{ $value | printf \"%.2f\" }}}} a second for {i.preemptions_for} "
                          f"(threshold {i.preemptions_per_second:g}): their work is recomputed, so throughput falls "
                          "and time per output token rises."),
        Alert("FleetscopeInferenceQueueGrowing",
              f"{waiting} > {i.queue_waiting:g}\nand on ({_SERIES})\nderiv({waiting}[{i.queue_growing_for}]) > 0",
              "ticket", for_=i.queue_growing_for,
              summary="{{ $value }} requests wait for {{ $labels.model }}, and more every minute",
              description=f"More than {i.queue_waiting:g} requests have waited for {_MODEL}, and the queue has grown "
                          f"over {i.queue_growing_for}: arrivals outpace what the replicas run, so queue time and "
                          "time to first token will grow until capacity is added."),
    ]


def efficiency_alerts(config: MonitoringConfig) -> list[Alert]:
    """From efficiency.py's schema: a model's energy per token against its own baseline, and serving GPUs
    kept nearly idle."""
    i = config.inference
    per_token = f"{PREFIX}energy_joules_per_output_token:rate5m"
    baseline = f"quantile_over_time(0.5, {per_token}[{i.energy_baseline_window}])"
    utilization = f"avg_over_time({PREFIX}gpu_utilization_ratio[{i.underused_window}])"
    return [
        Alert("FleetscopeInferenceEnergyPerTokenHigh",
              f"{per_token}\n> {i.energy_per_token_factor:g} * {baseline}\n"
              f"and on ({_SERIES})\ncount_over_time({per_token}[{i.energy_baseline_window}]) >= 60\n"
              f"and on ({_SERIES})\n{PREFIX}requests:rate5m > {i.min_requests_per_second:g}",
              "ticket", for_=i.energy_per_token_for,
              summary="{{ $labels.model }} spends {{ $value | printf \"%.2f\" }} J per output token, "
                      f"above its {i.energy_baseline_window} median",
              description=f"{_MODEL} has spent {{{{ $value | printf \"%.2f\" }}}} joules of GPU energy per output "
                          f"token for {i.energy_per_token_for}, more than {i.energy_per_token_factor:g} times its "
                          f"median over {i.energy_baseline_window}: a release, a configuration or a batch size "
                          "made each token dearer, or the GPUs serve fewer tokens for the same power."),
        Alert("FleetscopeInferenceGPUsUnderused",
              f"{utilization} < {i.underused_utilization:g}\nand on ({_SERIES})\n{PREFIX}gpus:count >= 1",
              "ticket", for_=i.underused_for,
              summary="{{ $labels.model }}'s GPUs sit at {{ $value | humanizePercentage }} utilization",
              description=f"The GPUs serving {_MODEL} have averaged {{{{ $value | humanizePercentage }}}} "
                          f"utilization over {i.underused_window}, below {i.underused_utilization:.0%}, for "
                          f"{i.underused_for}: the model holds more replicas or GPUs than its traffic needs."),
    ]


def rule_groups(config: MonitoringConfig) -> list[dict]:
    return [group("fleetscope-inference-alerts", config.team("serving"), config, serving_alerts(config), "inference")]


def efficiency_rule_groups(config: MonitoringConfig) -> list[dict]:
    return [group("fleetscope-inference-efficiency-alerts", config.team("serving"), config, efficiency_alerts(config),
                  "inference")]
