"""The deployment files: committed as generated; Kubernetes kinds valid against Kubernetes' schemas
and Prometheus Operator kinds against its CRDs' (strictly: an unknown field fails), with no
cluster; the flags and configs they carry accepted by the real commands; systemd units verified
and sandboxed; the file-SD Prometheus config finding a real exporter; container files non-root."""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from fleetscope.alerts import generate as alerts_generate
from fleetscope.deploy import baremetal, containers, fleet, generate, kubernetes

DEPLOY = generate.DIRECTORY
ROOT = DEPLOY.parent
K8S_VERSION = "1.33.0"  # what GPU clusters run today; kubernetes-validate bundles its schemas
OPERATOR_KINDS = ("PodMonitor", "ServiceMonitor", "PrometheusRule")


def _documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()) if doc]


def _all_documents() -> list[dict]:
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _documents(name)]


def test_committed_files_are_what_the_generator_writes():
    for name, text in generate.files().items():
        path = DEPLOY / name
        assert path.exists() and path.read_text() == text, f"{name}: run python -m fleetscope.deploy.generate"


def test_the_kustomization_holds_every_manifest_in_one_namespace():
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    on_disk = {path.name for path in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    kinds = {doc["kind"] for doc in _all_documents()}
    assert {"DaemonSet", "StatefulSet", "Service", "PodMonitor", "ServiceMonitor",
            "PrometheusRule", "ConfigMap", "Secret"} <= kinds
    assert {doc["metadata"]["namespace"] for doc in _all_documents()} == {"monitoring"}


def test_no_two_objects_share_a_kind_and_name():
    ids = [(doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]) for doc in _all_documents()]
    assert sorted(set(ids)) == sorted(ids)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_directory():
    result = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "kubernetes")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert len([doc for doc in yaml.safe_load_all(result.stdout) if doc]) == len(_all_documents())


@cache
def _operator_schema(kind: str) -> dict:
    """The CRD's schema, from models generated from the Prometheus Operator's CRDs, made strict."""
    from cloudcoil.models.prometheus_operator import v1

    schema = getattr(v1, kind).model_json_schema(by_alias=True, mode="validation")

    def strict(node: object) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(schema)
    return schema


def _validate(document: dict) -> None:
    if document["kind"] in OPERATOR_KINDS:
        # Not jsonschema.validate: it checks the schema's patterns as Python regexes first, and the CRDs
        # carry Go's (such as "^(?i)(abort|warn)?$"), which fail only if that field is present.
        jsonschema.Draft202012Validator(_operator_schema(document["kind"])).validate(document)
    else:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


