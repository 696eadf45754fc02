"""The generated rules and routing: committed as generated, accepted by promtool and amtool,
every alert unit-tested firing and quiet, labelled, annotated and given a runbook; routes
proven with amtool; the config's settings really reach the rules, and bad settings are refused."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from fleetscope.alerts import generate, inference, routing
from fleetscope.dashboards import queries as dashboard_queries
from fleetscope.drift import catalog as drift_catalog
from fleetscope.exporters import catalog as exporter_catalog
from fleetscope.mixin.config import URGENCIES, ConfigError, MonitoringConfig, Routing, Severities, from_mapping, load

ALERTS = Path(generate.__file__).resolve().parent
RULE_FILES = [f"rules/{name}" for name in generate.RULE_FILES]


def _alert_rules(texts: dict[str, str] | None = None) -> list[dict]:
    texts = texts or generate.files()
    return [rule for name in RULE_FILES for group in yaml.safe_load(texts[name])["groups"]
            for rule in group["rules"] if "alert" in rule]


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=180)


def test_committed_files_are_what_the_generator_writes():
    for name, text in generate.files().items():
        path = ALERTS / name
        assert path.exists() and path.read_text() == text, f"{name}: run python -m fleetscope.alerts.generate"


@pytest.mark.parametrize("name", RULE_FILES)
def test_promtool_accepts_each_rule_file(name):
    result = _run("promtool", "check", "rules", str(ALERTS / name))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_manifests_hold_every_group_each_within_kubectls_annotation(tmp_path):
    """Client-side `kubectl apply` stores each object as JSON in an annotation of at most 262,144 bytes: one
    PrometheusRule of every rule was 390 KB ("metadata.annotations: Too long")."""
    manifests = [doc for doc in yaml.safe_load_all(
        (ALERTS.parent / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text()) if doc]
    assert {(doc["apiVersion"], doc["kind"]) for doc in manifests} == {("monitoring.coreos.com/v1", "PrometheusRule")}
    assert len(manifests) > len(RULE_FILES)  # the engines' normalization alone needs two
    for manifest in manifests:
        assert len(json.dumps(manifest)) < generate.RULE_OBJECT_BUDGET + 10_000 < generate.ANNOTATION_LIMIT
    groups = [group for name in RULE_FILES for group in yaml.safe_load((ALERTS / name).read_text())["groups"]]
    assert [group for doc in manifests for group in doc["spec"]["groups"]] == groups
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"groups": groups}))
    result = _run("promtool", "check", "rules", str(tmp_path / "spec.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_packing_keeps_the_groups_order_and_refuses_a_group_over_the_budget():
    groups = [{"name": f"g{index}", "rules": [{"record": "r", "expr": "x" * size}]}
              for index, size in enumerate([40, 40, 40, 10])]
    parts = generate._packed(groups, 200)  # each group is 96 bytes of JSON, the last 66
    assert [[group["name"] for group in part] for part in parts] == [["g0", "g1"], ["g2", "g3"]]
    with pytest.raises(ValueError, match="g0 is"):
        generate._packed(groups, 90)


@pytest.mark.parametrize("name", sorted(path.name for path in (ALERTS / "tests").glob("*.test.yaml")))
def test_promtool_unit_tests_pass(name):
    result = _run("promtool", "test", "rules", str(ALERTS / "tests" / name))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_firing_and_one_quiet():
    firing, quiet = set(), set()
    for path in (ALERTS / "tests").glob("*.test.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _alert_rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == {routing.WATCHDOG_ALERT}, "alerts never shown quiet (the Watchdog never is)"


def test_every_severity_of_a_shared_alert_name_is_shown_firing():
    fired = set()
    for path in (ALERTS / "tests").glob("*.test.yaml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                fired |= {(case["alertname"], alert["exp_labels"]["severity"]) for alert in case["exp_alerts"]}
    assert {(rule["alert"], rule["labels"]["severity"]) for rule in _alert_rules()} <= fired


RUNBOOK_SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Escalation")


def test_every_alert_is_labelled_annotated_and_has_a_runbook():
    teams = set(MonitoringConfig().teams.values())
    for rule in _alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info", "none"}, name
        assert rule["labels"]["team"] in teams, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}, name
        assert annotations["dashboard_url"].startswith(MonitoringConfig().grafana_url + "/d/fleetscope-"), name
        # The default runbook_url is a path that names the runbook in the repository and in the installed package.
        assert annotations["runbook_url"] == f"alerts/runbooks/{name}.md"
        runbook = (ALERTS.parent / annotations["runbook_url"]).read_text()
        assert runbook.startswith(f"# {name}\n"), name
        assert re.findall(r"\n## (\w+)\n", runbook)[:len(RUNBOOK_SECTIONS)] == list(RUNBOOK_SECTIONS), name


def test_every_panel_a_runbook_cites_is_on_its_dashboard():
    """Runbooks cite panels as *Dashboard title › Panel title*; each one must exist, and every runbook but the
    Watchdog's cites at least one."""
    panels = {(board["title"], panel["title"]) for board in dashboard_queries.load()
              for panel in dashboard_queries.panels(board)}
    for path in sorted((ALERTS / "runbooks").glob("*.md")):
        cited = re.findall(r"\*([^*›]+) › ([^*]+)\*", path.read_text())
        assert cited or path.stem == routing.WATCHDOG_ALERT, f"{path.name} cites no panel"
        for board, panel in cited:
            assert (board, panel) in panels, f"{path.name}: no panel {panel!r} on {board!r}"


