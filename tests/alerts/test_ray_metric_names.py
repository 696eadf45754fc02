"""Ray's names (mixin/ray.py) against the pages a real Ray 2.60.0 head served (tests/fixtures/ray-2.60.0/): each
name is there with its type and labels, and the Ray rules and dashboard read no Ray name that mixin/ray.py does not
declare, nor a label its series do not carry. Offline: no Ray needed (tests/ray/ runs the same against a live
head)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetscope.alerts import generate as alerts_generate
from fleetscope.dashboards import queries
from fleetscope.dashboards.common import UIDS
from fleetscope.deploy import baremetal, kubernetes
from fleetscope.mixin import ray
from fleetscope.mixin.config import MonitoringConfig, from_mapping

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / f"ray-{ray.RAY_VERSION}"
PAGES = {name: (FIXTURES / f"{name}.prom").read_text() for name in ("metrics-export", "autoscaler", "dashboard")}
TARGET_LABELS = {"job", "instance", "cluster", "le"}
RAY_NAME = re.compile(r"\b((?:ray|autoscaler)_[A-Za-z0-9_]+)\s*\{([^}]*)\}")


def _types(page: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", page, flags=re.MULTILINE))


def _samples(page: str) -> dict[str, list[dict[str, str]]]:
    """Each series name on the page, with the label sets of its samples."""
    found: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            # Prometheus keeps no empty label: Ray's JobId="" is no JobId once scraped.
            found.setdefault(sample.name, []).append({k: v for k, v in sample.labels.items() if v})
    return found


def _page_of(metric: ray.RayMetric) -> str:
    return PAGES["autoscaler"] if metric in ray.FROM_AUTOSCALER else PAGES["metrics-export"]


def _series_names(metric: ray.RayMetric) -> tuple[str, ...]:
    return (f"{metric.name}_count", f"{metric.name}_sum", f"{metric.name}_bucket") if metric.type == "histogram" \
        else (metric.name,)


@pytest.mark.parametrize("metric", ray.ALL, ids=lambda metric: metric.name)
def test_each_name_is_on_the_page_with_its_type_and_labels(metric):
    page = _page_of(metric)
    assert _types(page).get(metric.name) == metric.type, f"{metric.name}: TYPE on the page is not {metric.type}"
    samples = _samples(page)
    for series in _series_names(metric):
        assert samples.get(series), f"{series} has no sample on the recorded page"
        for labels in samples[series]:
            assert set(metric.labels) <= set(labels), f"{series}{labels} lacks {set(metric.labels) - set(labels)}"


def test_the_source_each_name_cites_is_in_the_installed_ray():
    """Where Ray is installed (the `ray` extra), each cited file (python/ray/... in Ray's repository, ray/... once
    installed) exists in it and defines the name (Ray adds the
    ray_ prefix itself; a name built from a template cites the template in parentheses); for Ray's C++ core, the
    binary holds the metric's HELP text as the page shows it."""
    spec = importlib.util.find_spec("ray")
    if spec is None or spec.origin is None:
        pytest.skip("Ray is not installed: pip install 'fleetscope[ray]'")
    site = Path(spec.origin).parent.parent
    for metric in ray.ALL:
        cited = [re.match(r"(\S+)(?: \((.*)\))?$", part).groups() for part in metric.source.split(" and ")]
        files = [site / path.removeprefix("python/") for path, _ in cited]
        assert all(path.exists() for path in files), f"{metric.name}: {metric.source}"
        if files[0].suffix == ".py":
            text = "".join(path.read_text() for path in files)
            defined = metric.name.removeprefix("ray_").removeprefix("autoscaler_").removesuffix("_total")
            templates = [hint for _, hint in cited if hint and "{" in hint]
            assert defined in text or any(template in text for template in templates), metric.name
        else:
            help_text = re.search(rf"^# HELP {metric.name} (.+)$", _page_of(metric), flags=re.MULTILINE)
            assert help_text and help_text.group(1).encode() in files[0].read_bytes(), metric.name


def _rule_and_panel_texts() -> list[str]:
    rules = (alerts_generate.DIRECTORY / "rules" / "ray.yaml").read_text()
    board = next(board for board in queries.load() if board["uid"] == UIDS["ray"])
    panels = [expr for panel in queries.panel_queries(board) for expr in panel.exprs]
    variables = [variable["query"] for variable in board["templating"]["list"] if variable["type"] == "query"]
    return [rules, *panels, *variables]