@pytest.mark.parametrize("document", _all_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_against_its_schema(document):
    _validate(document)


@pytest.mark.parametrize("kind, path", [("DaemonSet", ("spec", "template", "spec", "hostPid")),
                                        ("StatefulSet", ("spec", "replica")),
                                        ("PodMonitor", ("spec", "podMetricsEndpoints", 0, "intervall")),
                                        ("ServiceMonitor", ("spec", "endpoints", 0, "portt")),
                                        ("PrometheusRule", ("spec", "groups", 0, "rulez"))])
def test_the_validation_catches_a_misspelt_field(kind, path):
    document = copy.deepcopy(next(doc for doc in _all_documents() if doc["kind"] == kind))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = 1
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        _validate(document)


def test_the_exporter_daemonset_is_what_a_gpu_node_needs():
    daemonset = next(doc for doc in _documents("exporter.yaml") if doc["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["runtimeClassName"] == "nvidia"
    assert {volume["hostPath"]["path"] for volume in pod["volumes"]} >= {"/var/lib/kubelet/pod-resources", "/sys"}
    container = pod["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Its flags are the exporter's own.
    from fleetscope.exporters import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([arg.replace("$(NODE_NAME)", "gpu-node-1") for arg in container["args"]
                              if not arg.startswith("--log.")])
    assert args.hostname == "gpu-node-1" and str(args.sysfs) == "/host/sys"


def test_the_drift_deployment_config_is_accepted_by_the_service(tmp_path):
    from fleetscope.drift.service import config as drift_config

    configmap = next(doc for doc in _documents("drift.yaml") if doc["kind"] == "ConfigMap")
    text = configmap["data"]["drift.yaml"].replace("/etc/fleetscope/tokens", str(tmp_path))
    (tmp_path / "read").write_text("read-token-0123456789\n")
    (tmp_path / "write").write_text("write-token-0123456789\n")
    (tmp_path / "drift.yaml").write_text(text)
    loaded = drift_config.load(tmp_path / "drift.yaml")
    assert loaded.listen_address == f":{kubernetes.DRIFT_PORT}" and loaded.auth.write_tokens


def test_the_drift_statefulset_is_one_shard_a_pod_with_its_own_volume():
    from fleetscope.drift import command
    from fleetscope.drift.sharding import index_from_hostname

    for shards in (1, 3):
        documents = kubernetes.drift_service(kubernetes.KubernetesConfig(drift_shards=shards))
        statefulset = next(doc for doc in documents if doc["kind"] == "StatefulSet")
        service = next(doc for doc in documents if doc["kind"] == "Service")
        assert statefulset["spec"]["replicas"] == shards and service["spec"]["clusterIP"] == "None"
        assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
        assert [claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]] == ["data"]
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        args = parser.parse_args([arg for arg in statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
                                  if not arg.startswith("--log.")])
        assert (args.shard_count, args.shard_index) == (shards, "hostname")
        assert index_from_hostname(f"{statefulset['metadata']['name']}-{shards - 1}") == shards - 1


def test_the_monitors_give_the_jobs_the_alerts_select():
    from fleetscope.mixin.config import MonitoringConfig

    selectors = MonitoringConfig().selectors
    pods = {doc["metadata"]["name"]: doc for doc in _all_documents() if doc["kind"] in ("PodMonitor",
                                                                                        "ServiceMonitor")}
    exporter, drift = pods[kubernetes.EXPORTER], pods[kubernetes.DRIFT]
    daemonset = next(doc for doc in _documents("exporter.yaml") if doc["kind"] == "DaemonSet")
    job = daemonset["spec"]["template"]["metadata"]["labels"][exporter["spec"]["jobLabel"]]
    assert selectors.exporter == f'job="{job}"'
    service = next(doc for doc in _documents("drift.yaml") if doc["kind"] == "Service")
    assert selectors.drift_service == f'job="{service["metadata"]["labels"][drift["spec"]["jobLabel"]]}"'
    # The GPUs' pod labels survive the scrape: the exporter's labels win over its own pod's.
    assert exporter["spec"]["podMetricsEndpoints"][0]["honorLabels"] is True


def test_the_alertmanager_secret_holds_a_valid_config_reading_the_mounted_secrets(tmp_path):
    secret = _documents("alertmanager.yaml")[0]
    text = secret["stringData"]["alertmanager.yaml"]
    assert f"/etc/alertmanager/secrets/{kubernetes.ONCALL_SECRET}/gpu-infra-pagerduty" in text
    (tmp_path / "alertmanager.yml").write_text(text)
    result = subprocess.run(["amtool", "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- bare metal --------------------------------------------------------------------------------

def _units(tmp_path: Path) -> list[Path]:
    fleetscope = shutil.which("fleetscope") or str(Path(sys.executable).parent / "fleetscope")
    units = []
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        unit = tmp_path / path.name
        unit.write_text(path.read_text().replace(f"{baremetal.PREFIX}/bin/fleetscope", fleetscope))
        units.append(unit)
    return units


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, _units(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if tmp_path.name in line or "Unknown" in line or "rror" in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_units_are_sandboxed(tmp_path):
    for unit in _units(tmp_path):
        result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                                capture_output=True, text=True, timeout=60)
        score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert score, result.stdout + result.stderr
        # systemd rates 0-10; below 2 is "OK", 10 is an unsandboxed service.
        assert float(score.group(1)) < 2.5, f"{unit.name}: exposure {score.group(1)}\n{result.stdout}"


def test_prometheus_finds_an_exporter_through_file_sd(tmp_path, exporter_process, prometheus):
    config = baremetal.prometheus_config(rules_dir=str(ROOT / "alerts" / "rules"))
    text = yaml.safe_dump(config).replace(baremetal.FILE_SD, str(tmp_path / "file_sd"))
    for job in ("fleetscope-exporter", "fleetscope-drift", "model-servers", "alertmanager"):
        (tmp_path / "file_sd" / job).mkdir(parents=True)
    (tmp_path / "prometheus.yml").write_text(text)
    check = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    address = exporter_process("--simulate")
    server = prometheus(yaml.safe_load(text)["scrape_configs"], scrape_interval="1s",
                        rule_files=sorted((ROOT / "alerts" / "rules").glob("*.yaml")))
    # The inventory writes a target file while Prometheus runs; Prometheus notices it by itself.
    (tmp_path / "file_sd" / "fleetscope-exporter" / "rack-1.yaml").write_text(
        yaml.safe_dump([{"targets": [address], "labels": {"cluster": "train-a"}}]))
    result = server.wait_for('up{job="fleetscope-exporter",cluster="train-a"} == 1', timeout=90)
    assert result[0]["metric"]["instance"] == address
    assert server.wait_for('fleetscope:node_gpus:count{cluster="train-a"} == 8', timeout=60)


def test_the_example_target_files_are_valid_file_sd(tmp_path):
    for path in (DEPLOY / "prometheus" / "file_sd").glob("*/*.yaml"):
        groups = yaml.safe_load(path.read_text())
        assert isinstance(groups, list) and all(set(group) <= {"targets", "labels"} and group["targets"]
                                                for group in groups), path


# --- containers --------------------------------------------------------------------------------

@pytest.mark.parametrize("image", containers.IMAGES, ids=lambda image: image.name)
def test_each_container_file_builds_from_the_repository_and_runs_unprivileged(image):
    text = (DEPLOY / "containers" / f"{image.name}.Containerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == [containers.BASE, containers.BASE]
    assert re.search(r"^USER (\d+):(\d+)$", text, re.M).group(1) != "0"
    copied = re.findall(r"^COPY (\S+) \S+$", text, re.M)
    for source in copied:
        assert (ROOT / source).exists(), source
    # Building the wheel reads every folder pyproject.toml maps to a package (mixin/ was once left out).
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert set(package_dirs.values()) | {"pyproject.toml", "README.md"} <= set(copied)
    if image.extra:  # the extra the image installs exists
        assert re.search(rf"^{image.extra} = \[", (ROOT / "pyproject.toml").read_text(), re.M)
    assert re.search(r'^ENTRYPOINT \["fleetscope", ', text, re.M) and "HEALTHCHECK" in text
    assert "--no-cache-dir" in text and "apt-get" not in text


# --- the fleet ---------------------------------------------------------------------------------

def test_a_clusters_prometheus_configs_are_valid_and_forward_what_the_global_ruler_needs(tmp_path):
    agent = yaml.safe_load((DEPLOY / "fleet" / "prometheus-agent.yml").read_text())
    cluster = yaml.safe_load((DEPLOY / "fleet" / "prometheus-cluster.yml").read_text())
    for config in (agent, cluster):
        assert config["global"]["external_labels"] == {"cluster": fleet.CLUSTER}
        assert {job["job_name"] for job in config["scrape_configs"]} == {
            "fleetscope-exporter", "fleetscope-drift", "model-servers"}
    assert "rule_files" not in agent and "evaluation_interval" not in agent["global"]  # agent mode has neither
    assert "write_relabel_configs" not in agent["remote_write"][0]  # everything goes to the store
    # The full server keeps its recorded series and alert states: the global ruler makes them once.
    [drop] = cluster["remote_write"][0]["write_relabel_configs"]
    assert drop["action"] == "drop" and drop["regex"] == fleet.LOCAL_ONLY
    for name in ("fleetscope:node_gpus:count", "ALERTS", "ALERTS_FOR_STATE"):
        assert re.fullmatch(drop["regex"], name)
    assert not re.fullmatch(drop["regex"], "fleetscope_gpu_up")
    cluster["rule_files"] = [str(ROOT / "alerts" / "rules" / "*.yaml")]
    for name, config in (("agent.yml", agent), ("cluster.yml", cluster)):
        (tmp_path / name).write_text(yaml.safe_dump(config))
        check = subprocess.run(["promtool", "check", "config", "--syntax-only", str(tmp_path / name)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
    full = subprocess.run(["promtool", "check", "config", str(tmp_path / "cluster.yml")], capture_output=True,
                          text=True, timeout=60)
    assert full.returncode == 0 and "SUCCESS" in full.stdout, full.stdout + full.stderr


@pytest.mark.integration
def test_a_clusters_prometheus_labels_the_targets_its_inventory_left_without_a_cluster(prometheus):
    """Its own series carry `cluster` (its rules and dashboards group by it) whether the file_sd entries
    labelled them or not; a label the inventory set is kept."""
    from fleetscope.localstack.prometheus import Prometheus
    from fleetscope.web.server import Response, WebServer

    target = WebServer("127.0.0.1:0", {"/metrics": lambda request: Response(200, b"fleetscope_gpu_up 1\n")})
    target.start()
    try:
        address = f"127.0.0.1:{target.port}"
        jobs = fleet.labelled_with_cluster([
            Prometheus.targets("unlabelled", [address]),
            {"job_name": "labelled", "static_configs": [{"targets": [address], "labels": {"cluster": "train-a"}}]},
        ], cluster="train-b")
        server = prometheus(jobs, external_labels={"cluster": "external"})
        result = server.wait_for("fleetscope_gpu_up", lambda result: len(result) == 2, timeout=30)
        assert {series["metric"]["job"]: series["metric"]["cluster"] for series in result} == {
            "unlabelled": "train-b", "labelled": "train-a"}
    finally:
        target.shutdown()


def test_vmalert_accepts_the_generated_rules(tmp_path):
    """vmalert parses the rules with its own (MetricsQL) parser: every expression must pass it."""
    vmalert = shutil.which("vmalert")
    if vmalert is None:
        pytest.skip("vmalert is not installed (scripts/setup.sh installs victoria-metrics)")
    result = subprocess.run([vmalert, "-dryRun", f"-rule={ROOT / 'alerts' / 'rules'}/*.yaml"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "-rule" in fleet.vmalert_unit() and "/usr/bin/vmalert" in fleet.vmalert_unit()


def test_the_fleet_only_agent_drops_no_series_a_rule_or_a_fleet_dashboard_reads():
    config = yaml.safe_load((DEPLOY / "fleet" / "prometheus-agent-fleet-only.yml").read_text())
    [drop] = config["remote_write"][0]["write_relabel_configs"]
    pattern = re.compile(drop["regex"])
    rules = "".join((ROOT / "alerts" / "rules" / name).read_text() for name in alerts_generate.RULE_FILES)
    fleet_boards = "".join((ROOT / "dashboards" / "json" / f"{uid}.json").read_text()
                           for uid in ("fleetscope-fleet-overview", "fleetscope-collectives"))
    read = set(re.findall(r"\bfleetscope_[a-z0-9_]+", rules + fleet_boards))
    assert read and not [name for name in read if pattern.fullmatch(name)]
    # What it does drop is the node dashboard's detail: per-NVLink and PCIe series above all.
    for name in ("fleetscope_gpu_nvlink_errors_total", "fleetscope_gpu_nvlink_up", "fleetscope_gpu_pcie_replays_total"):
        assert pattern.fullmatch(name), name
    assert not pattern.fullmatch("up") and not pattern.fullmatch("vllm:num_requests_running")
