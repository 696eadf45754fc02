"""`fleetscope remediate` as a real process on loopback, in front of a fake Kubernetes API: auth, bad and oversized
bodies, dry-run, and the /metrics page."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from fleetscope.localstack.process import fleetscope_server
from tests.remediation.fake_kube import FakeKubeApi, node
from tests.remediation.support import alert, webhook
from tests.test_cli import run

TOKEN = "remediation-token-0123456789"
pytestmark = pytest.mark.integration


def post(address: str, body: bytes, headers: dict[str, str] | None = None, path: str = "/webhook",
         method: str = "POST") -> tuple[int, dict]:
    request = urllib.request.Request(f"http://{address}{path}", data=body if method == "POST" else None,
                                     method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw.startswith(b"{") else {"text": raw.decode()}


def metrics(address: str, headers: dict[str, str]) -> str:
    request = urllib.request.Request(f"http://{address}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


@pytest.fixture
def remediate(tmp_path: Path):
    """Starts `fleetscope remediate` with the Kubernetes backend pointed at a fake API server."""
    started = []
    with FakeKubeApi([node(f"gpu-{i}") for i in range(4)]) as api:
        (tmp_path / "kubeconfig").write_text(api.kubeconfig())

        def start(*flags: str, **overrides) -> str:
            config = {"backend": "kubernetes", "kubernetes": {"kubeconfig": "kubeconfig"},
                      "auth": {"tokens": [TOKEN]}, "audit": {"path": "audit.jsonl"},
                      "limits": {"max_actions_per_hour": 5, "max_drained_ratio": 0.5, "max_body_bytes": 4096},
                      "rules": [{"alertname": "GpuXid", "node_label": "hostname", "resume_on_resolve": True}],
                      **overrides}
            (tmp_path / "remediate.yaml").write_text(yaml.safe_dump(config))
            process, address = fleetscope_server(["remediate", f"--config.file={tmp_path / 'remediate.yaml'}",
                                                  *flags], tmp_path)
            started.append(process)
            process.start(timeout=60)
            return address

        start.api = api
        yield start
        for process in started:
            process.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_dry_run_decides_and_audits_without_a_single_patch(remediate, tmp_path):
    address = remediate()  # dry_run is the default
    status, answer = post(address, webhook(alert("GpuXid", "gpu-1"), alert("Unrelated", "gpu-2")), AUTH)
    assert status == 200
    assert [(d.get("node"), d["decision"]) for d in answer["decisions"]] == \
        [("gpu-1", "dry_run"), (None, "ignored")]
    assert remediate.api.patches() == []
    audited = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["alertname"], a["decision"], a["dry_run"]) for a in audited] == \
        [("GpuXid", "dry_run", True), ("Unrelated", "ignored", True)]
    page = metrics(address, AUTH)
    assert 'fleetscope_remediation_actions_total{action="drain",backend="kubernetes",dry_run="true"} 1.0' in page
    assert "fleetscope_remediation_dry_run_enabled 1.0" in page
    assert 'fleetscope_remediation_notifications_total{outcome="accepted"} 1.0' in page


def test_a_live_drain_and_resume_reach_the_api_and_are_counted(remediate):
    address = remediate(dry_run=False, limits={"max_actions_per_hour": 1, "max_drained_ratio": 0.5})
    assert post(address, webhook(alert("GpuXid", "gpu-1")), AUTH)[1]["decisions"][0]["decision"] == "done"
    assert remediate.api.nodes["gpu-1"]["spec"]["unschedulable"] is True
    refused = post(address, webhook(alert("GpuXid", "gpu-2")), AUTH)[1]["decisions"][0]
    assert refused["refusal"] == "rate_limit" and "unschedulable" not in remediate.api.nodes["gpu-2"]["spec"]
    assert post(address, webhook(alert("GpuXid", "gpu-1", "resolved")), AUTH)[1]["decisions"][0]["decision"] == "done"
    assert remediate.api.nodes["gpu-1"]["spec"]["unschedulable"] is False
    page = metrics(address, AUTH)
    assert 'fleetscope_remediation_refusals_total{action="drain",reason="rate_limit"} 1.0' in page
    assert 'fleetscope_remediation_actions_total{action="resume",backend="kubernetes",dry_run="false"} 1.0' in page
    assert "fleetscope_remediation_rate_limit_used_ratio 1.0" in page
    assert "\nprocess_start_time_seconds " in page and "\nfleetscope_build_info{" in page  # the remediator itself
    if shutil.which("promtool"):
        checked = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, text=True,
                                 timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("body, message", [
    (b"{", "the body is not JSON"),
    (b'{"version": "4", "alerts": [{"status": "firing", "labels": {}}]}', "alerts[0].labels has no alertname"),
])
def test_bad_bodies_are_400_naming_the_problem(remediate, body, message):
    address = remediate()
    status, answer = post(address, body, AUTH)
    assert status == 400 and message in answer["error"]


def test_oversized_bodies_are_refused_unread(remediate):
    address = remediate()
    status, answer = post(address, webhook(*[alert("GpuXid", f"gpu-{i}") for i in range(40)]), AUTH)
    assert status == 413 and "limits.max_body_bytes (4096 bytes)" in answer["error"]
    assert 'outcome="too_large"} 1.0' in metrics(address, AUTH)


def test_without_the_token_nothing_is_decided(remediate, tmp_path):
    address = remediate()
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        status, _ = post(address, webhook(alert("GpuXid", "gpu-1")), headers)
        assert status == 401
    assert not (tmp_path / "audit.jsonl").exists() or (tmp_path / "audit.jsonl").read_text() == ""
    assert post(address, b"", {}, path="/metrics", method="GET")[0] == 401


def test_basic_auth_from_the_web_config(remediate, tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(yaml.safe_dump({"basic_auth_users": {"alertmanager": hashed}}))
    address = remediate(f"--web.config.file={tmp_path / 'web.yml'}", auth={})
    good = {"Authorization": "Basic " + base64.b64encode(b"alertmanager:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"alertmanager:guess").decode()}
    assert post(address, webhook(alert("GpuXid", "gpu-1")), bad)[0] == 401
    assert post(address, webhook(alert("GpuXid", "gpu-1")), good)[0] == 200


def test_serving_every_interface_without_credentials_is_refused(tmp_path):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"rules": [{"alertname": "GpuXid"}]}))
    result = run("remediate", f"--config.file={tmp_path / 'r.yaml'}", "--web.listen-address=:0")
    assert result.returncode == 2 and "refusing to serve on :0 with no credentials" in result.stderr
    bad = run("remediate", f"--config.file={tmp_path / 'missing.yaml'}")
    assert bad.returncode == 2 and "cannot read" in bad.stderr
