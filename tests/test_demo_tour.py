"""The demo's closing (example/tour.py): every receiver's notifications kept apart, and the summary of what fired,
when and what resolved. The demo itself runs in tests/integration/test_demo.py."""

from __future__ import annotations

import json

from fleetscope.example import tour
from fleetscope.localstack.receiver import Notification


def test_each_receivers_notifications_are_kept_in_its_own_file(tmp_path):
    webhook = {"status": "firing", "alerts": []}
    for path, body in (("/webhook", webhook), ("/pagerduty/v2/enqueue", {"routing_key": "k"}),
                       ("/opsgenie/v2/alerts", {"message": "m"}), ("/slack/gpu-infra", {"text": "t"}),
                       ("/slack/serving", "not json")):
        tour.keep(Notification(path, {}, body), tmp_path)
    assert [json.loads(line) for line in (tmp_path / "notifications.jsonl").read_text().splitlines()] == [webhook]
    assert sorted(path.name for path in (tmp_path / "notifications").iterdir()) == [
        "opsgenie.jsonl", "pagerduty.jsonl", "slack.jsonl"]
    slack = [json.loads(line) for line in (tmp_path / "notifications" / "slack.jsonl").read_text().splitlines()]
    assert slack == [{"path": "/slack/gpu-infra", "body": {"text": "t"}},
                     {"path": "/slack/serving", "body": "not json"}]


def test_the_summary_says_what_fired_when_and_what_resolved(tmp_path):
    def transition(at, status, name, key):
        return tour.Transition(at, status, name, "critical", "gpu-infra", f"{name} summary", key)

    lines = tour.summary([transition(31, "firing", "FleetscopeGPUXidError", "a"),
                          transition(35, "firing", "FleetscopeGPUDown", "b"),
                          transition(90, "resolved", "FleetscopeGPUXidError", "a"),
                          transition(95, "firing", "FleetscopeGPUXidError", "a")],
                         [tmp_path / "notifications.jsonl"])
    assert lines[0] == "what fired:"
    assert lines[1].split() == ["31s", "FleetscopeGPUXidError", "[critical", "→", "gpu-infra],", "still", "firing:",
                                "FleetscopeGPUXidError", "summary"]
    assert "35s  FleetscopeGPUDown" in lines[2] and "still firing" in lines[2]
    assert lines[-2:] == ["files:", f"  {tmp_path / 'notifications.jsonl'}"]
    resolved = tour.summary([transition(31, "firing", "FleetscopeGPUDown", "b"),
                             transition(90, "resolved", "FleetscopeGPUDown", "b")], [])
    assert "resolved at 90s" in resolved[1]
    assert "nothing" in tour.summary([], [])[1]
