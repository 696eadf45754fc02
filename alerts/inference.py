"""Recording rules that put every serving engine's request telemetry into one schema.

Every rule records, by (cluster, namespace, model, engine):
  fleetscope:inference_requests:rate5m                    finished requests per second
  fleetscope:inference_errors:rate5m                      requests the server failed, per second
  fleetscope:inference_cancelled:rate5m                   requests cancelled or aborted, per second
  fleetscope:inference_error_ratio:rate5m                 errors / requests
  fleetscope:inference_requests_in_flight                 requests admitted and not finished
  fleetscope:inference_input_tokens:rate5m, ..._output_tokens:rate5m
  fleetscope:inference_<latency>_seconds:quantile_rate5m  {quantile="0.5|0.9|0.99"}
  fleetscope:inference_<latency>_seconds:mean_rate5m
  fleetscope:inference_<latency>_seconds:slo_good_ratio_rate<window>
      {threshold="1", effective_threshold="1"}: the share of requests at or under the threshold,
      read off the bucket at the largest boundary not above it (effective_threshold), so an
      engine without that exact boundary is judged a little strictly, never leniently.
where <latency> is request_duration, time_to_first_token, time_per_output_token or
queue_duration. What an engine does not measure is absent, not zero: see engines.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fleetscope.alerts.engines import ENGINES, Engine, Histogram

TOPOLOGY = ("cluster", "namespace", "model")
PREFIX = "fleetscope:inference_"
NO_MODEL, HAS_MODEL = 'model=""', 'model!=""'
LATENCIES = ("request_duration", "time_to_first_token", "time_per_output_token", "queue_duration")


@dataclass(frozen=True)
class NormalizationConfig:
    rate_window: str = "5m"
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    # The windows of the SRE Workbook's multi-window, multi-burn-rate alerts.
    slo_windows: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    slo_interval: str = "1m"  # the SLO ratios over long windows are costly; they are evaluated this often
    slo_thresholds: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("request_duration", (1.0, 2.5, 5.0, 10.0)),
        ("time_to_first_token", (0.25, 0.5, 1.0, 2.5)),
    )


def _by(engine: Engine, *extra: str) -> str:
    return ", ".join(TOPOLOGY + (("engine",) if engine.own_engine_label else ()) + extra)


def _selector(names: Iterable[str]) -> str:
    names = tuple(names)
    if len(names) == 1:
        return names[0]
    if any("{" in name for name in names):
        raise ValueError(f"several metrics with selectors cannot be read together: {names}")
    return '{__name__=~"%s"}' % "|".join(names)


def _with_selector(metric: str, matcher: str) -> str:
    if metric.endswith("}"):
        return metric[:-1] + ", " + matcher + "}"
    if metric.startswith("{"):
        return "{" + matcher + ", " + metric[1:]
    return metric + "{" + matcher + "}"


def _with_model(engine: Engine, metric: str, window: str | None) -> str:
    """The series of `metric` (under rate() when a window is given) with a `model` label."""
    def read(selector: str) -> str:
        return f"rate({selector}[{window}])" if window else selector

    if engine.model_label == "model":
        return read(metric)
    if engine.model_label is not None:
        return f'label_replace({read(metric)}, "model", "$1", "{engine.model_label}", "(.*)")'
    from_job = f'label_replace({read(_with_selector(metric, NO_MODEL))}, "model", "$1", "job", "(.*)")'
    return f"({from_job} or {read(_with_selector(metric, HAS_MODEL))})"


def _sum_rate(engine: Engine, metrics: Iterable[str], window: str, *extra: str) -> str:
    metrics = tuple(metrics)
    if len(metrics) == 1:
        return f"sum by ({_by(engine, *extra)}) ({_with_model(engine, metrics[0], window)})"
    # rate() drops metric names, so the counters' series would collide when joined with `or`:
    # a label naming each counter keeps them apart until the sum.
    tagged = " or ".join(f'label_replace({_with_model(engine, metric, window)}, "source_counter", "{metric}", "", "")'
                         for metric in metrics)
    return f"sum by ({_by(engine, *extra)}) ({tagged})"


def _histogram_rate(engine: Engine, histogram: Histogram, suffix: str, window: str, *extra: str,
                    matcher: str = "") -> str:
    reads = []
    for name in (histogram.metric,) + histogram.alternatives:
        metric = f"{name}_{suffix}" if not matcher else _with_selector(f"{name}_{suffix}", matcher)
        reads.append(_sum_rate(engine, (metric,), window, *extra))
    return reads[0] if len(reads) == 1 else "(" + " or ".join(reads) + ")"


def le_matcher(bound: float) -> str:
    """Matches the le label of `bound` as Go, C++ and Python clients write it ("1", "1.0", "0.5")."""
    pattern = f"{int(bound)}(\\.0)?" if float(bound).is_integer() else re.escape(repr(float(bound)))
    return 'le=~"' + pattern.replace("\\", "\\\\") + '"'  # backslashes doubled inside a PromQL string


def _rule(record: str, expr: str, engine: Engine, **labels: str) -> dict:
    rule = {"record": record, "expr": expr}
    all_labels = {} if engine.own_engine_label else {"engine": engine.name}
    all_labels.update(labels)
    if all_labels:
        rule["labels"] = all_labels
    return rule


def engine_rules(engine: Engine, config: NormalizationConfig) -> list[dict]:
    w = config.rate_window
    rules = [_rule(f"{PREFIX}requests:rate{w}", _sum_rate(engine, engine.requests, w), engine)]
    if engine.errors:
        rules.append(_rule(f"{PREFIX}errors:rate{w}", _sum_rate(engine, engine.errors, w), engine))
    if engine.cancelled:
        rules.append(_rule(f"{PREFIX}cancelled:rate{w}", _sum_rate(engine, engine.cancelled, w), engine))
    if engine.in_flight:
        rules.append(_rule(f"{PREFIX}requests_in_flight",
                           f"sum by ({_by(engine)}) ({_with_model(engine, _selector(engine.in_flight), None)})",
                           engine))
    for direction, metric in (("input", engine.input_tokens), ("output", engine.output_tokens)):
        if metric:
            rules.append(_rule(f"{PREFIX}{direction}_tokens:rate{w}", _sum_rate(engine, (metric,), w), engine))
    for latency in LATENCIES:
        histogram: Histogram | None = getattr(engine, latency)
        record = f"{PREFIX}{latency}_seconds"
        if histogram is not None:
            buckets = _histogram_rate(engine, histogram, "bucket", w, "le")
            for quantile in config.quantiles:
                rules.append(_rule(f"{record}:quantile_rate{w}", f"histogram_quantile({quantile}, {buckets})",
                                   engine, quantile=str(quantile)))
            rules.append(_rule(f"{record}:mean_rate{w}", f"({_histogram_rate(engine, histogram, 'sum', w)})\n/\n"
                                                       f"({_histogram_rate(engine, histogram, 'count', w)} > 0)",
                               engine))
        counters = getattr(engine, f"mean_{latency}", None)
        if counters is not None:
            total, counts, scale = counters
            rules.append(_rule(f"{record}:mean_rate{w}", f"{_sum_rate(engine, (total,), w)} * {scale:g}\n/\n"
                                                       f"({_sum_rate(engine, counts, w)} > 0)", engine))
    return rules


def slo_rules(engine: Engine, config: NormalizationConfig) -> list[dict]:
    rules = []
    for latency, thresholds in config.slo_thresholds:
        histogram: Histogram | None = getattr(engine, latency)
        if histogram is None or not histogram.bounds:
            continue
        for threshold in thresholds:
            usable = [bound for bound in histogram.bounds if bound <= threshold]
            if not usable:
                continue
            bound = max(usable)
            for window in config.slo_windows:
                good = _histogram_rate(engine, histogram, "bucket", window, matcher=le_matcher(bound))
                total = _histogram_rate(engine, histogram, "count", window)
                rules.append(_rule(f"{PREFIX}{latency}_seconds:slo_good_ratio_rate{window}",
                                   f"({good})\n/\n({total} > 0)", engine, threshold=f"{threshold:g}",
                                   effective_threshold=f"{bound:g}"))
    return rules


def rule_groups(config: NormalizationConfig | None = None) -> dict:
    config = config or NormalizationConfig()
    w = config.rate_window
    groups = [{"name": f"fleetscope-inference-{engine.name}", "rules": engine_rules(engine, config)}
              for engine in ENGINES]
    groups.append({"name": "fleetscope-inference-ratios", "rules": [{
        "record": f"{PREFIX}error_ratio:rate{w}",
        "expr": f"{PREFIX}errors:rate{w}\n/\n({PREFIX}requests:rate{w} > 0)",
    }]})
    for engine in ENGINES:
        rules = slo_rules(engine, config)
        if rules:
            groups.append({"name": f"fleetscope-inference-slo-{engine.name}", "interval": config.slo_interval,
                           "rules": rules})
    return {"groups": groups}
