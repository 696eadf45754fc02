"""From a fault to on-call, with real components on loopback: the simulated exporter and the
drift service, scraped by Prometheus evaluating the generated rules, a real Alertmanager with
the generated routing, and this test standing in for the webhook, PagerDuty, Opsgenie and
Slack. Also: the generated inhibit rules, applied by a real Alertmanager."""

from __future__ import annotations

import time

import pytest
import yaml

from fleetscope.alerts import generate, routing
from fleetscope.alerts.routing import local_receivers
from fleetscope.localstack.alertmanager import Alertmanager
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.localstack.receiver import Notification, NotificationReceiver
from fleetscope.mixin.config import MonitoringConfig, from_mapping
from tests.support.fleet_data import DRIFT_CONFIG, feed_drift_service

pytestmark = pytest.mark.integration

def _config(tmp_path, receiver: NotificationReceiver):
    """The default config, with short `for`s and timings, and every channel pointed at the receiver."""
    return from_mapping({
        "drift": {"detected_for": "5s"},
        "routing": {"group_wait": "1s", "group_interval": "2s", "watchdog_repeat_interval": "3s",
                    **local_receivers(receiver.url, tmp_path / "secrets", set(MonitoringConfig().teams.values()))},
    })


def _secret(tmp_path, name: str) -> str:
    """What the receiver must be sent: a secret as Alertmanager reads it from its file."""
    return (tmp_path / "secrets" / name).read_text()


def _webhook_alert(notification: Notification, **labels: str) -> dict | None:
    if notification.path != "/webhook" or not isinstance(notification.body, dict):
        return None
    return next((alert for alert in notification.body["alerts"] if alert["status"] == "firing"
                 and all(alert["labels"].get(key) == value for key, value in labels.items())), None)


def test_an_xid_and_a_drift_shift_reach_on_call(tmp_path, fleetscope_process, prometheus):
    receiver = NotificationReceiver().start()
    try:
        config = _config(tmp_path, receiver)
        texts = generate.files(config)
        for name, text in texts.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        alertmanager = Alertmanager(tmp_path / "alertmanager",
                                    yaml.safe_load(texts["alertmanager/alertmanager.yml"])).start()
        try:
            # GPU 2 raises XID 79 (fallen off the bus) 15 s after the exporter starts.
            exporter = fleetscope_process("exporter", "--simulate", "--simulate.xid=15s:2:79")
            (tmp_path / "drift.yaml").write_text(DRIFT_CONFIG)
            drift = fleetscope_process("drift serve", f"--config.file={tmp_path / 'drift.yaml'}",
                                       f"--storage.path={tmp_path / 'drift.sqlite'}")
            prometheus([Prometheus.targets("fleetscope-exporter", [exporter]),
                        Prometheus.targets("fleetscope-drift", [drift])],
                       rule_files=[tmp_path / "rules" / name for name in generate.RULE_FILES],
                       alertmanagers=[alertmanager.address])
            started = time.monotonic()
            feed_drift_service(drift)  # a reference, then outputs shifted by one standard deviation

            xid = receiver.wait_for(lambda n: _webhook_alert(n, alertname="FleetscopeGPUXidError", xid="79"), 90)
            alert = _webhook_alert(xid, alertname="FleetscopeGPUXidError", xid="79")
            assert alert["labels"] | {"instance": ""} == alert["labels"] | {
                "alertname": "FleetscopeGPUXidError", "severity": "critical", "team": "gpu-infra", "gpu": "2",
                "job": "fleetscope-exporter", "instance": ""}
            assert alert["labels"]["uuid"].startswith("GPU-") and alert["labels"]["hostname"]
            assert alert["annotations"]["runbook_url"].endswith("/FleetscopeGPUXidError.md")
            assert xid.headers["Authorization"] == f"Bearer {_secret(tmp_path, 'webhook-token')}"

            # The page went to PagerDuty with the key from its file, and to the team's Slack.
            page = receiver.wait_for(lambda n: n.path == "/pagerduty/v2/enqueue"
                                     and "FleetscopeGPUXidError" in str(n.body), 30)
            assert page.body["routing_key"] == _secret(tmp_path, "gpu-infra-pagerduty")
            assert page.body["event_action"] == "trigger" and page.body["payload"]["severity"] == "critical"
            receiver.wait_for(lambda n: n.path == "/slack/gpu-infra" and "XID 79" in str(n.body), 30)

            drifted = receiver.wait_for(
                lambda n: _webhook_alert(n, alertname="FleetscopeModelDriftDetected", model="iris"), 90)
            alert = _webhook_alert(drifted, alertname="FleetscopeModelDriftDetected", model="iris")
            assert alert["labels"]["severity"] == "warning" and alert["labels"]["team"] == "ml-platform"
            assert "has drifted" in alert["annotations"]["description"]
            ticket = receiver.wait_for(lambda n: n.path == "/opsgenie/v2/alerts"
                                       and "FleetscopeModelDriftDetected" in str(n.body), 30)
            assert ticket.headers["Authorization"] == f"GenieKey {_secret(tmp_path, 'ml-platform-opsgenie')}"
            # A ticket never pages.
            assert not [n for n in receiver.notifications
                        if n.path.startswith("/pagerduty") and "FleetscopeModelDriftDetected" in str(n.body)]
            # The Watchdog reached the dead man's switch, again and again, and nothing else.
            receiver.wait_for(lambda n: n.path == "/watchdog" and len([
                m for m in receiver.notifications if m.path == "/watchdog"]) >= 2, 90)
            assert not [n for n in receiver.notifications
                        if n.path != "/watchdog" and "FleetscopeWatchdog" in str(n.body)]
            assert time.monotonic() - started < 150
        finally:
            alertmanager.stop()
    finally:
        receiver.stop()


