"""The serving signals of every engine as its named release serves them (alerts/engines.py cites each file and
release): each signal is either read from the engine's own series or recorded as not measured, never both and
never neither; and the speculative-decoding collapse alert's settings are refused when no rule can use them."""

from __future__ import annotations

import math
import re

import pytest

from fleetscope.alerts import engines, generate, inference, serving_signals
from fleetscope.alerts.engines import ENGINES
from fleetscope.mixin.config import ConfigError, MonitoringConfig, NormalizationConfig, from_mapping

# The serving signals (LoRA's are another mapping's).
SIGNALS = ("prefix_cache_hit_ratio", "spec_decode_acceptance_ratio", "prefill_duration", "decode_duration",
           "kv_transfer_duration")
# What each release was found to serve (the engine's notes say why the rest is not measured).
MEASURED = {
    "fleetscope": set(),
    "vllm": set(SIGNALS),  # 0.32, run
    "sglang": {"prefix_cache_hit_ratio", "kv_transfer_duration"},  # 0.5.10; acceptance only as gauges
    "tgi": set(),  # v3.3.6: batch forward times only
    "triton": {"kv_transfer_duration"},  # the TensorRT-LLM backend's counters, v0.15.0-v0.18.0
    "trtllm": set(),  # 1.2: a hit-rate gauge only
    "dynamo": {"prefix_cache_hit_ratio"},  # the KV router's, seen at 1.6.1
    "lmdeploy": {"prefill_duration", "decode_duration"},  # 0.10
    "llamacpp": set(),  # b6000-b7000
    "ray-serve": set(),  # 2.60: its engine's
    "opentelemetry": set(),  # v1.37
}
SIGNAL_RECORDS = {
    "prefix_cache_hit_ratio": "fleetscope:inference_prefix_cache_hit_ratio:rate5m",
    "spec_decode_acceptance_ratio": "fleetscope:inference_spec_decode_acceptance_ratio:rate5m",
    **{phase: f"fleetscope:inference_{phase}_seconds:mean_rate5m" for phase in inference.PHASES},
}


def _rules(engine) -> list[dict]:
    return inference.engine_rules(engine, NormalizationConfig())


def _not_measured(engine, where_absent: bool = False) -> set[str]:
    """The signals recorded as not measured wherever the model is served, or (where_absent) only where the
    signal's own counter is absent."""
    return {rule["labels"]["signal"] for rule in _rules(engine)
            if rule["record"] == "fleetscope:inference_not_measured" and rule["labels"]["signal"] in SIGNALS
            and ("\nunless\n" in rule["expr"]) == where_absent}


def test_every_engine_is_pinned_to_what_its_release_serves():
    assert set(MEASURED) == {engine.name for engine in ENGINES}


@pytest.mark.parametrize("engine", ENGINES, ids=lambda engine: engine.name)
def test_each_serving_signal_is_read_or_recorded_as_not_measured_never_both(engine):
    records = {rule["record"] for rule in _rules(engine)}
    read = {signal for signal in SIGNALS if SIGNAL_RECORDS[signal] in records}
    assert read == MEASURED[engine.name]
    assert _not_measured(engine) == set(SIGNALS) - read
    assert _not_measured(engine, where_absent=True) == set(engine.unmeasured_where_absent)
    assert set(engine.unmeasured_where_absent) <= read
    if set(SIGNALS) - read:  # what is not measured is said, with why, in the engine's notes
        assert any("not measured" in note for note in engine.notes), engine.name


