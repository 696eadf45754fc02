"""The drift service and a model server sending it outputs, scraped by a real Prometheus."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from fleetscope.drift import catalog
from fleetscope.localstack.prometheus import Prometheus
from tests.conftest import promtool_check_metrics
from tests.support.exposition import samples, unserved
from tests.support.fleet_data import DRIFT_CONFIG, feed_drift_service

pytestmark = pytest.mark.integration

def page_of(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        return response.read().decode()


def test_drift_metrics_reach_prometheus(fleetscope_process, prometheus, tmp_path):
    (tmp_path / "drift.yaml").write_text(DRIFT_CONFIG)
    drift = fleetscope_process("drift serve", f"--config.file={tmp_path / 'drift.yaml'}",
                               f"--storage.path={tmp_path / 'drift.sqlite'}")
    feed_drift_service(drift)  # a reference, 1500 shifted outputs and one bad batch

    server = prometheus([Prometheus.targets("drift", [drift])], scrape_interval="1s")
    server.wait_for('up{job="drift"} == 1', timeout=30)
    detected = server.wait_for('fleetscope_drift_dataset_detected{model="iris",segment=""} == 1', timeout=30)
    assert detected, "the shifted outputs were not reported as drift"
    score = server.query('fleetscope_drift_score{model="iris",column="score",segment=""}')
    assert score[0]["metric"]["method"] == "wasserstein" and float(score[0]["value"][1]) > 0.5
    assert server.query('fleetscope_drift_detected{model="iris",segment="region=eu",column="score"} == 1')
    assert float(server.query('fleetscope_drift_rows_accepted_total{model="iris"}')[0]["value"][1]) == 1500

    page = page_of(drift)
    result = promtool_check_metrics(page)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert unserved(page, catalog.SERVICE_METRICS) == []


def test_model_server_outputs_flow_through_the_client(fleetscope_process, tmp_path):
    config = DRIFT_CONFIG.replace("columns: {score: numerical, label: categorical, region: categorical}",
                            "columns: {sepal_length: numerical, sepal_width: numerical, petal_length: numerical, "
                            "petal_width: numerical, label: categorical, confidence: numerical}").replace(
        "    segments: [region]\n", "")
    (tmp_path / "drift.yaml").write_text(config)
    drift = fleetscope_process("drift serve", f"--config.file={tmp_path / 'drift.yaml'}",
                               f"--storage.path={tmp_path / 'drift.sqlite'}")
    server = fleetscope_process("model-server", f"--drift.url=http://{drift}")
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}).encode()
    for _ in range(10):
        request = urllib.request.Request(f"http://{server}/v1/models/iris/predict", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    page = ""
    for _ in range(100):  # the client flushes every second
        page = page_of(server)
        if 'fleetscope_drift_client_rows_sent_total{model="iris"} 20.0' in page:
            break
        time.sleep(0.1)
    assert 'fleetscope_drift_client_rows_sent_total{model="iris"} 20.0' in page
    assert {spec.name for spec in catalog.CLIENT_METRICS} - {"fleetscope_drift_client_rows_dropped_total"} <= \
        {name for name, _, _ in samples(page)}
    assert promtool_check_metrics(page).returncode == 0
    assert 'fleetscope_drift_rows_accepted_total{model="iris"} 20.0' in page_of(drift)
