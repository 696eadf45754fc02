"""Recording rules that put every serving engine's request telemetry into one schema.

Every rule records, by (cluster, namespace, model, engine); see engines.py for what each means:
  fleetscope:inference_served                             1 for every model and engine served (for filters)
  fleetscope:inference_requests:rate5m                    finished requests per second
  fleetscope:inference_errors:rate5m                      requests the server failed, per second
  fleetscope:inference_rejected:rate5m                    requests refused for overload, per second
  fleetscope:inference_cancelled:rate5m                   requests the client cancelled or abandoned
  fleetscope:inference_client_errors:rate5m               invalid requests
  fleetscope:inference_error_ratio:rate5m                 (errors + rejected) / requests
  fleetscope:inference_not_measured                       {signal="errors|rejected|cancelled|client_errors"}
      1 where the engine serves the model but does not count that outcome (it has no counter for it,
      or its release does not serve the counter): the outcome is unknown there, not zero; and
      {signal="<serving signal>"} where the engine's mapping reads no series for that serving signal
  fleetscope:inference_requests_in_flight                 requests admitted and not finished
  fleetscope:inference_requests_running, ..._waiting      in a batch, and queued
  fleetscope:inference_kv_cache_usage_ratio               0-1, the fullest replica's
  fleetscope:inference_preemptions:rate5m                 requests evicted and rescheduled, per second
  fleetscope:inference_input_tokens:rate5m, ..._output_tokens:rate5m
  fleetscope:inference_<latency>_seconds:quantile_rate5m  {quantile="0.5|0.9|0.99"}
      where the quantile lies above the engine's first bucket boundary; inside the first bucket the
      histogram cannot place it (interpolating would report half the boundary), so instead
  fleetscope:inference_<latency>_seconds:quantile_upper_bound_rate5m  {quantile="0.5|0.9|0.99"}
      is that first boundary: the quantile is at most this (engines whose boundaries are not fixed: none)
  fleetscope:inference_<latency>_seconds:mean_rate5m
  fleetscope:inference_<latency>_seconds:slo_good_ratio_rate<window>   {threshold="1"}
      the share of requests at or under the threshold, read off the bucket whose boundary is the
      threshold exactly; an engine without that boundary gets no ratio, and instead
  fleetscope:inference_<latency>_seconds:slo_threshold_missing         {threshold="1"}
      is 1 where the engine serves the histogram but no bucket at the threshold.
where <latency> is request_duration, time_to_first_token, time_per_output_token,
inter_token_latency or queue_duration. The serving signals:
  fleetscope:inference_prefix_cache_hit_ratio:rate5m      prompt tokens found in the prefix cache / looked up
  fleetscope:inference_spec_decode_acceptance_ratio:rate5m   draft tokens accepted / proposed
  fleetscope:inference_spec_decode_accepted_tokens_per_draft:rate5m
  fleetscope:inference_<phase>_seconds:quantile_rate5m, ...:quantile_upper_bound_rate5m, ...:mean_rate5m
      as the latencies above, where <phase> is prefill_duration, decode_duration (per request) or
      kv_transfer_duration (per transfer between prefill and decode workers)
  fleetscope:inference_lora_adapter_running               {adapter="<name>"} 1 for each LoRA adapter with requests
                                                          running (on any replica)
  fleetscope:inference_lora_adapters_running              how many; 0 where the engine shows none running
  fleetscope:inference_not_measured{signal="lora_requests"}   requests per adapter: no engine mapped counts them
What an engine does not measure is absent, not zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fleetscope.alerts.engines import ENGINES, Engine, Histogram, LoraInfo
from fleetscope.mixin.config import NormalizationConfig

TOPOLOGY = ("cluster", "namespace", "model")
SERIES = ", ".join(TOPOLOGY + ("engine",))
PREFIX = "fleetscope:inference_"
NO_MODEL, HAS_MODEL = 'model=""', 'model!=""'
LATENCIES = ("request_duration", "time_to_first_token", "time_per_output_token", "inter_token_latency",
             "queue_duration")
OUTCOMES = ("errors", "rejected", "cancelled", "client_errors")
PHASES = ("prefill_duration", "decode_duration", "kv_transfer_duration")
# Each serving signal (its `signal` label where not measured) and the Engine fields it needs, all of them.
SERVING_SIGNALS = {
    "prefix_cache_hit_ratio": ("prefix_cache_queries", "prefix_cache_hits"),
    "spec_decode_acceptance_ratio": ("spec_decode_draft_tokens", "spec_decode_accepted_tokens"),
    **{phase: (phase,) for phase in PHASES},
    "lora_adapters_running": ("lora_info",),
}
# Requests per LoRA adapter: no engine mapped here counts them (vLLM 0.32's request counters label the base model's
# served name, an adapter's requests included: seen in its lab), so every engine records them as not measured.
UNMEASURED_SIGNALS = ("lora_requests",)
LORA_POSITIONS = 16  # entries read from a comma-joined list of adapters; a longer list is not measured
SERVED = f"{PREFIX}served"


def selected(config: NormalizationConfig) -> tuple[Engine, ...]:
    """The engines whose rules are recorded: config.engines, or every one where it names none."""
    return tuple(engine for engine in ENGINES if not config.engines or engine.name in config.engines)


def schema_labels(engine: Engine, *extra: str) -> str:
    return ", ".join(TOPOLOGY + (("engine",) if engine.own_engine_label else ()) + extra)


def _with_selector(metric: str, matcher: str) -> str:
    if metric.endswith("}"):
        return metric[:-1] + ", " + matcher + "}"
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


def summed(engine: Engine, metrics: Iterable[str], window: str | None, *extra: str, aggregation: str = "sum") -> str:
    """The metrics' series (their rates when a window is given) added up by the schema's labels."""
    metrics = tuple(metrics)
    reads = [_sum_names(engine, metrics, window, *extra, aggregation=aggregation)]
    for prefix, older in engine.renames:
        renamed = tuple(older + m[len(prefix):] if m.startswith(prefix) else m for m in metrics)
        reads.append(_sum_names(engine, renamed, window, *extra, aggregation=aggregation))
    return _first_of(reads)


def _sum_names(engine: Engine, metrics: tuple[str, ...], window: str | None, *extra: str, aggregation: str) -> str:
    if len(metrics) == 1:
        return f"{aggregation} by ({schema_labels(engine, *extra)}) ({_with_model(engine, metrics[0], window)})"
    # rate() drops metric names, and gauges of different names may share labels, so the series would
    # collide when joined with `or`: a label naming each metric keeps them apart until the sum.
    tagged = " or ".join(f'label_replace({_with_model(engine, metric, window)}, "source_metric", "{i}", "", "")'
                         for i, metric in enumerate(metrics))
    return f"{aggregation} by ({schema_labels(engine, *extra)}) ({tagged})"


def _first_of(reads: list[str]) -> str:
    """The first read that has series, for each set of labels: names that replaced one another."""
    return reads[0] if len(reads) == 1 else "(" + " or ".join(reads) + ")"


def _histogram(engine: Engine, histogram: Histogram, suffix: str, window: str | None, *extra: str,
               matcher: str = "", aggregation: str = "sum") -> str:
    reads = []
    for name in (histogram.metric,) + histogram.alternatives:
        metric = f"{name}_{suffix}" if not matcher else _with_selector(f"{name}_{suffix}", matcher)
        reads.append(summed(engine, (metric,), window, *extra, aggregation=aggregation))
    return _first_of(reads)


def _scaled(expr: str, seconds_per_unit: float) -> str:
    return expr if seconds_per_unit == 1 else f"{expr} * {seconds_per_unit:g}"


def le_matcher(bound: float) -> str:
    """Matches the le label of `bound` as Go, C++ and Python clients write it ("1", "1.0", "0.5")."""
    pattern = f"{int(bound)}(\\.0)?" if float(bound).is_integer() else re.escape(repr(float(bound)))
    return 'le=~"' + pattern.replace("\\", "\\\\") + '"'  # backslashes doubled inside a PromQL string


def schema_rule(record: str, expr: str, engine: Engine, **labels: str) -> dict:
    rule: dict[str, str | dict[str, str]] = {"record": record, "expr": expr}
    all_labels = {} if engine.own_engine_label else {"engine": engine.name}
    all_labels.update(labels)
    if all_labels:
        rule["labels"] = all_labels
    return rule


def _presence(engine: Engine) -> str | None:
    """1 for every model the engine serves, from the first signal it has of requests, load or tokens."""
    for metrics, window in ((engine.requests, None), (engine.in_flight or engine.running + engine.waiting, None),
                            ((engine.output_tokens,) if engine.output_tokens else (), None)):
        if metrics:
            return summed(engine, metrics, window, aggregation="group")
    return None


def _outcome_rules(engine: Engine, w: str) -> list[dict]:
    rules = []
    if engine.requests:
        requests = summed(engine, engine.requests, w)
        rules.append(schema_rule(f"{PREFIX}requests:rate{w}", requests, engine))
    for outcome in OUTCOMES:
        counters = getattr(engine, outcome)
        if not counters or not engine.requests:
            continue
        read = summed(engine, counters, w)
        if not engine.outcomes_created_at_start:
            # An engine that counts an outcome and has seen none has a zero, not nothing: its selector
            # matches no series until the first one.
            read = f"{read}\nor\n{requests} * 0"
        rules.append(schema_rule(f"{PREFIX}{outcome}:rate{w}", read, engine))
    return rules + _not_measured_rules(engine)


def _not_measured_rules(engine: Engine) -> list[dict]:
    served = _presence(engine)
    if served is None:
        return []
    rules = []
    for outcome in OUTCOMES:
        counters = getattr(engine, outcome)
        if not counters or not engine.requests:
            rules.append(schema_rule(f"{PREFIX}not_measured", served, engine, signal=outcome))
        elif engine.outcomes_created_at_start:
            # Created at start where the release counts it: absent, the release does not.
            counted = summed(engine, counters, None, aggregation="group")
            rules.append(schema_rule(f"{PREFIX}not_measured", f"{served}\nunless\n{counted}", engine,
                                     signal=outcome))
    for signal in SERVING_SIGNALS:
        if not serves(engine, signal):
            rules.append(schema_rule(f"{PREFIX}not_measured", served, engine, signal=signal))
        elif signal in engine.unmeasured_where_absent:
            # Where the signal's counter is absent the engine runs without what measures it: unknown, not zero.
            counter = getattr(engine, SERVING_SIGNALS[signal][0])
            counted = summed(engine, (counter,), None, aggregation="group")
            rules.append(schema_rule(f"{PREFIX}not_measured", f"{served}\nunless\n{counted}", engine,
                                     signal=signal))
    for signal in UNMEASURED_SIGNALS:
        rules.append(schema_rule(f"{PREFIX}not_measured", served, engine, signal=signal))
    return rules


def serves(engine: Engine, signal: str) -> bool:
    """Whether the engine's mapping reads series for a serving signal: every field it needs, or for a phase its
    histogram or its mean counters."""
    return all(getattr(engine, name) or getattr(engine, f"mean_{name}", None) for name in SERVING_SIGNALS[signal])


def _share(engine: Engine, part: str, whole: str, w: str) -> str:
    """part / whole over the window, where whole grew. A part counter that appears only at its first count
    (SGLang's cached tokens) reads as zero before it."""
    parts, wholes = summed(engine, (part,), w), summed(engine, (whole,), w)
    return f"({parts}\nor\n{wholes} * 0)\n/\n({wholes} > 0)"


def _serving_signal_rules(engine: Engine, w: str) -> list[dict]:
    rules = []
    if engine.prefix_cache_queries and engine.prefix_cache_hits:
        rules.append(schema_rule(f"{PREFIX}prefix_cache_hit_ratio:rate{w}",
                                 _share(engine, engine.prefix_cache_hits, engine.prefix_cache_queries, w), engine))
    accepted = engine.spec_decode_accepted_tokens
    if accepted and engine.spec_decode_draft_tokens:
        rules.append(schema_rule(f"{PREFIX}spec_decode_acceptance_ratio:rate{w}",
                                 _share(engine, accepted, engine.spec_decode_draft_tokens, w), engine))
    if accepted and engine.spec_decode_drafts:
        rules.append(schema_rule(f"{PREFIX}spec_decode_accepted_tokens_per_draft:rate{w}",
                                 _share(engine, accepted, engine.spec_decode_drafts, w), engine))
    return rules


def _lora_latest(engine: Engine, lora: LoraInfo, matcher: str = "") -> str:
    """Each server's current adapter list (the series set last: every list shown stays on the page), where its
    adapters label matches `matcher`, labelled with the model of the server's first `running` gauge. A server is a
    target, or a replica of one where the engine names its replicas (Ray's metrics agent serves every replica on a
    node from one target)."""
    if not engine.running or engine.model_label is None:
        raise ValueError(f"{engine.name}: LoRA info needs a running gauge labelled with the model to join with")
    server = ", ".join(("job", "instance", *((engine.replica_label,) if engine.replica_label else ())))
    selector = _with_selector(lora.metric, matcher) if matcher else lora.metric
    latest = f"({selector} == on ({server}) group_left () max by ({server}) ({lora.metric}))"
    carrier = f"group by ({server}, {engine.model_label}) ({engine.running[0]})"
    return _with_model(engine, f"({latest} * on ({server}) group_left ({engine.model_label}) {carrier})", None)


def _lora_rules(engine: Engine) -> list[dict]:
    """One series per adapter with requests running (value 1, label adapter), their count per model (0 where the
    engine shows an empty list), and not measured where a list is longer than LORA_POSITIONS: PromQL cannot split
    a label, so entry k is matched by a regular expression, for k below LORA_POSITIONS."""
    lora = engine.lora_info
    if lora is None:
        return []
    label, by = lora.adapters_label, schema_labels(engine)
    entries = []
    for k in range(LORA_POSITIONS):
        skip = f"(?:[^,]*,){{{k}}}"
        latest = _lora_latest(engine, lora, f'{label}=~"{skip}[^,]+(?:,.*)?"')
        entries.append(f'label_replace({latest}, "adapter", "$1", "{label}", "{skip}([^,]+)(?:,.*)?")')
    per_adapter = f"group by ({by}, adapter) (\n" + "\nor\n".join(entries) + "\n)"
    longer = f'{label}=~"(?:[^,]*,){{{LORA_POSITIONS}}}.*"'
    too_long = f"group by ({by}) ({_lora_latest(engine, lora, longer)})"
    record = f"{PREFIX}lora_adapter_running"
    own = _with_selector(record, f'engine="{engine.name}"')
    count = (f"(count by ({by}) ({own})\nor\ngroup by ({by}) ({_lora_latest(engine, lora)}) * 0)\n"
             f"unless\n{too_long}")
    return [schema_rule(record, per_adapter, engine), schema_rule(f"{PREFIX}lora_adapters_running", count, engine),
            schema_rule(f"{PREFIX}not_measured", too_long, engine, signal="lora_adapters_running")]


def _saturation_rules(engine: Engine, w: str) -> list[dict]:
    rules = []
    in_flight = engine.in_flight or engine.running + engine.waiting
    if in_flight:
        rules.append(schema_rule(f"{PREFIX}requests_in_flight", summed(engine, in_flight, None), engine))
    for name, gauges in (("running", engine.running), ("waiting", engine.waiting)):
        if gauges:
            rules.append(schema_rule(f"{PREFIX}requests_{name}", summed(engine, gauges, None), engine))
    if engine.kv_cache_usage:
        # The fullest replica's: one full cache preempts requests however empty the others are.
        reads = [summed(engine, (gauge,), None, aggregation="max") for gauge in engine.kv_cache_usage]
        rules.append(schema_rule(f"{PREFIX}kv_cache_usage_ratio", _first_of(reads), engine))
    if engine.preemptions:
        rules.append(schema_rule(f"{PREFIX}preemptions:rate{w}", summed(engine, (engine.preemptions,), w), engine))
    return rules


def _quantile_rules(engine: Engine, histogram: Histogram, record: str, config: NormalizationConfig) -> list[dict]:
    w = config.rate_window
    buckets = _histogram(engine, histogram, "bucket", w, "le")
    first = histogram.bounds[0] if histogram.bounds else None
    if first is not None:
        # The share of requests at or under the first boundary: where it reaches the quantile, the
        # quantile lies inside the first bucket, where histogram_quantile would only interpolate from 0.
        share = (f"({_histogram(engine, histogram, 'bucket', w, matcher=le_matcher(first))})\n/\n"
                 f"({_histogram(engine, histogram, 'count', w)} > 0)")
    rules = []
    for quantile in config.quantiles:
        value = _scaled(f"histogram_quantile({quantile}, {buckets})", histogram.seconds_per_unit)
        if first is None:
            rules.append(schema_rule(f"{record}:quantile_rate{w}", value, engine, quantile=str(quantile)))
            continue
        inside = f"({share}) >= {quantile}"
        rules.append(schema_rule(f"{record}:quantile_rate{w}", f"{value}\nunless on ({schema_labels(engine)})\n"
                                 f"({inside})", engine, quantile=str(quantile)))
        rules.append(schema_rule(f"{record}:quantile_upper_bound_rate{w}",
                                 f"{first * histogram.seconds_per_unit:g} + 0 * ({inside})", engine,
                                 quantile=str(quantile)))
    return rules


def engine_rules(engine: Engine, config: NormalizationConfig) -> list[dict]:
    w = config.rate_window
    rules = _outcome_rules(engine, w) + _saturation_rules(engine, w) + _serving_signal_rules(engine, w)
    rules += _lora_rules(engine)
    for direction, metric in (("input", engine.input_tokens), ("output", engine.output_tokens)):
        if metric:
            rules.append(schema_rule(f"{PREFIX}{direction}_tokens:rate{w}", summed(engine, (metric,), w), engine))
    for latency in LATENCIES + PHASES:
        histogram: Histogram | None = getattr(engine, latency)
        record = f"{PREFIX}{latency}_seconds"
        if histogram is not None:
            rules += _quantile_rules(engine, histogram, record, config)
            mean = (f"({_histogram(engine, histogram, 'sum', w)})\n/\n"
                    f"({_histogram(engine, histogram, 'count', w)} > 0)")
            if histogram.seconds_per_unit != 1:
                mean = _scaled(f"({mean})", histogram.seconds_per_unit)
            rules.append(schema_rule(f"{record}:mean_rate{w}", mean, engine))
        counters = getattr(engine, f"mean_{latency}", None)
        if counters is not None:
            total, counts, scale = counters
            rules.append(schema_rule(f"{record}:mean_rate{w}", f"{_scaled(summed(engine, (total,), w), scale)}\n/\n"
                                                       f"({summed(engine, counts, w)} > 0)", engine))
    return rules


def expressible(histogram: Histogram, threshold: float) -> bool:
    """Whether the histogram may have a bucket at `threshold` seconds: its default boundaries have it,
    or its boundaries are not fixed (set by configuration), so it is tried."""
    if histogram.bounds is None or histogram.bounds_setting:
        return True
    return any(abs(bound * histogram.seconds_per_unit - threshold) < 1e-9 for bound in histogram.bounds)


def _bound(histogram: Histogram, threshold: float) -> float:
    return round(threshold / histogram.seconds_per_unit, 9)


def slo_rules(engine: Engine, config: NormalizationConfig) -> list[dict]:
    rules = []
    for latency, thresholds in config.slo_thresholds:
        histogram: Histogram | None = getattr(engine, latency)
        if histogram is None:
            continue
        record = f"{PREFIX}{latency}_seconds"
        served = _histogram(engine, histogram, "count", None, aggregation="group")
        for threshold in thresholds:
            at_threshold = le_matcher(_bound(histogram, threshold))
            if expressible(histogram, threshold):
                for window in config.slo_windows:
                    good = _histogram(engine, histogram, "bucket", window, matcher=at_threshold)
                    total = _histogram(engine, histogram, "count", window)
                    rules.append(schema_rule(f"{record}:slo_good_ratio_rate{window}", f"({good})\n/\n({total} > 0)",
                                       engine, threshold=f"{threshold:g}"))
            bucket = _histogram(engine, histogram, "bucket", None, matcher=at_threshold, aggregation="group")
            rules.append(schema_rule(f"{record}:slo_threshold_missing", f"{served}\nunless\n{bucket}", engine,
                               threshold=f"{threshold:g}"))
    return rules


def _either(first: str, second: str) -> str:
    """first + second where either is recorded, absent where neither is."""
    return (f"({first} or on ({SERIES}) {second} * 0)\n+ on ({SERIES})\n"
            f"({second} or on ({SERIES}) {first} * 0)")


def rule_groups(config: NormalizationConfig | None = None) -> dict:
    config = config or NormalizationConfig()
    w = config.rate_window
    groups = [{"name": f"fleetscope-inference-{engine.name}", "rules": engine_rules(engine, config)}
              for engine in selected(config)]
    failed = _either(f"{PREFIX}errors:rate{w}", f"{PREFIX}rejected:rate{w}")
    # Between them, every engine records at least one of these for every model it serves.
    presence = "|".join((f"requests:rate{w}", "requests_in_flight", f"output_tokens:rate{w}",
                         f"request_duration_seconds:mean_rate{w}"))
    groups.append({"name": "fleetscope-inference-ratios", "rules": [{
        "record": f"{PREFIX}error_ratio:rate{w}",
        "expr": f"(\n{failed}\n)\n/ on ({SERIES})\n({PREFIX}requests:rate{w} > 0)",
    }, {
        "record": SERVED,
        "expr": f'group by ({SERIES}) ({{__name__=~"{PREFIX}({presence})"}})',
    }]})
    for engine in selected(config):
        rules = slo_rules(engine, config)
        if rules:
            groups.append({"name": f"fleetscope-inference-slo-{engine.name}", "interval": config.slo_interval,
                           "rules": rules})
    return {"groups": groups}
