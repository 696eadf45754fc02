"""Alerts on the serving signals that warn before latency degrades, read from the normalized records of
inference.py so they hold for every engine that serves the signal: a prefix cache whose hit ratio collapses
recomputes prompts it used to reuse, and time to first token and GPU time per request rise next; a
speculative-decoding acceptance that collapses spends GPU time on drafts the target model rejects, and time per
output token rises next."""

from __future__ import annotations

from fleetscope.alerts.inference import PREFIX
from fleetscope.alerts.rule import Alert, group
from fleetscope.mixin.config import MonitoringConfig

_MODEL = ("{{ $labels.model }} ({{ $labels.engine }}){{ with $labels.namespace }} in namespace {{ . }}{{ end }}"
          "{{ with $labels.cluster }} of cluster {{ . }}{{ end }}")
_SERIES = "cluster, namespace, model, engine"


def _collapsed(ratio: str, factor: float, baseline_window: str, min_baseline: float, min_requests: float) -> str:
    """The ratio below `factor` of its own mean over the baseline window, where that mean is above `min_baseline`
    and the model serves more than `min_requests` a second."""
    baseline = f"avg_over_time({ratio}[{baseline_window}])"
    return (f"{ratio}\n< {factor:g} * {baseline}\n"
            f"and on ({_SERIES})\n{baseline} > {min_baseline:g}\n"
            f"and on ({_SERIES})\n{PREFIX}requests:rate5m > {min_requests:g}")


def prefix_cache_collapse_alert(config: MonitoringConfig) -> Alert:
    """The hit ratio below a share of its own mean over the baseline window, where that mean was worth keeping
    and the model is busy: the ratio exists only while prompt tokens are looked up, so an idle model is quiet."""
    i = config.inference
    return Alert(
        "FleetscopeInferencePrefixCacheHitRatioCollapsed",
        _collapsed(f"{PREFIX}prefix_cache_hit_ratio:rate5m", i.prefix_cache_collapse_factor,
                   i.prefix_cache_baseline_window, i.prefix_cache_min_baseline, i.min_requests_per_second),
        "ticket", for_=i.prefix_cache_collapse_for,
        summary="{{ $labels.model }}'s prefix-cache hit ratio fell to {{ $value | humanizePercentage }}",
        description=f"{_MODEL} has found {{{{ $value | humanizePercentage }}}} of its prompt tokens in the prefix "
                    f"cache over 5 minutes, for {i.prefix_cache_collapse_for}: less than "
                    f"{i.prefix_cache_collapse_factor:g} of its mean over {i.prefix_cache_baseline_window}. Prompts it "
                    "used to reuse are computed again, so time to first token and GPU time per request rise next: "
                    "a cache evicted by memory pressure, a changed prompt template or system prompt, or routing "
                    "that no longer sends a conversation back to the replica holding its prefix.")


def spec_decode_collapse_alert(config: MonitoringConfig) -> Alert:
    """The acceptance ratio below a share of its own mean over the baseline window, where that mean was worth
    drafting for and the model is busy: the ratio exists only while draft tokens are proposed, so a model that
    drafts nothing (idle, or speculative decoding off) is quiet."""
    i = config.inference
    return Alert(
        "FleetscopeInferenceSpecDecodeAcceptanceCollapsed",
        _collapsed(f"{PREFIX}spec_decode_acceptance_ratio:rate5m", i.spec_decode_collapse_factor,
                   i.spec_decode_baseline_window, i.spec_decode_min_baseline, i.min_requests_per_second),
        "ticket", for_=i.spec_decode_collapse_for,
        summary="{{ $labels.model }}'s speculative-decoding acceptance fell to {{ $value | humanizePercentage }}",
        description=f"{_MODEL} has accepted {{{{ $value | humanizePercentage }}}} of its draft tokens over 5 minutes, "
                    f"for {i.spec_decode_collapse_for}: less than {i.spec_decode_collapse_factor:g} of its mean over "
                    f"{i.spec_decode_baseline_window}. Each rejected draft token is GPU time spent for nothing, so "
                    "time per output token and throughput degrade next: traffic unlike what the draft model was "
                    "trained on (a new language, task or prompt template), a changed sampling temperature, or a "
                    "draft model or speculative config that no longer matches the target model.")


def rule_groups(config: MonitoringConfig) -> list[dict]:
    return [group("fleetscope-inference-serving-signal-alerts", config.team("serving"), config,
                  [prefix_cache_collapse_alert(config), spec_decode_collapse_alert(config)], "inference")]
