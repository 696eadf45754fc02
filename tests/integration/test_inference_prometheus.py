"""The example model server as a real process, scraped by a real Prometheus."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from fleetscope.exporters.catalog import inference
from fleetscope.localstack.prometheus import Prometheus
from tests.conftest import promtool_check_metrics
from tests.support.exposition import sample_name, samples, unserved

pytestmark = pytest.mark.integration


def post(address: str, body: bytes) -> int:
    request = urllib.request.Request(f"http://{address}/v1/models/iris/predict", data=body,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_every_inference_metric_reaches_prometheus(fleetscope_process, prometheus):
    uuid = "GPU-5e1f0c3a-0000-4b7e-9a2c-0d3f6e8b0000"
    address = fleetscope_process("model-server", "--workers=2", f"--gpus={uuid}", "--gpus.hostname=node-a")
    good = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}).encode()
    assert [post(address, good) for _ in range(20)] == [200] * 20
    assert post(address, b'{"instances": [[1, 2]]}') == 400

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        page = response.read().decode()
    result = promtool_check_metrics(page)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert unserved(page, inference.METRICS) == []
    assert {"process_start_time_seconds", "python_info", "fleetscope_build_info"} <= {
        name for name, _, _ in samples(page)}

    server = prometheus([Prometheus.targets("model-server", [address])], scrape_interval="1s")
    server.wait_for('up{job="model-server"} == 1', timeout=30)
    for spec in inference.METRICS:
        name = sample_name(spec)
        if spec is inference.GPU_INFO:  # one per GPU the process declares, not per model
            assert server.wait_for(f'{name}{{engine="sklearn",hostname="node-a",uuid="{uuid}"}} == 1', timeout=30)
            continue
        result = server.wait_for(f'{name}{{model="iris",operation="predict",engine="sklearn"}}', timeout=30)
        assert result, name
    success = server.query('sum(fleetscope_inference_requests_total{outcome="success"})')
    assert float(success[0]["value"][1]) == 20
    client_errors = server.query('fleetscope_inference_requests_total{outcome="client_error",error_type="400"}')
    assert float(client_errors[0]["value"][1]) == 1
    p99 = server.query("histogram_quantile(0.99, sum by (le) (fleetscope_inference_request_duration_seconds_bucket))")
    assert 0 < float(p99[0]["value"][1]) < 1
