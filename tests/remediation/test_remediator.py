"""The decisions: limits, dry-run, resume only where allowed and only what the remediator drained, the audit log."""

from __future__ import annotations

import json

import pytest

from fleetscope.remediation.audit import AuditLog
from fleetscope.remediation.config import parse
from fleetscope.remediation.payload import parse as parse_payload
from fleetscope.remediation.remediator import Remediator
from tests.remediation.support import MemoryBackend, alert, webhook

NODES = [f"gpu-{i}" for i in range(10)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path, backend=None, clock=None, **overrides):
    document = {"dry_run": False, "limits": {"max_actions_per_hour": 2, "max_drained_ratio": 0.3},
                "audit": {"path": str(tmp_path / "audit.jsonl")},
                "rules": [{"alertname": "GpuFellOffBus", "node_label": "hostname", "matchers": ['severity="page"'],
                           "reason": "GPU fell off the bus", "resume_on_resolve": True},
                          {"alertname": "GpuXid", "node_label": "hostname"}],
                **overrides}
    config = parse(document)
    backend = backend or MemoryBackend({"gpu": NODES})
    return Remediator(config, backend, AuditLog(config.audit_path), clock or Clock()), backend


def send(remediator, *alerts):
    return remediator.handle(parse_payload(webhook(*alerts)))


def test_a_firing_alert_drains_its_node_once_with_a_reason(tmp_path):
    remediator, backend = make(tmp_path)
    (decision,) = send(remediator, alert("GpuFellOffBus", "gpu-1", severity="page"))
    assert decision["decision"] == "done" and decision["node"] == "gpu-1"
    assert backend.reasons == {"gpu-1": "fleetscope: GpuFellOffBus: GPU fell off the bus"}
    (again,) = send(remediator, alert("GpuFellOffBus", "gpu-1", severity="page"))  # Alertmanager repeats
    assert again["refusal"] == "already_drained" and backend.calls == [("drain", "gpu-1")]


def test_alerts_no_rule_names_are_ignored_and_audited(tmp_path):
    remediator, backend = make(tmp_path)
    decisions = send(remediator, alert("GpuFellOffBus", "gpu-1", severity="ticket"), alert("Other", "gpu-2"))
    assert [d["decision"] for d in decisions] == ["ignored", "ignored"] and backend.calls == []
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 2


def test_the_hourly_limit_refuses_the_next_drain_until_an_hour_has_passed(tmp_path):
    clock = Clock()
    remediator, backend = make(tmp_path, clock=clock, limits={"max_actions_per_hour": 2, "max_drained_ratio": 1})
    decisions = send(remediator, *(alert("GpuXid", f"gpu-{i}") for i in range(3)))
    assert [d["decision"] for d in decisions] == ["done", "done", "refused"]
    assert decisions[2]["refusal"] == "rate_limit" and "max_actions_per_hour is 2" in decisions[2]["detail"]
    assert remediator.refusals[("drain", "rate_limit")] == 1 and sorted(backend.reasons) == ["gpu-0", "gpu-1"]
    clock.now += 3599
    assert send(remediator, alert("GpuXid", "gpu-2"))[0]["refusal"] == "rate_limit"
    clock.now += 2
    assert send(remediator, alert("GpuXid", "gpu-2"))[0]["decision"] == "done"


def test_the_hourly_limit_survives_a_restart(tmp_path):
    clock = Clock()
    first, backend = make(tmp_path, clock=clock, limits={"max_actions_per_hour": 2, "max_drained_ratio": 1})
    send(first, alert("GpuXid", "gpu-1"), alert("GpuXid", "gpu-2"))
    first.audit.close()
    clock.now += 60
    second, _ = make(tmp_path, backend=backend, clock=clock,
                     limits={"max_actions_per_hour": 2, "max_drained_ratio": 1})
    assert second.hourly.used() == 2
    assert send(second, alert("GpuXid", "gpu-3"))[0]["refusal"] == "rate_limit"