def test_no_runbook_without_an_alert():
    names = {rule["alert"] for rule in _alert_rules()}
    assert {path.stem for path in (ALERTS / "runbooks").glob("*.md")} == names


def test_every_fleetscope_metric_the_rules_read_is_cataloged():
    cataloged = {spec.name for spec in exporter_catalog.ALL + drift_catalog.ALL}
    text = "".join((ALERTS / name).read_text() for name in RULE_FILES)
    read = {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"\bfleetscope_[a-z_]+", text)}
    # Names quoted in annotations for the reader are metrics too, and must exist as well.
    assert read and read - cataloged == set()


def test_settings_reach_the_rules():
    config = from_mapping({
        "selectors": {"exporter": 'job="gpu-nodes"'},
        "gpu": {"xid_page": [79], "gpu_down_for": "7m"},
        "inference": {"slos": [{"selector": 'model="llama"', "latency": "time_to_first_token", "threshold": 1.0,
                                "objective": 0.995}]},
        "teams": {"serving": "llm-serving"},
        "runbook_url": "https://wiki.example.com/runbooks/",
    })
    rules = {(rule["alert"], rule["labels"]["severity"]): rule for rule in _alert_rules(generate.files(config))}
    assert 'xid=~"79"' in rules["FleetscopeGPUXidError", "critical"]["expr"]
    assert rules["FleetscopeGPUDown", "critical"]["for"] == "7m"
    assert 'job="gpu-nodes"' in rules["FleetscopeGPUDown", "critical"]["expr"]
    burn = next(rule for rule in _alert_rules(generate.files(config))
                if rule["alert"] == "FleetscopeInferenceLatencyBudgetBurn" and rule["labels"]["long_window"] == "1h")
    assert 'slo_good_ratio_rate1h{model="llama",threshold="1"}' in burn["expr"] and "/ 0.005 > 14.4" in burn["expr"]
    assert burn["labels"]["team"] == "llm-serving" and burn["labels"]["objective"] == "0.995"
    assert burn["annotations"]["runbook_url"] == "https://wiki.example.com/runbooks/FleetscopeInferenceLatencyBudgetBurn.md"
    assert "llm-serving-pagerduty" in generate.files(config)["alertmanager/alertmanager.yml"]


