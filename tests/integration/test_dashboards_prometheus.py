"""Every dashboard panel's queries run against a real Prometheus that scraped the real
exporter, drift service and an SDK-instrumented server: each panel returns data."""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest
import yaml

from fleetscope.alerts import collectives, efficiency, fleet, gpu, health, inference, training
from fleetscope.cli import main
from fleetscope.dashboards import fleet as fleet_dashboard
from fleetscope.dashboards import queries
from fleetscope.dashboards.common import UIDS
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.mixin.config import MonitoringConfig, NormalizationConfig
from fleetscope.prometheus_api import QueryError
from tests.support.engine_pages import EnginePages
from tests.support.fleet_data import DRIFT_CONFIG, LlmTraffic, feed_drift_service

pytestmark = pytest.mark.integration
RATE_INTERVAL = "15s"
# Panels that read records of only what needs someone (`... > 0`): empty while every GPU is well, so each record
# they read is checked without that last filter, which shows it reads series that are there.
ONLY_WHAT_NEEDS_SOMEONE = {fleet_dashboard.ATTENTION}
# Panels of what a fault cost, empty in a healthy fleet and counted hourly: their queries must run here, and
# alerts/tests/training-nodes.test.yaml shows the table ranking a simulated bad node first.
ONLY_AFTER_A_FAULT = {"Nodes costing the most goodput"}
RECORDS = {rule["record"]: rule["expr"] for group in fleet.rule_groups(MonitoringConfig()) for rule in group["rules"]}
# The Ray dashboard reads Ray's own metrics: tests/ray/test_ray_cluster_prometheus.py runs it against a real Ray head.
FLEET_BOARDS = sorted(uid for key, uid in UIDS.items() if key != "ray")


@pytest.fixture
def fleet_prometheus(fleetscope_process, prometheus, tmp_path):
    exporter = fleetscope_process("exporter", "--simulate")
    (tmp_path / "drift.yaml").write_text(DRIFT_CONFIG)
    drift = fleetscope_process("drift serve", f"--config.file={tmp_path / 'drift.yaml'}",
                               f"--storage.path={tmp_path / 'drift.sqlite'}")
    feed_drift_service(drift)
    traffic = LlmTraffic().start()
    job = TrainingJob()
    try:
        # The inference schema the dashboard reads, its SLO ratios every second rather than every minute,
        # and serving efficiency: the SDK server declares two of the simulated exporter's GPUs.
        normalization = NormalizationConfig(slo_interval="1s")
        serving = dataclasses.replace(MonitoringConfig().inference, normalization=normalization)
        config = dataclasses.replace(MonitoringConfig(), inference=serving)
        rules = tmp_path / "inference.yaml"
        rules.write_text(yaml.safe_dump({"groups": inference.rule_groups(normalization)["groups"]
                                         + efficiency.rule_groups(config) + gpu.rule_groups(config)["groups"]
                                         + fleet.rule_groups(config) + collectives.rule_groups(config)["groups"]
                                         + health.rule_groups(config)["groups"]
                                         + training.rule_groups(config)["groups"]}))
        server = prometheus([Prometheus.targets("fleetscope-exporter", [exporter]),
                             Prometheus.targets("fleetscope-drift", [drift]),
                             Prometheus.targets("llm", [traffic.address]),
                             Prometheus.targets("vllm", [traffic.engine.address],
                                                metrics_path=EnginePages.path("vllm")),
                             Prometheus.targets("training", [job.address])], scrape_interval="1s",
                            rule_files=[rules])
        server.wait_for("count(up == 1) == 5", timeout=60)
        server.wait_for('fleetscope_drift_share_ratio{model="iris"}', timeout=60)
        time.sleep(20)  # enough samples for rate() over 15s windows
        yield server
    finally:
        job.stop()
        traffic.stop()


def test_every_panel_returns_data_and_previews_render(fleet_prometheus, tmp_path):
    empty, errors, ran = [], [], 0
    for board in (board for board in queries.load() if board["uid"] in FLEET_BOARDS):
        values = queries.defaults(board)
        for panel in queries.panel_queries(board):
            results = []
            for expr in panel.exprs:
                concrete = queries.concrete(expr, values, RATE_INTERVAL)
                try:
                    results.append(fleet_prometheus.query(concrete))
                    ran += 1
                    if panel.title in ONLY_WHAT_NEEDS_SOMEONE:
                        [name] = re.findall(r"fleetscope:[a-z0-9_:]+", concrete)
                        assert RECORDS[name].endswith(" > 0"), RECORDS[name]
                        results.append(fleet_prometheus.query(RECORDS[name].removesuffix(" > 0")))
                except QueryError as error:
                    errors.append(f"{board['uid']}: {panel.title}: {concrete}: {error}")
            if not any(results) and panel.title not in ONLY_AFTER_A_FAULT:
                empty.append(f"{board['uid']}: {panel.title}")
    assert errors == []
    assert empty == [], f"panels with no data: {empty}"
    assert ran > 50

    # and the preview draws them, from the same Prometheus
    output = tmp_path / "previews"
    assert main(["dashboards", "preview", f"--prometheus.url={fleet_prometheus.url}", f"--output={output}",
                 "--range=60s", f"--rate-interval={RATE_INTERVAL}",
                 *(f"--dashboard={uid}" for uid in FLEET_BOARDS)]) == 0
    images = sorted(output.glob("*.png"))
    assert [image.stem for image in images] == FLEET_BOARDS
    assert all(image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 50_000 for image in images)


class TrainingJob:
    """A training loop with the training SDK, served on loopback: steps of 50 ms, a checkpoint every 20."""

    def __init__(self) -> None:
        from fleetscope.exporters.training import TrainingMetrics
        from fleetscope.exporters.training.prometheus import serve
        from fleetscope.localstack.process import free_port

        self.metrics = TrainingMetrics(job="llama-pretrain", rank=0, hostname="gpu-node-1")
        port = free_port()
        self.server, _ = serve(self.metrics, port, "127.0.0.1")
        self.address = f"127.0.0.1:{port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._train, daemon=True)
        self._thread.start()

    def _train(self) -> None:
        step = 0
        while not self._stop.is_set():
            step += 1
            with self.metrics.step(samples=32, tokens=32 * 512):
                time.sleep(0.05)
            if step % 20 == 0:
                with self.metrics.checkpoint("save", step=step):
                    time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.server.shutdown()  # type: ignore[attr-defined]
        self.metrics.close()