def test_the_rules_and_the_dashboard_read_only_declared_names_and_labels():
    declared = {series: metric for metric in ray.ALL for series in _series_names(metric)}
    checked = 0
    for text in _rule_and_panel_texts():
        for name, matchers in RAY_NAME.findall(text):
            assert name in declared, f"{name} is not declared in mixin/ray.py"
            for label in re.findall(r"([A-Za-z_]+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in set(declared[name].labels) | TARGET_LABELS, f"{name} has no label {label}"
                checked += 1
    assert checked > 30


def test_every_ray_selector_is_scoped_to_the_ray_job_as_the_alerts_are():
    """A second scrape of the same nodes (Ray's own example Prometheus config beside ours) doubles nothing."""
    scope = MonitoringConfig().selectors.ray + ","
    selectors = [matchers for text in _rule_and_panel_texts() for _, matchers in RAY_NAME.findall(text)]
    assert selectors and all((matchers + ",").startswith(scope) for matchers in selectors), selectors


def test_the_states_the_rules_name_are_states_ray_reports():
    states = {labels["State"] for labels in _samples(PAGES["metrics-export"])[ray.TASKS.name]}
    assert {ray.WAITING_FOR_A_NODE, *ray.RUNNING_STATES} <= states
    assert set(ray.PENDING_STATES) <= states
    locations = {labels["Location"] for labels in _samples(PAGES["metrics-export"])[ray.OBJECT_STORE_MEMORY.name]}
    assert {"MMAP_SHM", "MMAP_DISK", "SPILLED"} <= locations
    spill_states = {labels["State"]
                    for labels in _samples(PAGES["metrics-export"])[ray.SPILL_MANAGER_OBJECTS_BYTES.name]}
    assert {"Spilled", "Restored"} <= spill_states
    help_lines = re.findall(r"^# HELP (ray_serve_(?:application|deployment)_status) (.+)$", PAGES["metrics-export"],
                            flags=re.MULTILINE)
    for name, text in help_lines:
        states = ray.SERVE_APPLICATION_STATES if "application" in name else ray.SERVE_DEPLOYMENT_STATES
        assert ", ".join(f"{value}={state}" for value, state in states.items()) in text, name
    assert len(help_lines) == 2


def test_the_recorded_discovery_file_is_what_the_scrape_job_expects():
    [group] = json.loads((FIXTURES / "discovery.json").read_text())
    assert group["labels"] == {"job": ray.DISCOVERY_JOB} and len(group["targets"]) == 3
    job = baremetal.ray_scrape_config()
    assert job["job_name"] == ray.DISCOVERY_JOB
    assert job["file_sd_configs"][0]["files"] == [f"{ray.DEFAULT_TEMP_DIR}/{ray.DISCOVERY_FILE}"]
    assert job in baremetal.prometheus_config()["scrape_configs"]
    assert MonitoringConfig().selectors.ray == f'job="{ray.DISCOVERY_JOB}"'


def test_the_podmonitor_scrapes_kuberays_ray_pods_as_the_ray_job():
    [monitor] = [document for document in kubernetes.monitors(kubernetes.KubernetesConfig())
                 if document["metadata"]["name"] == "fleetscope-ray"]
    spec = monitor["spec"]
    assert spec["selector"]["matchExpressions"] == [
        {"key": "ray.io/node-type", "operator": "In", "values": ["head", "worker"]}]
    assert [endpoint["port"] for endpoint in spec["podMetricsEndpoints"]] == ["metrics", "as-metrics", "dash-metrics"]
    for endpoint in spec["podMetricsEndpoints"]:
        assert {"action": "replace", "targetLabel": "job", "replacement": "ray"} in endpoint["relabelings"]
        assert {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_label_ray_io_cluster"],
                "targetLabel": "ray_io_cluster"} in endpoint["relabelings"]


def test_the_ray_settings_reach_the_rules_and_bad_ones_are_refused():
    config = from_mapping({"selectors": {"ray": 'job="kuberay"'},
                           "ray": {"pending_tasks": 10, "pending_for": "30m", "replica_restarts": 5}})
    rules = alerts_generate.rule_files(config)["ray.yaml"]["groups"][0]["rules"]
    pending = next(rule for rule in rules if rule["alert"] == "FleetscopeRayTasksPendingNode")
    assert pending["expr"].endswith("> 10") and pending["for"] == "30m" and 'job="kuberay"' in pending["expr"]
    restarting = next(rule for rule in rules if rule["alert"] == "FleetscopeRayServeReplicaRestarting")
    assert restarting["expr"].endswith(">= 5")
    for document, message in (({"ray": {"replica_restarts": 0}}, "replica_restarts"),
                              ({"ray": {"spill_window": "ten minutes"}}, "spill_window"),
                              ({"ray": {"pending_tasks": -1}}, "pending_tasks")):
        with pytest.raises(ValueError, match=message):
            from_mapping(document)
