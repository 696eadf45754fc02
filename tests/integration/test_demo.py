"""`fleetscope demo` as a newcomer runs it: everything starts, the GPU, drift and inference alerts
it is built to show reach the local webhook through Prometheus and Alertmanager, and Ctrl-C
stops every process it started."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from fleetscope.localstack.process import port_open

pytestmark = pytest.mark.integration

# XID 79 is the GPU falling off the bus: the XID pages, and so does the GPU that stopped answering.
EXPECTED = {"FleetscopeGPUXidError": ("critical", "gpu-infra"), "FleetscopeGPUDown": ("critical", "gpu-infra"),
            "FleetscopeModelDriftDetected": ("warning", "ml-platform"),
            # the shifted flowers' species arrive as labels: the model's realized accuracy falls below 0.8
            "FleetscopeModelQualityBelowObjective": ("warning", "ml-platform"),
            "FleetscopeInferenceLatencyBudgetBurn": ("critical", "serving")}


def _firing(workdir) -> dict[str, dict]:
    path = workdir / "notifications.jsonl"
    alerts = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        for alert in json.loads(line)["alerts"]:
            if alert["status"] == "firing":
                alerts.setdefault(alert["labels"]["alertname"], alert["labels"])
    return alerts


def test_the_demo_shows_gpu_drift_and_inference_alerts_then_stops_cleanly(tmp_path):
    # The XID comes well after Prometheus's first scrape: the XID alert deliberately ignores a
    # counter first seen already raised (it could be from before Prometheus started), and on a
    # loaded machine the demo's services take over 10 s to start.
    demo = subprocess.Popen(
        [sys.executable, "-m", "fleetscope", "demo", "--nodes=2", "--xid-after=30s", "--shift-after=5s",
         "--slowdown-after=15s", "--duration=5m", f"--workdir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 180
        while set(EXPECTED) - set(_firing(tmp_path)) and time.monotonic() < deadline and demo.poll() is None:
            time.sleep(1)
        firing = _firing(tmp_path)
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, output
    for name, (severity, team) in EXPECTED.items():
        assert name in firing, f"{name} never reached the webhook:\n{output}"
        assert (firing[name]["severity"], firing[name]["team"]) == (severity, team)
    assert firing["FleetscopeGPUXidError"]["xid"] == "79" and firing["FleetscopeGPUXidError"]["gpu"] == "2"
    assert (firing["FleetscopeGPUDown"]["gpu"], firing["FleetscopeGPUDown"]["hostname"]) == ("2", "gpu-node-1")
    assert firing["FleetscopeModelDriftDetected"]["model"] == "iris"
    assert (firing["FleetscopeModelQualityBelowObjective"]["model"],
            firing["FleetscopeModelQualityBelowObjective"]["metric"]) == ("iris", "accuracy")
    for name in EXPECTED:
        assert re.search(rf"FIRING +{name} ", output), output
    for page in ("/targets", "/alerts", "/v1/models/iris/report", "Alertmanager"):
        assert page in output
    assert "stopping" in output
    ports = {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", output)}
    assert len(ports) >= 6 and not [port for port in ports if port_open(port)], "a process outlived the demo"
