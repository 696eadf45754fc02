"""The inference normalization rules: committed as generated, valid, unit-tested by promtool,
and evaluated by a real Prometheus scraping pages in each engine's own format."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from fleetscope.alerts import engines, generate, inference
from fleetscope.alerts.engines import ENGINES, Histogram
from fleetscope.exporters import catalog
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.mixin.config import NormalizationConfig
from tests.support.engine_pages import EnginePages, counter, gauge, histogram

ALERTS = Path(generate.__file__).resolve().parent


def test_promtool_unit_tests_pass():
    result = subprocess.run(["promtool", "test", "rules", str(ALERTS / "tests" / "inference.test.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_fleetscope_metric_the_rules_read_is_cataloged():
    text = (ALERTS / "rules" / "inference.yaml").read_text()
    cataloged = {spec.name for spec in catalog.ALL}
    read = {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"\bfleetscope_[a-z_]+", text)}
    assert read and read <= cataloged


def _records(engine) -> set[str]:
    groups = {group["name"]: group["rules"] for group in inference.rule_groups()["groups"]}
    return {rule["record"] for rule in groups[f"fleetscope-inference-{engine.name}"]}


def test_every_signal_an_engine_declares_is_recorded_and_nothing_else():
    for engine in ENGINES:
        expected = {f"fleetscope:inference_{name}:rate5m" for name in ("requests",) + inference.OUTCOMES
                    if getattr(engine, name)}
        expected |= {f"fleetscope:inference_requests_{name}" for name in ("running", "waiting")
                     if getattr(engine, name)}
        if engine.in_flight or engine.running or engine.waiting:
            expected.add("fleetscope:inference_requests_in_flight")
        if engine.kv_cache_usage:
            expected.add("fleetscope:inference_kv_cache_usage_ratio")
        if engine.preemptions:
            expected.add("fleetscope:inference_preemptions:rate5m")
        expected |= {f"fleetscope:inference_{d}_tokens:rate5m" for d in ("input", "output")
                     if getattr(engine, f"{d}_tokens")}
        if any(not getattr(engine, outcome) or engine.outcomes_created_at_start for outcome in inference.OUTCOMES):
            expected.add("fleetscope:inference_not_measured")
        if any(not all(getattr(engine, name) for name in fields) for fields in inference.SERVING_SIGNALS.values()):
            expected.add("fleetscope:inference_not_measured")
        if engine.prefix_cache_queries and engine.prefix_cache_hits:
            expected.add("fleetscope:inference_prefix_cache_hit_ratio:rate5m")
        if engine.spec_decode_accepted_tokens and engine.spec_decode_draft_tokens:
            expected.add("fleetscope:inference_spec_decode_acceptance_ratio:rate5m")
        if engine.spec_decode_accepted_tokens and engine.spec_decode_drafts:
            expected.add("fleetscope:inference_spec_decode_accepted_tokens_per_draft:rate5m")
        if engine.lora_info:
            expected |= {"fleetscope:inference_lora_adapter_running", "fleetscope:inference_lora_adapters_running"}
        for latency in inference.LATENCIES + inference.PHASES:
            histogram = getattr(engine, latency)
            if histogram is not None:
                expected |= {f"fleetscope:inference_{latency}_seconds:{s}_rate5m" for s in ("quantile", "mean")}
                if histogram.bounds:
                    expected.add(f"fleetscope:inference_{latency}_seconds:quantile_upper_bound_rate5m")
            if getattr(engine, f"mean_{latency}", None) is not None:
                expected.add(f"fleetscope:inference_{latency}_seconds:mean_rate5m")
        assert _records(engine) == expected, engine.name
        assert engine.source, f"{engine.name} cites no upstream source"


def test_time_per_output_token_is_never_read_from_a_per_step_histogram():
    text = {engine.name: yaml.safe_dump(inference.engine_rules(engine, NormalizationConfig()))
            for engine in ENGINES}
    per_step = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds",
                "sglang:inter_token_latency_seconds", "tgi_request_mean_time_per_token_duration",
                # LMDeploy 0.10's record_iteration observes it once per decode step.
                "lmdeploy:time_per_output_token_seconds")
    for engine in ENGINES:
        for rule in inference.engine_rules(engine, NormalizationConfig()):
            if rule["record"].startswith("fleetscope:inference_time_per_output_token_seconds"):
                assert not any(name in rule["expr"] for name in per_step), (engine.name, rule["expr"])
    assert "vllm:request_time_per_output_token_seconds" in text["vllm"]


def _not_measured(engine, signals=inference.OUTCOMES) -> dict[str, str]:
    return {rule["labels"]["signal"]: rule["expr"] for rule in inference.engine_rules(engine, NormalizationConfig())
            if rule["record"] == "fleetscope:inference_not_measured" and rule["labels"]["signal"] in signals}


def test_what_an_engine_does_not_count_is_recorded_as_not_measured_never_as_zero():
    vllm, lmdeploy = engines.VLLM, engines.LMDEPLOY
    # vLLM: a client disconnect is aborted without stats (finished_reason="abort" stays 0) and a 400 is
    # answered before the engine: no counter reads as a cancellation or a client error.
    assert not vllm.cancelled and not vllm.client_errors
    assert set(_not_measured(vllm)) == {"errors", "rejected", "cancelled", "client_errors"}
    # errors and rejections: measured only where the release serves the series (created at zero on start):
    # "error" from 0.13 (0.11/0.12 finish as stop, length, abort), admission rejections where it has limits.
    assert "unless" in _not_measured(vllm)["errors"] and 'finished_reason="error"' in _not_measured(vllm)["errors"]
    assert "unless" not in _not_measured(vllm)["cancelled"]
    errors = next(rule["expr"] for rule in inference.engine_rules(vllm, NormalizationConfig())
                  if rule["record"] == "fleetscope:inference_errors:rate5m")
    assert "* 0" not in errors  # an absent "error" series is not a zero
    # LMDeploy 0.10 calls record_finish only for ResponseType.FINISH: its outcome counters never move.
    assert not (lmdeploy.errors or lmdeploy.rejected or lmdeploy.cancelled or lmdeploy.client_errors)
    assert set(_not_measured(lmdeploy)) == {"errors", "rejected", "cancelled", "client_errors"}
    assert lmdeploy.time_per_output_token is None
    # An engine that counts every outcome has nothing not measured.
    assert _not_measured(engines.SDK) == {}


def test_a_serving_signal_an_engine_does_not_serve_is_recorded_as_not_measured():
    def unmeasured(engine) -> set[str]:
        return set(_not_measured(engine, tuple(inference.SERVING_SIGNALS)))

    # vLLM 0.32 serves every one (spec decode and NIXL only where configured: absent there, not zero); its adapters
    # running are not measured only where a list is longer than the rules read.
    assert unmeasured(engines.VLLM) == {"lora_adapters_running"}
    longer = _not_measured(engines.VLLM, ("lora_adapters_running",))["lora_adapters_running"]
    assert f'running_lora_adapters=~"(?:[^,]*,){{{inference.LORA_POSITIONS}}}.*"' in longer
    # SGLang's acceptance is a gauge of the last batch, and its per-request phases are not read.
    assert unmeasured(engines.SGLANG) == {"spec_decode_acceptance_ratio", "prefill_duration", "decode_duration",
                                          "lora_adapters_running"}
    assert unmeasured(engines.TGI) == set(inference.SERVING_SIGNALS)
    # Not measured is the model's presence, never a zero and never read from the signal's own series.
    for expr in _not_measured(engines.TGI, tuple(inference.SERVING_SIGNALS)).values():
        assert "unless" not in expr and "* 0" not in expr
    # SGLang counts cached tokens only from a request's first hit: before it the ratio is zero, not absent.
    ratio = _expr(engines.SGLANG, "fleetscope:inference_prefix_cache_hit_ratio:rate5m")
    assert "sglang:cached_tokens_total" in ratio and "\nor\n" in ratio and "> 0)" in ratio


def _expr(engine, record: str) -> str:
    return next(rule["expr"] for rule in inference.engine_rules(engine, NormalizationConfig())
                if rule["record"] == record)


def test_tgi_3_3_counts_each_request_once_and_template_failures_as_the_clients():
    tgi = engines.TGI
    # tgi_request_count is incremented by chat_completions/completions and again by generate_internal/
    # generate_stream_internal (router/src/server.rs, v3.3.6): an OpenAI-API request would count twice.
    assert tgi.requests == ("tgi_request_success", "tgi_request_failure")
    assert "tgi_request_count" not in _expr(tgi, "fleetscope:inference_requests:rate5m")
    # router/src/infer/mod.rs labels template failures err="template" (a 422); no tag emits "cancelled".
    assert tgi.client_errors == ('tgi_request_failure{err=~"validation|template"}',)
    assert "template" in tgi.errors[0].split("!~")[1] and "cancelled" not in " ".join(tgi.errors + tgi.cancelled)
    assert tgi.cancelled == ('tgi_request_failure{err="dropped"}',)


def test_triton_outcomes_by_release_and_means_per_success():
    triton = engines.TRITON
    # Failure series are created at load (reason from r24.07, none before): an absent reason is not measured.
    assert triton.outcomes_created_at_start
    assert "unless" in _not_measured(triton)["rejected"] and "unless" in _not_measured(triton)["cancelled"]
    assert "r24.07" in triton.source or "r24.07" in " ".join(triton.notes)
    # nv_inference_request_duration_us and _queue_duration_us grow in UpdateSuccess only (infer_stats.cc).
    assert triton.mean_request_duration[1] == ("nv_inference_request_success",)
    assert triton.mean_queue_duration[1] == ("nv_inference_request_success",)


def test_sglang_inter_token_boundaries_and_llamacpp_without_kv_cache():
    # bucket_inter_token_latency's default in collector.py, 0.5.3 to 0.5.10.
    bounds = engines.SGLANG.inter_token_latency.bounds
    assert bounds and bounds[0] == 0.002 and bounds[-1] == 8.0 and len(bounds) == 23
    assert engines.SGLANG.preemptions == "sglang:num_retracted_requests_total"  # 0.5.10+; not the 0.5.6 gauge
    # llamacpp:kv_cache_usage_ratio was removed by PR #13660 (May 2025), before b6000.
    assert not engines.LLAMACPP.kv_cache_usage
    assert "kv_cache" not in yaml.safe_dump(inference.engine_rules(engines.LLAMACPP, NormalizationConfig()))


def test_a_quantile_inside_the_first_bucket_is_an_upper_bound_not_an_interpolation():
    rules = {(rule["record"], rule["labels"].get("quantile")): rule["expr"]
             for rule in inference.engine_rules(engines.VLLM, NormalizationConfig())}
    record = "fleetscope:inference_request_duration_seconds"
    assert rules[(f"{record}:quantile_upper_bound_rate5m", "0.5")].startswith("0.3 + 0 *")
    assert "unless on" in rules[(f"{record}:quantile_rate5m", "0.5")]
    assert 'le=~"0\\\\.3"' in rules[(f"{record}:quantile_rate5m", "0.5")]
    # Dynamo's boundaries are not fixed: nothing to mark.
    dynamo = {rule["record"] for rule in inference.engine_rules(engines.DYNAMO, NormalizationConfig())}
    assert f"{record}:quantile_upper_bound_rate5m" not in dynamo


def test_ray_serve_2_60_boundaries_and_their_setting():
    histogram = engines.RAY_SERVE.request_duration
    # DEFAULT_LATENCY_BUCKET_MS has 300 and 400 ms (the real page serves them: tests/fixtures/engines/ray-serve-2.60.0);
    # constants.py reads RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS, falling back to the unprefixed name.
    assert {300.0, 400.0} <= set(histogram.bounds)
    assert histogram.bounds_setting == "RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS"


@pytest.mark.parametrize("bounds, setting, threshold, expected", [
    ((1.0, 2.0, 4.0), "", 1.0, True), ((1.0, 2.0, 4.0), "", 2.5, False),
    ((1.0, 2.0, 4.0), "--bucket-e2e-request-latency", 2.5, True), (None, "", 2.5, True)])
def test_slo_ratios_are_only_read_at_a_threshold_the_histogram_can_have(bounds, setting, threshold, expected):
    assert inference.expressible(Histogram("h", bounds, bounds_setting=setting), threshold) is expected


def test_no_slo_ratio_is_recorded_at_a_boundary_other_than_its_threshold():
    for engine in ENGINES:
        for rule in inference.slo_rules(engine, NormalizationConfig()):
            if ":slo_good_ratio_rate" not in rule["record"]:
                continue
            histogram = getattr(engine, rule["record"].split(":")[1].removeprefix("inference_")
                                .removesuffix("_seconds"))
            bound = float(rule["labels"]["threshold"]) / histogram.seconds_per_unit
            assert inference.le_matcher(round(bound, 9)) in rule["expr"]
            assert "effective_threshold" not in rule["labels"]


@pytest.mark.parametrize("bound, value, matches", [(1.0, "1", True), (1.0, "1.0", True), (1.0, "10.0", False),
                                                   (0.25, "0.25", True), (0.25, "0.255", False),
                                                   (2.5, "2.5", True)])
def test_le_matchers_take_every_client_spelling(bound, value, matches):
    pattern = re.search(r'le=~"(.*)"', inference.le_matcher(bound)).group(1).replace("\\\\", "\\")
    assert bool(re.fullmatch(pattern, value)) is matches


def _vllm(t: int) -> str:
    labels = 'engine="0",model_name="llama"'
    return (counter("vllm:request_success_total", {f'{labels},finished_reason="stop"': 9,
                                                    f'{labels},finished_reason="error"': 1}, t) +
            histogram("vllm:e2e_request_latency_seconds", labels,
                       [("0.5", 0), ("0.8", 5), ("1.0", 10), ("2.5", 10), ("+Inf", 10)], 9.0, t) +
            gauge("vllm:kv_cache_usage_perc", labels, 0.75) +
            # 400 prompt tokens looked up, 300 found cached; 10 drafts of 3 tokens, 12 accepted.
            counter("vllm:prefix_cache_queries_total", {labels: 400}, t) +
            counter("vllm:prefix_cache_hits_total", {labels: 300}, t) +
            counter("vllm:spec_decode_num_drafts_total", {labels: 10}, t) +
            counter("vllm:spec_decode_num_draft_tokens_total", {labels: 30}, t) +
            counter("vllm:spec_decode_num_accepted_tokens_total", {labels: 12}, t) +
            histogram("vllm:request_prefill_time_seconds", labels, [("0.3", 4), ("0.5", 10), ("+Inf", 10)], 2.5, t))


def _sglang(t: int) -> str:
    labels = 'model_name="qwen"'
    # 1000 prompt tokens, none found cached: sglang:cached_tokens_total has no series before a first hit.
    return (counter("sglang:num_requests_total", {labels: 10}, t) +
            counter("sglang:prompt_tokens_total", {labels: 1000}, t) +
            counter("sglang:num_aborted_requests_total", {labels: 1}, t) +
            histogram("sglang:e2e_request_latency_seconds", labels, [("2.0", 0), ("4.0", 9), ("+Inf", 9)], 27, t))


def _tgi(t: int) -> str:
    # 10 chat requests: 7 succeed, 1 fails generating, 2 dropped; tgi_request_count counts the OpenAI API twice.
    return (counter("tgi_request_count", {"": 20}, t) +
            counter("tgi_request_success", {"": 7}, t) +
            counter("tgi_request_failure", {'err="generation"': 1, 'err="dropped"': 2}, t) +
            histogram("tgi_request_duration", "", [("0.7481827642679213", 0), ("1.122274146401882", 10),
                                                    ("+Inf", 10)], 9.0, t))


def _triton(t: int) -> str:
    labels = 'model="resnet",version="1"'
    return (counter("nv_inference_request_success", {labels: 19}, t) +
            counter("nv_inference_request_failure", {f'{labels},reason="REJECTED"': 1,
                                                     f'{labels},reason="CANCELED"': 0,
                                                     f'{labels},reason="BACKEND"': 0,
                                                     f'{labels},reason="OTHER"': 0}, t) +
            counter("nv_inference_request_duration_us", {labels: 400000}, t))


def _trtllm(t: int) -> str:
    labels = 'engine_type="pytorch",model_name="mixtral"'
    return (counter("trtllm_request_success_total", {f'{labels},finished_reason="stop"': 8,
                                                      f'{labels},finished_reason="cancelled"': 2}, t) +
            gauge("trtllm_kv_cache_utilization", labels, 0.5))


def _dynamo(t: int) -> str:
    labels = 'endpoint="chat_completions",model="deepseek",request_type="stream"'
    return counter("dynamo_frontend_requests_total", {f'{labels},error_type="",status="success"': 8,
                                                       f'{labels},error_type="overload",status="error"': 2}, t)


def _lmdeploy(t: int) -> str:
    labels = 'engine="0",model_name="internlm"'
    return counter("lmdeploy:request_success_total", {f'{labels},finished_reason="ResponseType.FINISH"': 10}, t)


def _llamacpp(t: int) -> str:
    return (counter("llamacpp:tokens_predicted_total", {"": 500}, t) +
            counter("llamacpp:tokens_predicted_seconds_total", {"": 10}, t))


def _ray_serve(t: int) -> str:
    labels = 'application="chat",method="POST",route="/chat"'
    return (counter("ray_serve_num_http_requests_total", {f'{labels},status_code="200"': 9,
                                                           f'{labels},status_code="500"': 1}, t) +
            counter("ray_serve_num_http_error_requests_total", {f'{labels},error_code="500"': 1}, t))


def _opentelemetry(t: int) -> str:
    labels = 'gen_ai_operation_name="chat",gen_ai_provider_name="vllm",gen_ai_request_model="gpt-oss"'
    return histogram("gen_ai_server_request_duration_seconds", labels, [("0.64", 0), ("1.28", 10), ("+Inf", 10)],
                      9.0, t)


PAGES = {"vllm": _vllm, "sglang": _sglang, "tgi": _tgi, "triton": _triton, "trtllm": _trtllm, "dynamo": _dynamo,
         "lmdeploy": _lmdeploy, "llamacpp": _llamacpp, "ray-serve": _ray_serve, "opentelemetry": _opentelemetry}


@pytest.mark.integration
def test_prometheus_records_one_schema_over_every_engine(tmp_path, fleetscope_process, prometheus):
    pages = EnginePages(PAGES)
    try:
        sdk = fleetscope_process("model-server")
        scrape = [{"job_name": engine, "metrics_path": EnginePages.path(engine),
                   "static_configs": [{"targets": [pages.address]}]} for engine in PAGES]
        scrape.append(Prometheus.targets("iris", [sdk]))
        rules = tmp_path / "inference.yaml"
        # SLO rules every 2 s rather than every minute, so that the test need not wait for them.
        rules.write_text(yaml.safe_dump(inference.rule_groups(NormalizationConfig(slo_interval="2s"))))
        server = prometheus(scrape, rule_files=[rules])
        server.wait_for('up{job="iris"} == 1', timeout=30)  # so that the requests below are an increase
        request = urllib.request.Request(f"http://{sdk}/v1/models/iris/predict",
                                         data=json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
                                         headers={"content-type": "application/json"})
        for _ in range(5):
            urllib.request.urlopen(request, timeout=10).read()
        rates = server.wait_for("fleetscope:inference_requests:rate5m > 0", lambda r: len(r) == 10, timeout=30)
        assert {(r["metric"]["engine"], r["metric"]["model"]) for r in rates} == {
            ("vllm", "llama"), ("sglang", "qwen"), ("tgi", "tgi"), ("triton", "resnet"), ("sklearn", "iris"),
            ("trtllm", "mixtral"), ("dynamo", "deepseek"), ("lmdeploy", "internlm"), ("ray-serve", "chat"),
            ("opentelemetry", "gpt-oss")}
        # SGLang's page counts one abort in ten finished requests: a tenth, not 1/11 as if counted twice.
        share = server.wait_for('fleetscope:inference_cancelled:rate5m{engine="sglang"}\n'
                                '/ fleetscope:inference_requests:rate5m{engine="sglang"}', timeout=30)
        assert float(share[0]["value"][1]) == pytest.approx(0.1)
        ratios = server.wait_for("fleetscope:inference_error_ratio:rate5m", lambda r: len(r) == 7, timeout=30)
        by_engine = {r["metric"]["engine"]: float(r["value"][1]) for r in ratios}
        # vLLM's finished_reason="error", TGI's generation failure (not its dropped requests), Triton's rejection,
        # Dynamo's overload, Ray Serve's 500.
        # LMDeploy counts only requests that finished well: no error ratio, its outcomes not measured.
        assert by_engine == pytest.approx({"vllm": 0.1, "tgi": 0.1, "triton": 0.05, "sklearn": 0, "dynamo": 0.2,
                                           "ray-serve": 0.1, "opentelemetry": 0})
        outcomes = "|".join(inference.OUTCOMES)
        unmeasured = server.wait_for(
            f'fleetscope:inference_not_measured{{engine=~"vllm|lmdeploy",signal=~"{outcomes}"}}',
            lambda r: len(r) == 7, timeout=30)
        assert {(r["metric"]["engine"], r["metric"]["signal"]) for r in unmeasured} == {
            ("vllm", "rejected"), ("vllm", "cancelled"), ("vllm", "client_errors"), ("lmdeploy", "errors"),
            ("lmdeploy", "rejected"), ("lmdeploy", "cancelled"), ("lmdeploy", "client_errors")}
        cancelled = server.wait_for("fleetscope:inference_cancelled:rate5m > 0", lambda r: len(r) == 3, timeout=30)
        assert {r["metric"]["engine"] for r in cancelled} == {"sglang", "tgi", "trtllm"}
        # A median inside the first bucket (the SDK's 0-5 ms) is recorded as at most that boundary.
        p50 = server.wait_for('fleetscope:inference_request_duration_seconds:quantile_rate5m{quantile="0.5"}\nor\n'
                              'fleetscope:inference_request_duration_seconds:quantile_upper_bound_rate5m'
                              '{quantile="0.5"}', lambda r: len(r) == 5, timeout=30)
        values = {r["metric"]["engine"]: float(r["value"][1]) for r in p50}
        assert values["vllm"] == pytest.approx(0.8) and values["sglang"] == pytest.approx(3)
        assert 0.748 < values["tgi"] < 1.123 and 0 < values["sklearn"] < 1
        assert 0.64 < values["opentelemetry"] < 1.28
        mean = server.wait_for('fleetscope:inference_request_duration_seconds:mean_rate5m{engine="triton"}',
                               timeout=30)
        assert float(mean[0]["value"][1]) == pytest.approx(0.4 / 19)  # per success: failures add no duration
        hits = server.wait_for("fleetscope:inference_prefix_cache_hit_ratio:rate5m", lambda r: len(r) == 2, timeout=30)
        assert {r["metric"]["engine"]: float(r["value"][1]) for r in hits} == pytest.approx({"vllm": 0.75, "sglang": 0})
        accepted = server.wait_for("fleetscope:inference_spec_decode_acceptance_ratio:rate5m", timeout=30)
        assert [(r["metric"]["engine"], float(r["value"][1])) for r in accepted] == [("vllm", pytest.approx(0.4))]
        per_draft = server.wait_for("fleetscope:inference_spec_decode_accepted_tokens_per_draft:rate5m", timeout=30)
        assert float(per_draft[0]["value"][1]) == pytest.approx(1.2)
        prefill = server.wait_for("fleetscope:inference_prefill_duration_seconds:mean_rate5m", timeout=30)
        assert [(r["metric"]["engine"], float(r["value"][1])) for r in prefill] == [("vllm", pytest.approx(0.25))]
        # Every engine served here but vLLM and SGLang (llama.cpp's page has no request gauges: it is not served).
        signals = server.wait_for('fleetscope:inference_not_measured{signal="prefix_cache_hit_ratio"}',
                                  lambda r: len(r) == 8, timeout=30)
        assert {r["metric"]["engine"] for r in signals} == {"sklearn", "tgi", "triton", "trtllm", "dynamo", "lmdeploy",
                                                            "ray-serve", "opentelemetry"}
        kv = server.wait_for("fleetscope:inference_kv_cache_usage_ratio", lambda r: len(r) == 2, timeout=30)
        assert {r["metric"]["engine"]: float(r["value"][1]) for r in kv} == {"vllm": 0.75, "trtllm": 0.5}
        itl = server.wait_for("fleetscope:inference_inter_token_latency_seconds:mean_rate5m", timeout=30)
        assert [(r["metric"]["engine"], float(r["value"][1])) for r in itl] == [("llamacpp", pytest.approx(0.02))]
        missing = server.wait_for('fleetscope:inference_request_duration_seconds:slo_threshold_missing'
                                  '{threshold="2.5"}', lambda r: len(r) == 3, timeout=30)
        assert {r["metric"]["engine"] for r in missing} == {"sglang", "tgi", "opentelemetry"}
    finally:
        pages.close()


def test_the_readme_engine_tables_name_every_metric_each_engine_is_read_from():
    readme = (ALERTS.parent / "docs" / "inference.md").read_text()  # the engine tables, on the documentation site
    for engine in ENGINES:
        if engine is not ENGINES[0]:  # the SDK's row names its metrics by their catalog prefix
            assert f"| `{engine.name}` (" in readme, engine.name
        names = [*engine.requests, *engine.running, *engine.waiting, *engine.kv_cache_usage, *engine.in_flight,
                 *(h.metric for h in (engine.request_duration, engine.time_to_first_token, engine.time_per_output_token,
                                      engine.inter_token_latency, engine.queue_duration, engine.prefill_duration,
                                      engine.decode_duration, engine.kv_transfer_duration) if h is not None),
                 *(name for name in (engine.prefix_cache_queries, engine.prefix_cache_hits, engine.spec_decode_drafts,
                                     engine.spec_decode_draft_tokens, engine.spec_decode_accepted_tokens) if name)]
        for name in names:
            base = name.split("{")[0]
            assert base in readme or base.replace("fleetscope_inference", "..") in readme, (engine.name, base)