def test_the_generator_takes_a_yaml_config(tmp_path):
    (tmp_path / "alerts.yaml").write_text("drift: {detected_for: 2h}\n")
    assert generate.main(["--config", str(tmp_path / "alerts.yaml"), str(tmp_path / "out")]) == 0
    assert "for: 2h" in (tmp_path / "out" / "rules" / "drift.yaml").read_text()
    assert (tmp_path / "out" / "alertmanager" / "alertmanager.yml").exists()


@pytest.mark.parametrize("document, message", [
    ({"gpu": {"xid_windw": "5m"}}, "unknown setting gpu.xid_windw"),
    ({"gpu": {"xid_window": "ten minutes"}}, "GpuConfig.xid_window: invalid duration"),
    ({"gpu": {"attention_interval": "hourly"}}, "GpuConfig.attention_interval: invalid duration"),
    ({"gpu": {"throttle_fraction": "half"}}, "gpu.throttle_fraction must be a float"),
    ({"gpu": {"xid_page": 79}}, "gpu.xid_page must be a list"),
    ({"inference": {"slos": [{"latency": "request_duration", "threshold": 3.0}]}},
     "no SLO ratio is recorded for request_duration at 3 s"),
    ({"inference": {"slos": [{"latency": "tokens"}]}}, "latency 'tokens' is not one of"),
    ({"inference": {"slos": [{"objective": 1.0}]}}, "objective must be between 0 and 1"),
    ({"inference": {"burn_rates": [["page", "1h", "7m", 14.4, "2m"]]}}, "window 7m has no recorded SLO ratio"),
    ({"inference": {"burn_rates": [["urgent", "1h", "5m", 14.4, "2m"]]}}, "urgency 'urgent'"),
    ({"teams": {"gpu": "gpu infra"}}, "teams.gpu"),
    ({"inference": {"normalization": {"engines": ["vllm", "vLLM"]}}}, "engines: vLLM not known"),
    (["gpu"], "must be a mapping"),
])
def test_bad_settings_are_refused_naming_the_setting(document, message):
    """On loading the config, or, for what only the alerts know (engines, latencies), on generating the rules."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        generate.files(from_mapping(document))


def test_the_generator_refuses_what_only_the_alerts_know(tmp_path, capsys):
    (tmp_path / "alerts.yaml").write_text("inference: {normalization: {engines: [vLLM]}}\n")
    with pytest.raises(SystemExit) as exited:
        generate.main(["--config", str(tmp_path / "alerts.yaml"), str(tmp_path / "out")])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "error: inference.normalization.engines: vLLM not known; known are fleetscope, vllm" in error
    assert not (tmp_path / "out").exists()


def test_a_config_built_in_python_needs_every_team_and_interval():
    with pytest.raises(ConfigError, match="teams: no team for"):
        MonitoringConfig(teams={"gpu": "gpu-infra"})
    with pytest.raises(ConfigError, match="no interval for ticket"):
        MonitoringConfig(routing=Routing(repeat_interval={"page": "1h", "info": "1d"}))


def test_mappings_in_a_config_file_add_to_the_defaults():
    config = from_mapping({"teams": {"serving": "llm-serving"}, "routing": {"repeat_interval": {"page": "1h"}}})
    assert config.teams["serving"] == "llm-serving" and config.teams["gpu"] == "gpu-infra"
    assert config.routing.repeat_interval == {"page": "1h", "ticket": "1d", "info": "3d"}


def test_an_unreadable_config_file_is_refused(tmp_path):
    (tmp_path / "bad.yaml").write_text("gpu: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read alerts config"):
        load(tmp_path / "bad.yaml")
    with pytest.raises(SystemExit):
        generate.main(["--config", str(tmp_path / "missing.yaml"), str(tmp_path)])


# --- Alertmanager ------------------------------------------------------------------------------

AM_CONFIG = ALERTS / "alertmanager" / "alertmanager.yml"


def test_amtool_accepts_the_alertmanager_config():
    result = _run("amtool", "check-config", str(AM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_secret_is_inlined():
    document = yaml.safe_load(AM_CONFIG.read_text())
    for receiver in document["receivers"]:
        for kind, configs in receiver.items():
            for config in configs if isinstance(configs, list) else []:
                assert not {"routing_key", "service_key", "api_key", "api_url"} & set(config), receiver["name"]
                if kind == "webhook_configs":
                    assert "credentials_file" in config["http_config"]["authorization"]


def _rule_labels(name: str, severity: str) -> dict[str, str]:
    return next(rule["labels"] for rule in _alert_rules()
                if rule["alert"] == name and rule["labels"]["severity"] == severity)


# (alert, severity, the receivers Alertmanager must choose, in order)
ROUTES = [
    ("FleetscopeGPUXidError", "critical", "fleetscope-webhook,gpu-infra-pagerduty,gpu-infra-slack"),
    ("FleetscopeGPUXidError", "warning", "fleetscope-webhook,gpu-infra-opsgenie,gpu-infra-slack"),
    ("FleetscopeGPUXidError", "info", "fleetscope-webhook,gpu-infra-slack"),
    ("FleetscopeExporterDown", "warning", "fleetscope-webhook,gpu-infra-opsgenie,gpu-infra-slack"),
    ("FleetscopeFabricPortDown", "warning", "fleetscope-webhook,gpu-infra-opsgenie,gpu-infra-slack"),
    ("FleetscopeNCCLHung", "critical", "fleetscope-webhook,ml-platform-pagerduty,ml-platform-slack"),
    ("FleetscopeGPUAllocatedIdle", "warning", "fleetscope-webhook,ml-platform-opsgenie,ml-platform-slack"),
    ("FleetscopeInferenceLatencyBudgetBurn", "critical", "fleetscope-webhook,serving-pagerduty,serving-slack"),
    ("FleetscopeInferenceLatencyBudgetBurn", "warning", "fleetscope-webhook,serving-opsgenie,serving-slack"),
    ("FleetscopeModelDriftDetected", "warning", "fleetscope-webhook,ml-platform-opsgenie,ml-platform-slack"),
    ("FleetscopeModelColumnDrift", "info", "fleetscope-webhook,ml-platform-slack"),
    ("FleetscopeWatchdog", "none", "fleetscope-watchdog"),  # the dead man's switch alone
]


@pytest.mark.parametrize("alert, severity, receivers", ROUTES)
def test_amtool_routes_each_alert_to_its_team_and_channel(alert, severity, receivers):
    labels = {"alertname": alert, **_rule_labels(alert, severity), "instance": "node-1:9835"}
    result = _run("amtool", "config", "routes", "test", f"--config.file={AM_CONFIG}",
                  f"--verify.receivers={receivers}", *(f"{key}={value}" for key, value in labels.items()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_alert_of_no_known_team_reaches_the_webhook_only():
    result = _run("amtool", "config", "routes", "test", f"--config.file={AM_CONFIG}",
                  "--verify.receivers=fleetscope-webhook", "alertname=SomethingElse", "severity=critical")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_team_has_a_route_and_its_three_receivers():
    document = yaml.safe_load(AM_CONFIG.read_text())
    names = {receiver["name"] for receiver in document["receivers"]}
    for team in set(MonitoringConfig().teams.values()):
        assert set(routing.receivers_of(team).values()) <= names
        assert any(route.get("matchers") == [f'team="{team}"'] for route in document["route"]["routes"])


def test_the_labels_the_rules_match_on_are_the_metrics_own():
    specs = {spec.name: spec for spec in exporter_catalog.ALL + drift_catalog.ALL}
    target_labels = {"job", "instance", "cluster", "le"}
    text = "".join((ALERTS / name).read_text() for name in RULE_FILES)
    checked = 0
    for name, matchers in re.findall(r"\b(fleetscope_[a-z_]+)\{([^}]*)\}", text):
        spec = specs[re.sub(r"_(bucket|sum|count)$", "", name)]
        declared = set(spec.labels) | set(spec.optional_labels) | target_labels
        for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers):
            assert label in declared, f"{name} has no label {label}"
            checked += 1
    assert checked > 50


def test_a_fleet_records_only_the_engines_it_runs():
    config = from_mapping({"inference": {"normalization": {"engines": ["vllm", "sglang"]}}})
    groups = [group["name"] for group in inference.rule_groups(config.inference.normalization)["groups"]]
    assert groups == ["fleetscope-inference-vllm", "fleetscope-inference-sglang", "fleetscope-inference-ratios",
                      "fleetscope-inference-slo-vllm", "fleetscope-inference-slo-sglang"]


def test_the_xid_runbook_says_what_every_paging_and_ticketing_code_needs():
    from fleetscope.exporters.catalog import xids

    runbook = (ALERTS / "runbooks" / "FleetscopeGPUXidError.md").read_text()
    rows = {int(line.split("|")[1]): line.split("|")[3].strip() for line in runbook.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()}
    gpu = MonitoringConfig().gpu
    assert rows == {**{code: "page" for code in gpu.xid_page}, **{code: "ticket" for code in gpu.xid_ticket}}
    assert set(rows) <= set(xids.CATALOG)
    assert "nvidia-smi -r` cannot reach it" in next(line for line in runbook.splitlines() if line.startswith("| 79 "))


def test_severities_are_kube_prometheus_stacks_words_and_configurable():
    """critical pages, warning opens a ticket, info informs: the words kube-prometheus-stack's routes and
    InfoInhibitor key on. A fleet keeping its own words sets them, and rules, routes and inhibitions follow."""
    severities = {rule["labels"]["severity"] for rule in _alert_rules()}
    assert severities == {"critical", "warning", "info", "none"}
    assert _rule_labels("FleetscopeGPUDown", "critical") and _rule_labels("FleetscopeGPURowRemapPending", "warning")
    config = from_mapping({"severities": {"page": "page", "ticket": "ticket"}})
    texts = generate.files(config)
    assert {rule["labels"]["severity"] for rule in _alert_rules(texts)} == {"page", "ticket", "info", "none"}
    document = yaml.safe_load(texts["alertmanager/alertmanager.yml"])
    team = next(route for route in document["route"]["routes"] if route.get("matchers") == ['team="gpu-infra"'])
    assert [route.get("matchers") for route in team["routes"]] == [['severity="page"'], ['severity="ticket"'], None]
    twin = next(rule for rule in document["inhibit_rules"] if rule["source_matchers"] == ['severity="page"'])
    assert twin["target_matchers"] == ['severity=~"ticket|info"']
    with pytest.raises(ConfigError, match="severities"):
        MonitoringConfig(severities=Severities(page="warning"))
    assert URGENCIES == ("page", "ticket", "info")


def test_the_watchdog_always_fires_and_reaches_only_the_dead_mans_switch():
    [watchdog] = [rule for rule in _alert_rules() if rule["alert"] == routing.WATCHDOG_ALERT]
    assert watchdog["expr"] == "vector(1)" and "for" not in watchdog and watchdog["labels"]["severity"] == "none"
    document = yaml.safe_load(AM_CONFIG.read_text())
    first = document["route"]["routes"][0]
    assert first["receiver"] == routing.WATCHDOG_RECEIVER and not first.get("continue")
    assert first["repeat_interval"] == first["group_interval"] == "1m"
    receiver = next(r for r in document["receivers"] if r["name"] == routing.WATCHDOG_RECEIVER)
    assert receiver == {"name": routing.WATCHDOG_RECEIVER}  # notifies nothing until a switch is set
    configured = routing.alertmanager_config(from_mapping({"routing": {"receivers": {
        "watchdog_url": "https://hc-ping.example.com/abc"}}}))
    receiver = next(r for r in configured["receivers"] if r["name"] == routing.WATCHDOG_RECEIVER)
    assert receiver["webhook_configs"] == [{"url": "https://hc-ping.example.com/abc", "send_resolved": False}]
