"""The training section of the monitoring config reaches the rules and the dashboard, and bad values are refused;
the benchmark of the SDK's cost per step keeps running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleetscope.alerts import generate
from fleetscope.dashboards import training as dashboard
from fleetscope.mixin.config import ConfigError, from_mapping

BENCHMARK = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "training_sdk.py"


def _rules(document: dict) -> dict[str, dict]:
    text = generate.files(from_mapping(document))["rules/training.yaml"]
    return {rule.get("alert") or rule["record"]: rule for group in yaml.safe_load(text)["groups"]
            for rule in group["rules"]}


def test_settings_reach_the_rules_and_the_dashboard():
    settings = {"training": {"selector": 'job="trainers"', "goodput_objective": 0.8, "checkpoint_stale_after": "4h",
                             "stalled_after": "20m", "step_time_ratio": 1.5, "step_time_baseline_window": "12h"},
                "teams": {"training": "research-infra"}}
    rules = _rules(settings)
    assert rules["FleetscopeTrainingGoodputLow"]["expr"].endswith("< 0.8")
    assert rules["FleetscopeTrainingGoodputLow"]["labels"]["team"] == "research-infra"
    assert "> 14400" in rules["FleetscopeTrainingCheckpointStale"]["expr"]
    assert rules["FleetscopeTrainingJobStalled"]["expr"].endswith("> 1200")
    assert "> 1.5" in rules["FleetscopeTrainingStepTimeRegressed"]["expr"]
    assert "[12h]" in rules["fleetscope:training_step_duration_seconds:baseline"]["expr"]
    assert 'fleetscope_training_phase_seconds_total{job="trainers"}' in rules["fleetscope:training_ettr:ratio"]["expr"]
    board = json.dumps(dashboard.build(from_mapping(settings)))
    assert "Below 80% over 1h" in board and "past 4h" in board


def test_lemon_settings_reach_the_rules():
    document = {"training": {"lemon_interval": "30m", "lemon_score_threshold": 5, "lemon_lag_weight": 0.5}}
    text = generate.files(from_mapping(document))["rules/training.yaml"]
    groups = {group["name"]: group for group in yaml.safe_load(text)["groups"]}
    assert groups["fleetscope-training-node-increments"]["interval"] == "30m"
    assert "[30m]" in groups["fleetscope-training-node-increments"]["rules"][0]["expr"]
    rules = _rules(document)
    assert rules["FleetscopeTrainingLemonNode"]["expr"].endswith(">= 5")
    assert "0.5 * fleetscope:node_training_jobs_lagged:increase30d" in \
        rules["fleetscope:node_training_lemon_score:30d"]["expr"]


@pytest.mark.parametrize("document, message", [
    ({"training": {"lemon_xid_weight": -1}}, "training.lemon_xid_weight"),
    ({"training": {"lemon_score_threshold": 0}}, "training.lemon_score_threshold"),
    ({"training": {"lemon_interval": "hourly"}}, "TrainingConfig.lemon_interval"),
    ({"training": {"goodput_objective": 1.2}}, "training.goodput_objective"),
    ({"training": {"stalled_after": "soon"}}, "TrainingConfig.stalled_after"),
    ({"training": {"no_such": 1}}, "unknown setting training.no_such"),
])
def test_bad_training_settings_are_refused(document, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(document)


def test_the_benchmark_runs(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARK), "--steps", "500", "--work-us", "0",
                             "--json", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=240,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "out.json").read_text())
    assert [row["row"] for row in rows][0] == "bare" and all(row["us_per_step"] > 0 for row in rows)