def _alert(name: str, severity: str, **labels: str) -> dict:
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": name}}


def _settled(alertmanager: Alertmanager, key, expected: dict) -> dict:
    """Alertmanager's state of each alert, once it is what the test expects or 30 s have passed. An alert can
    read active for a moment before the inhibitor has taken in the alert that silences it (seen on a busy
    machine), so a state is only wrong if it stays wrong."""
    deadline = time.monotonic() + 30
    while True:
        states = {key(a["labels"]): a["status"]["state"] for a in alertmanager.alerts()}
        if all(states.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def by_gpu(labels: dict) -> tuple[str, str]:
    return labels["alertname"], labels.get("uuid", "node")


def test_one_gpu_fault_pages_once_and_a_second_hosts_fault_pages_anew(tmp_path):
    receiver = NotificationReceiver().start()
    try:
        config = _config(tmp_path, receiver)
        with Alertmanager(tmp_path / "alertmanager", routing.alertmanager_config(config)) as alertmanager:
            gpu0 = {"instance": "node-1:9835", "hostname": "node-1", "gpu": "0", "uuid": "GPU-0", "team": "gpu-infra"}
            gpu1 = gpu0 | {"gpu": "1", "uuid": "GPU-1"}
            gpu5 = {"instance": "node-5:9835", "hostname": "node-5", "gpu": "3", "uuid": "GPU-53", "team": "gpu-infra"}
            alertmanager.post_alerts([
                # GPU 0 fell off the bus: the XID and the ECC error are its symptoms; GPU 1's XID is its own.
                _alert("FleetscopeGPUDown", "critical", **gpu0),
                _alert("FleetscopeGPUXidError", "critical", **gpu0, xid="79"),
                _alert("FleetscopeGPUDoubleBitEccErrors", "critical", **gpu0),
                _alert("FleetscopeGPUMissing", "critical", instance="node-1:9835", hostname="node-1", team="gpu-infra"),
                _alert("FleetscopeGPUXidError", "critical", **gpu1, xid="48"),
                _alert("FleetscopeGPUXidError", "critical", instance="node-6:9835", hostname="node-6", gpu="2",
                       uuid="GPU-62", team="gpu-infra", xid="48"),
                # A recovery action is the one page for the faults that led to it.
                _alert("FleetscopeGPURecoveryActionRequired", "critical", **gpu5, action="gpu_reset"),
                _alert("FleetscopeGPUXidError", "critical", **gpu5, xid="144"),
            ])
            expected = {
                ("FleetscopeGPUXidError", "GPU-62"): "active",
                ("FleetscopeGPUDown", "GPU-0"): "active",
                ("FleetscopeGPUXidError", "GPU-0"): "suppressed",
                ("FleetscopeGPUDoubleBitEccErrors", "GPU-0"): "suppressed",
                ("FleetscopeGPUMissing", "node"): "suppressed",
                ("FleetscopeGPUXidError", "GPU-1"): "active",
                ("FleetscopeGPURecoveryActionRequired", "GPU-53"): "active",
                ("FleetscopeGPUXidError", "GPU-53"): "suppressed",
            }
            assert _settled(alertmanager, by_gpu, expected) == expected
            # Two hosts' XID 48s are two incidents, each paged, not one folded into the other.
            node_1 = receiver.wait_for(lambda n: n.path == "/pagerduty/v2/enqueue" and "GPU-1" in str(n.body), 30)
            node_6 = receiver.wait_for(lambda n: n.path == "/pagerduty/v2/enqueue" and "GPU-62" in str(n.body), 30)
            assert "node-6" not in str(node_1.body) and "node-1" not in str(node_6.body)

            alertmanager.post_alerts([_alert("FleetscopeNVMLUnreachable", "critical", instance="node-5:9835",
                                             team="gpu-infra")])
            expected = {("FleetscopeGPURecoveryActionRequired", "GPU-53"): "suppressed"}  # NVML is down there
            assert _settled(alertmanager, by_gpu, expected)[("FleetscopeGPURecoveryActionRequired", "GPU-53")] == \
                "suppressed"
    finally:
        receiver.stop()


def test_the_inhibit_rules_silence_a_down_node_ticket_twins_and_an_unfit_nodes_gpu_pages(tmp_path):
    receiver = NotificationReceiver().start()
    try:
        config = _config(tmp_path, receiver)
        with Alertmanager(tmp_path / "alertmanager", routing.alertmanager_config(config)) as alertmanager:
            gpu = {"instance": "node-1:9835", "hostname": "node-1", "gpu": "0", "uuid": "GPU-0", "team": "gpu-infra"}
            node_3 = {"instance": "node-3:9835", "hostname": "node-3"}
            slo = {"model": "llama", "engine": "vllm", "namespace": "chat", "latency": "request_duration",
                   "threshold": "2.5", "objective": "0.99", "team": "serving"}
            alertmanager.post_alerts([
                _alert("FleetscopeExporterDown", "warning", instance="node-1:9835", team="gpu-infra"),
                _alert("FleetscopeGPUThermalThrottling", "warning", **gpu, reason="hw_thermal_slowdown"),
                _alert("FleetscopeGPUThermalThrottling", "warning", **(gpu | {"instance": "node-2:9835",
                                                                          "hostname": "node-2"}),
                       reason="hw_thermal_slowdown"),
                _alert("FleetscopeInferenceLatencyBudgetBurn", "critical", **slo, long_window="1h", short_window="5m"),
                _alert("FleetscopeInferenceLatencyBudgetBurn", "warning", **slo, long_window="1d", short_window="2h"),
                _alert("FleetscopeInferenceLatencyBudgetBurn", "warning", **(slo | {"model": "mistral"}),
                       long_window="1d", short_window="2h"),
                # node-3 is paged unfit: that page stands for its GPUs' pages (not their tickets); node-4's GPU
                # page is its own.
                _alert("FleetscopeNodeUnfit", "critical", instance="node-3:9835", hostname="node-3",
                       team="gpu-infra", job="fleetscope-exporter"),
                _alert("FleetscopeGPUXidError", "critical", **(gpu | node_3), xid="79"),
                _alert("FleetscopeGPURowRemapFailed", "critical", **(gpu | node_3 | {"gpu": "1", "uuid": "GPU-31"})),
                _alert("FleetscopeGPUXidError", "warning", **(gpu | node_3), xid="94"),
                _alert("FleetscopeGPUDown", "critical", **(gpu | {"instance": "node-4:9835", "hostname": "node-4"})),
            ])
            expected = {
                ("FleetscopeExporterDown", "node-1:9835", "warning"): "active",
                ("FleetscopeGPUThermalThrottling", "node-1:9835", "warning"): "suppressed",  # its node is down
                ("FleetscopeGPUThermalThrottling", "node-2:9835", "warning"): "active",
                ("FleetscopeInferenceLatencyBudgetBurn", "llama", "critical"): "active",
                ("FleetscopeInferenceLatencyBudgetBurn", "llama", "warning"): "suppressed",  # its page twin fires
                ("FleetscopeInferenceLatencyBudgetBurn", "mistral", "warning"): "active",
                ("FleetscopeNodeUnfit", "node-3:9835", "critical"): "active",
                ("FleetscopeGPUXidError", "node-3:9835", "critical"): "suppressed",  # one page per node
                ("FleetscopeGPURowRemapFailed", "node-3:9835", "critical"): "suppressed",
                ("FleetscopeGPUXidError", "node-3:9835", "warning"): "active",  # tickets are not pages
                ("FleetscopeGPUDown", "node-4:9835", "critical"): "active",
            }
            assert _settled(alertmanager, lambda labels: (labels["alertname"], labels.get(
                "instance", labels.get("model")), labels["severity"]), expected) == expected
    finally:
        receiver.stop()