def test_dynamo_reads_the_kv_routers_counters_not_the_frontends_histogram():
    ratio = next(rule["expr"] for rule in _rules(engines.DYNAMO)
                 if rule["record"] == "fleetscope:inference_prefix_cache_hit_ratio:rate5m")
    assert "dynamo_component_router_kv_selected_cached_prefix_tokens_total" in ratio
    assert "dynamo_component_router_input_sequence_tokens_sum" in ratio
    # 1.6.1 observes a stream's cached tokens but not its prompt in the frontend's pair (seen in its lab)
    assert "dynamo_frontend_cached_tokens" not in ratio and "dynamo_frontend_input_sequence" not in ratio
    # Without the KV router (round robin, random) there is no router series: not measured, never absent silently
    unmeasured = next(rule["expr"] for rule in _rules(engines.DYNAMO)
                      if rule["record"] == "fleetscope:inference_not_measured"
                      and rule["labels"]["signal"] == "prefix_cache_hit_ratio")
    assert unmeasured.split("\nunless\n")[1].startswith("group by")
    assert "dynamo_component_router_input_sequence_tokens_sum" in unmeasured.split("\nunless\n")[1]


def test_triton_kv_transfer_is_a_mean_in_seconds_from_the_backends_millisecond_counters():
    rules = {rule["record"]: rule["expr"] for rule in _rules(engines.TRITON)}
    mean = rules["fleetscope:inference_kv_transfer_duration_seconds:mean_rate5m"]
    assert 'disaggregated_serving_type="kv_cache_transfer_ms"' in mean
    assert 'disaggregated_serving_type="request_count"' in mean and mean.rstrip().endswith("> 0)")
    assert "* 0.001" in mean
    # Counters give no distribution: no quantile is claimed
    assert not any(record.startswith("fleetscope:inference_kv_transfer_duration_seconds:quantile") for record in rules)


def test_trtllm_1_2_hit_rate_gauge_is_never_read_as_a_ratio():
    text = "".join(rule["expr"] for rule in _rules(engines.TRTLLM))
    assert "trtllm_kv_cache_hit_rate" not in text
    assert "spec_decode" not in text and "prefill_time" not in text


def test_lmdeploy_phases_use_its_request_latency_boundaries():
    assert engines.LMDEPLOY.prefill_duration.bounds == engines.LMDEPLOY.request_duration.bounds
    assert engines.LMDEPLOY.decode_duration.metric == "lmdeploy:request_decode_time_seconds"


def test_the_collapse_alert_follows_its_settings():
    config = from_mapping({"inference": {"spec_decode_collapse_factor": 0.5, "spec_decode_baseline_window": "3d",
                                         "spec_decode_min_baseline": 0.3, "spec_decode_collapse_for": "30m"}})
    alert = serving_signals.spec_decode_collapse_alert(config)
    assert "< 0.5 * avg_over_time(fleetscope:inference_spec_decode_acceptance_ratio:rate5m[3d])" in alert.expr
    assert "[3d]) > 0.3" in alert.expr and alert.for_ == "30m"
    default = serving_signals.spec_decode_collapse_alert(MonitoringConfig())
    assert "< 0.6 * avg_over_time" in default.expr and "[1d]) > 0.2" in default.expr and default.for_ == "15m"


@pytest.mark.parametrize("name", ["spec_decode_collapse_factor", "spec_decode_min_baseline",
                                  "prefix_cache_collapse_factor", "prefix_cache_min_baseline"])
@pytest.mark.parametrize("value", [0, 1, 1.5, -0.2, math.nan, math.inf])
def test_a_collapse_share_outside_0_1_is_refused_naming_it(name, value):
    with pytest.raises(ConfigError, match=re.escape(f"inference.{name} must be a share between 0 and 1")):
        generate.files(from_mapping({"inference": {name: value}}))


@pytest.mark.parametrize("document, message", [
    ({"inference": {"spec_decode_collapse_factor": "half"}}, "spec_decode_collapse_factor must be a float"),
    ({"inference": {"spec_decode_baseline_window": "a day"}}, "InferenceConfig.spec_decode_baseline_window"),
    ({"inference": {"spec_decode_collapse_for": "15"}}, "InferenceConfig.spec_decode_collapse_for"),
])
def test_malformed_collapse_settings_are_refused(document, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        generate.files(from_mapping(document))
