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

from fleetscope.alerts import generate, inference
from fleetscope.alerts.engines import ENGINES
from fleetscope.exporters import catalog
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.web.server import Request, Response, WebServer

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


def test_every_engine_yields_request_rates_and_latency():
    groups = {group["name"]: group["rules"] for group in inference.rule_groups()["groups"]}
    for engine in ENGINES:
        records = {rule["record"] for rule in groups[f"fleetscope-inference-{engine.name}"]}
        assert "fleetscope:inference_requests:rate5m" in records
        assert "fleetscope:inference_request_duration_seconds:mean_rate5m" in records


@pytest.mark.parametrize("bound, value, matches", [(1.0, "1", True), (1.0, "1.0", True), (1.0, "10.0", False),
                                                   (0.25, "0.25", True), (0.25, "0.255", False),
                                                   (2.5, "2.5", True)])
def test_le_matchers_take_every_client_spelling(bound, value, matches):
    pattern = re.search(r'le=~"(.*)"', inference.le_matcher(bound)).group(1).replace("\\\\", "\\")
    assert bool(re.fullmatch(pattern, value)) is matches


class EnginePages:
    """Serves one page per engine, in its own format, whose counters grow with every scrape."""

    def __init__(self):
        self.ticks: dict[str, int] = {}
        self.server = WebServer("127.0.0.1:0", {f"/{engine}/metrics": self._page(engine) for engine in PAGES})
        self.address = f"127.0.0.1:{self.server.port}"
        self.server.start()

    def _page(self, engine: str):
        def serve(request: Request) -> Response:
            tick = self.ticks[engine] = self.ticks.get(engine, 0) + 1
            return Response(body=PAGES[engine](tick).encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4"})
        return serve

    def close(self):
        self.server.shutdown()


def _vllm(t: int) -> str:
    labels = 'engine="0",model_name="llama"'
    buckets = "".join(f'vllm:e2e_request_latency_seconds_bucket{{{labels},le="{le}"}} {t * n}\n'
                      for le, n in (("0.5", 0), ("0.8", 5), ("1.0", 10), ("+Inf", 10)))
    return ("# TYPE vllm:request_success_total counter\n"
            f'vllm:request_success_total{{{labels},finished_reason="stop"}} {t * 10}\n'
            "# TYPE vllm:e2e_request_latency_seconds histogram\n" + buckets +
            f"vllm:e2e_request_latency_seconds_count{{{labels}}} {t * 10}\n"
            f"vllm:e2e_request_latency_seconds_sum{{{labels}}} {t * 9.0}\n")


def _sglang(t: int) -> str:
    labels = 'model_name="qwen"'
    return ("# TYPE sglang:num_requests_total counter\n"
            f"sglang:num_requests_total{{{labels}}} {t * 9}\n"
            "# TYPE sglang:num_aborted_requests_total counter\n"
            f"sglang:num_aborted_requests_total{{{labels}}} {t}\n"
            "# TYPE sglang:e2e_request_latency_seconds histogram\n"
            f'sglang:e2e_request_latency_seconds_bucket{{{labels},le="2.0"}} 0\n'
            f'sglang:e2e_request_latency_seconds_bucket{{{labels},le="4.0"}} {t * 9}\n'
            f'sglang:e2e_request_latency_seconds_bucket{{{labels},le="+Inf"}} {t * 9}\n'
            f"sglang:e2e_request_latency_seconds_count{{{labels}}} {t * 9}\n"
            f"sglang:e2e_request_latency_seconds_sum{{{labels}}} {t * 27}\n")


def _tgi(t: int) -> str:
    return ("# TYPE tgi_request_count counter\n"
            f"tgi_request_count {t * 10}\n"
            "# TYPE tgi_request_failure counter\n"
            f'tgi_request_failure{{err="generation"}} {t}\n'
            "# TYPE tgi_request_duration histogram\n"
            f'tgi_request_duration_bucket{{le="0.7481827642679213"}} 0\n'
            f'tgi_request_duration_bucket{{le="1.122274146401882"}} {t * 10}\n'
            f'tgi_request_duration_bucket{{le="+Inf"}} {t * 10}\n'
            f"tgi_request_duration_sum {t * 9.0}\n"
            f"tgi_request_duration_count {t * 10}\n")


def _triton(t: int) -> str:
    labels = 'model="resnet",version="1"'
    return ("# TYPE nv_inference_request_success counter\n"
            f"nv_inference_request_success{{{labels}}} {t * 19}\n"
            "# TYPE nv_inference_request_failure counter\n"
            f'nv_inference_request_failure{{{labels},reason="REJECTED"}} {t}\n'
            "# TYPE nv_inference_request_duration_us counter\n"
            f"nv_inference_request_duration_us{{{labels}}} {t * 400000}\n")


PAGES = {"vllm": _vllm, "sglang": _sglang, "tgi": _tgi, "triton": _triton}


@pytest.mark.integration
def test_prometheus_records_one_schema_over_every_engine(tmp_path, fleetscope_process, prometheus):
    pages = EnginePages()
    try:
        sdk = fleetscope_process("model-server")
        scrape = [{"job_name": engine, "metrics_path": f"/{engine}/metrics",
                   "static_configs": [{"targets": [pages.address]}]} for engine in PAGES]
        scrape.append(Prometheus.targets("iris", [sdk]))
        rules = tmp_path / "inference.yaml"
        rules.write_text(yaml.safe_dump(inference.rule_groups()))
        server = prometheus(scrape, rule_files=[rules])
        server.wait_for('up{job="iris"} == 1', timeout=30)  # so that the requests below are an increase
        request = urllib.request.Request(f"http://{sdk}/v1/models/iris/predict",
                                         data=json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
                                         headers={"content-type": "application/json"})
        for _ in range(5):
            urllib.request.urlopen(request, timeout=10).read()
        rates = server.wait_for("fleetscope:inference_requests:rate5m > 0", lambda r: len(r) == 5, timeout=30)
        assert {(r["metric"]["engine"], r["metric"]["model"]) for r in rates} == {
            ("vllm", "llama"), ("sglang", "qwen"), ("tgi", "tgi"), ("triton", "resnet"), ("sklearn", "iris")}
        ratios = server.wait_for("fleetscope:inference_error_ratio:rate5m", lambda r: len(r) == 3, timeout=30)
        by_engine = {r["metric"]["engine"]: float(r["value"][1]) for r in ratios}
        assert by_engine["tgi"] == pytest.approx(0.1) and by_engine["triton"] == pytest.approx(0.05)
        assert by_engine["sklearn"] == 0
        p50 = server.wait_for('fleetscope:inference_request_duration_seconds:quantile_rate5m{quantile="0.5"}',
                              lambda r: len(r) == 4, timeout=30)
        values = {r["metric"]["engine"]: float(r["value"][1]) for r in p50}
        assert values["vllm"] == pytest.approx(0.8) and values["sglang"] == pytest.approx(3)
        assert 0.748 < values["tgi"] < 1.123 and 0 < values["sklearn"] < 1
        mean = server.wait_for('fleetscope:inference_request_duration_seconds:mean_rate5m{engine="triton"}',
                               timeout=30)
        assert float(mean[0]["value"][1]) == pytest.approx(0.02)
    finally:
        pages.close()