def test_no_more_than_the_drained_ratio_of_a_partition(tmp_path):
    backend = MemoryBackend({"gpu": NODES, "small": ["gpu-8", "gpu-9"]})
    backend.reasons["gpu-0"] = "broken PSU [root@2026]"  # a person's drain counts too
    remediator, _ = make(tmp_path, backend=backend, limits={"max_actions_per_hour": 100, "max_drained_ratio": 0.3})
    decisions = send(remediator, *(alert("GpuXid", f"gpu-{i}") for i in (1, 2, 3)))
    assert [d["decision"] for d in decisions] == ["done", "done", "refused"]
    assert decisions[2]["refusal"] == "drained_ratio" and "4 of 10 nodes of partition gpu" in decisions[2]["detail"]
    # gpu-9 is also in a partition of two, where one drained node is half of it
    assert send(remediator, alert("GpuXid", "gpu-9"))[0]["refusal"] == "drained_ratio"


def test_dry_run_decides_counts_and_audits_but_never_calls_the_scheduler(tmp_path):
    remediator, backend = make(tmp_path, dry_run=True, limits={"max_actions_per_hour": 1, "max_drained_ratio": 1})
    first, second = send(remediator, alert("GpuXid", "gpu-1"), alert("GpuXid", "gpu-2"))
    assert first["decision"] == "dry_run" and second["refusal"] == "rate_limit"
    assert backend.calls == [] and remediator.actions[("drain", "slurm", "true")] == 1
    assert send(remediator, alert("GpuXid", "gpu-1"))[0]["refusal"] == "already_drained"
    audited = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["decision"], a["dry_run"]) for a in audited] == [("dry_run", True), ("refused", True),
                                                                 ("refused", True)]


def test_resolve_resumes_only_where_the_rule_allows_and_only_what_it_drained(tmp_path):
    remediator, backend = make(tmp_path, limits={"max_actions_per_hour": 10, "max_drained_ratio": 1})
    send(remediator, alert("GpuFellOffBus", "gpu-1", severity="page"), alert("GpuXid", "gpu-2"))
    backend.reasons["gpu-3"] = "a person's drain"
    resolved = send(remediator, alert("GpuFellOffBus", "gpu-1", "resolved", severity="page"),
                    alert("GpuXid", "gpu-2", "resolved"),
                    alert("GpuFellOffBus", "gpu-3", "resolved", severity="page"))
    assert [d.get("refusal", d["decision"]) for d in resolved] == ["done", "resume_not_allowed", "not_drained_by_us"]
    assert sorted(backend.reasons) == ["gpu-2", "gpu-3"]


def test_resolve_waits_for_every_alert_that_drained_the_node(tmp_path):
    remediator, backend = make(tmp_path)
    send(remediator, alert("GpuFellOffBus", "gpu-1", severity="page", fingerprint="a"),
         alert("GpuFellOffBus", "gpu-1", severity="page", gpu="3", fingerprint="b"))
    first = send(remediator, alert("GpuFellOffBus", "gpu-1", "resolved", severity="page", fingerprint="a"))
    assert first[0]["refusal"] == "still_firing" and "gpu-1" in backend.reasons
    last = send(remediator, alert("GpuFellOffBus", "gpu-1", "resolved", severity="page", gpu="3", fingerprint="b"))
    assert last[0]["decision"] == "done" and "gpu-1" not in backend.reasons


@pytest.mark.parametrize("labels, refusal", [({"hostname": ""}, "no_node_label"),
                                             ({"hostname": "gpu[1-512]"}, "bad_node_name"),
                                             ({"hostname": "gpu-99"}, "unknown_node")])
def test_alerts_that_name_no_single_known_node_are_refused(tmp_path, labels, refusal):
    remediator, backend = make(tmp_path)
    body = alert("GpuXid", "x")
    body["labels"].update(labels)
    assert send(remediator, body)[0]["refusal"] == refusal and backend.calls == []


def test_a_failing_scheduler_is_a_failure_audited_with_its_error(tmp_path):
    backend = MemoryBackend({"gpu": NODES})
    backend.failing = True
    remediator, _ = make(tmp_path, backend=backend)
    (decision,) = send(remediator, alert("GpuXid", "gpu-1"))
    assert decision["decision"] == "failed" and "Unable to contact" in decision["detail"]
    assert remediator.failures[("drain", "slurm")] == 1 and remediator.hourly.used() == 0
