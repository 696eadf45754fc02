"""`fleetscope remediate` against Debian's real Slurm on loopback (fleetscope.localstack.slurm): a firing alert drains
a real slurmd node, the drain past the hourly limit is refused and counted, a resolve resumes the node, and a node a
person drained is never resumed."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import yaml

from fleetscope.localstack.process import fleetscope_server
from fleetscope.localstack.slurm import SlurmCluster, missing_binaries, wait_for_state
from fleetscope.remediation.config import SlurmSettings
from fleetscope.remediation.slurm import SlurmBackend
from tests.remediation.support import alert, webhook

MISSING = missing_binaries()
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(bool(MISSING), reason=f"Slurm is not installed ({', '.join(MISSING)} missing): run "
                                 "scripts/setup.sh, which installs Debian's slurm-wlm and munge")]


def post(address: str, body: bytes) -> dict:
    request = urllib.request.Request(f"http://{address}/webhook", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def cluster():
    started = time.monotonic()
    slurm = SlurmCluster(node="gpu-node-1", ghosts=("gpu-node-2", "gpu-node-3", "gpu-node-4")).start(timeout=60)
    print(f"slurm cluster up in {time.monotonic() - started:.1f}s")
    yield slurm
    slurm.stop()
    assert not slurm.directory.exists()


def drained(fields: dict[str, str]) -> bool:
    return "DRAIN" in fields.get("State", "")


def test_the_backend_reads_partitions_and_states_from_sinfo(cluster):
    view = SlurmBackend(SlurmSettings(), env=cluster.env).inspect("gpu-node-1")
    assert view.exists and not view.drained
    (group,) = view.groups
    assert group.name == "partition gpu" and group.nodes == {f"gpu-node-{i}" for i in range(1, 5)}
    assert not SlurmBackend(SlurmSettings(), env=cluster.env).inspect("gpu-node-99").exists


def test_drain_once_refuse_past_the_limit_resume_on_resolve(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(cluster.config_path))  # the remediator's scontrol and sinfo read it
    (tmp_path / "remediate.yaml").write_text(yaml.safe_dump({
        "dry_run": False, "backend": "slurm", "audit": {"path": str(tmp_path / "audit.jsonl")},
        "limits": {"max_actions_per_hour": 1, "max_drained_ratio": 0.5},
        "rules": [{"alertname": "GpuFellOffBus", "node_label": "hostname", "reason": "GPU fell off the bus",
                   "resume_on_resolve": True}]}))
    process, address = fleetscope_server(["remediate", f"--config.file={tmp_path / 'remediate.yaml'}"], tmp_path)
    process.start(timeout=60)
    try:
        started = time.monotonic()
        (first,) = post(address, webhook(alert("GpuFellOffBus", "gpu-node-1")))["decisions"]
        assert first["decision"] == "done", first
        fields = wait_for_state(cluster, "gpu-node-1", drained)
        assert fields["Reason"].startswith("fleetscope: GpuFellOffBus: GPU fell off the bus"), fields

        (second,) = post(address, webhook(alert("GpuFellOffBus", "gpu-node-2")))["decisions"]
        assert second["refusal"] == "rate_limit", second
        assert not drained(cluster.node_fields("gpu-node-2"))

        (repeat,) = post(address, webhook(alert("GpuFellOffBus", "gpu-node-1")))["decisions"]
        assert repeat["refusal"] == "already_drained"

        (resumed,) = post(address, webhook(alert("GpuFellOffBus", "gpu-node-1", "resolved")))["decisions"]
        assert resumed["decision"] == "done", resumed
        wait_for_state(cluster, "gpu-node-1", lambda fields: not drained(fields))
        print(f"drain, refusal and resume against real Slurm in {time.monotonic() - started:.1f}s")

        cluster.scontrol("update", "nodename=gpu-node-3", "state=drain", "reason=bad DIMM")
        (theirs,) = post(address, webhook(alert("GpuFellOffBus", "gpu-node-3", "resolved")))["decisions"]
        assert theirs["refusal"] == "not_drained_by_us"
        assert drained(cluster.node_fields("gpu-node-3"))

        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
            page = response.read().decode()
        assert 'fleetscope_remediation_actions_total{action="drain",backend="slurm",dry_run="false"} 1.0' in page
        assert 'fleetscope_remediation_refusals_total{action="drain",reason="rate_limit"} 1.0' in page
        assert 'fleetscope_remediation_actions_total{action="resume",backend="slurm",dry_run="false"} 1.0' in page
        audited = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [(a["node"], a["action"], a.get("refusal", a["decision"])) for a in audited] == [
            ("gpu-node-1", "drain", "done"), ("gpu-node-2", "drain", "rate_limit"),
            ("gpu-node-1", "drain", "already_drained"), ("gpu-node-1", "resume", "done"),
            ("gpu-node-3", "resume", "not_drained_by_us")]
    finally:
        process.stop()


def test_the_drained_ratio_counts_drains_already_in_the_partition(cluster):
    # Slurm refuses to resume a node no slurmd answers for, so the ghost stays drained: each test drains its own.
    backend = SlurmBackend(SlurmSettings(), env=cluster.env)
    (group,) = backend.inspect("gpu-node-1").groups
    assert "gpu-node-4" not in group.drained
    cluster.scontrol("update", "nodename=gpu-node-4", "state=drain", "reason=bad DIMM")
    (group,) = backend.inspect("gpu-node-1").groups
    assert "gpu-node-4" in group.drained and "gpu-node-1" not in group.drained
    assert backend.inspect("gpu-node-4").drained and not backend.inspect("gpu-node-4").ours
