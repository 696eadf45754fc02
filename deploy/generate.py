"""Writes the deployment files under deploy/: `python -m fleetscope.deploy.generate [--alerts-config FILE] [DIR]`
(or `fleetscope generate deploy`).

    kubernetes/        kubectl apply -k deploy/kubernetes (namespace monitoring, kube-prometheus-stack)
    systemd/           fleetscope-exporter.service, fleetscope-drift.service
    prometheus/        prometheus.yml with file-based discovery, and example target files
    fleet/             a cluster's Prometheus (agent or full) remote-writing to the fleet's store
    systemd/fleetscope-vmalert.service  the global ruler over that store
    containers/        a Containerfile per service, and the .dockerignore to copy to the build root
    node-problem-detector/fleetscope-check.json  node-problem-detector's custom plugin running `fleetscope check`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from fleetscope.alerts import generate as alerts
from fleetscope.alerts import routing
from fleetscope.dashboards.common import UIDS
from fleetscope.deploy import baremetal, containers, fleet, kubernetes, node_problem_detector
from fleetscope.generated import header
from fleetscope.mixin import generate as generator
from fleetscope.mixin.config import MonitoringConfig

with generator.needs_extra("dashboards", "python -m fleetscope.deploy.generate", main=__name__ == "__main__"):
    from fleetscope.dashboards import generate as dashboards

HEADER = header("python -m fleetscope.deploy.generate")
DIRECTORY = Path(__file__).resolve().parent


def _documents(documents: list[dict]) -> str:
    return HEADER + "".join("---\n" + yaml.safe_dump(document, sort_keys=False, width=120) for document in documents)


def kubernetes_files(alerts_config: MonitoringConfig, config: kubernetes.KubernetesConfig) -> dict[str, str]:
    am_config = kubernetes.alertmanager_alerts_config(alerts_config)
    am_yaml = alerts.render(routing.alertmanager_config(am_config))
    rules = alerts.rule_files(alerts_config)
    files = {
        "exporter.yaml": _documents(kubernetes.exporter(config)),
        "drift.yaml": _documents(kubernetes.drift_service(config)),
        "monitors.yaml": _documents(kubernetes.monitors(config)),
        "prometheusrule.yaml": _documents(alerts.prometheus_rules(alerts_config, rules)),
        "dashboards.yaml": _documents(dashboards.configmaps(dashboards.dashboards(alerts_config), config.namespace)),
        "alertmanager.yaml": _documents([kubernetes.alertmanager_secret(config, am_yaml)]),
    }
    files["kustomization.yaml"] = HEADER + yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": config.namespace, "resources": sorted(files)}, sort_keys=False)
    return {f"kubernetes/{name}": text for name, text in files.items()}


def files(alerts_config: MonitoringConfig | None = None,
          config: kubernetes.KubernetesConfig | None = None) -> dict[str, str]:
    alerts_config = alerts_config or MonitoringConfig()
    texts = kubernetes_files(alerts_config, config or kubernetes.KubernetesConfig())
    texts["systemd/fleetscope-exporter.service"] = baremetal.EXPORTER_UNIT
    texts["systemd/fleetscope-drift.service"] = baremetal.DRIFT_UNIT
    texts["prometheus/prometheus.yml"] = HEADER + yaml.safe_dump(baremetal.prometheus_config(), sort_keys=False)
    texts["fleet/prometheus-agent.yml"] = HEADER + yaml.safe_dump(fleet.agent_config(), sort_keys=False)
    texts["fleet/prometheus-cluster.yml"] = HEADER + yaml.safe_dump(fleet.cluster_config(), sort_keys=False)
    readers = list(alerts.files(alerts_config).values()) + [
        json.dumps(board) for board in dashboards.dashboards(alerts_config)
        if board["uid"] in (UIDS["fleet"], UIDS["collectives"])]
    texts["fleet/prometheus-agent-fleet-only.yml"] = HEADER + yaml.safe_dump(
        fleet.fleet_only_agent_config(fleet.node_detail_only(readers)), sort_keys=False, width=1000)
    texts["systemd/fleetscope-vmalert.service"] = fleet.vmalert_unit()
    for job, groups in baremetal.example_targets().items():
        texts[f"prometheus/file_sd/{job}/example.yaml"] = HEADER + yaml.safe_dump(groups, sort_keys=False)
    for image in containers.IMAGES:
        texts[f"containers/{image.name}.Containerfile"] = containers.containerfile(image)
    texts["containers/dockerignore"] = containers.DOCKERIGNORE
    texts["node-problem-detector/fleetscope-check.json"] = node_problem_detector.text()
    return texts


DESCRIPTION = ("Write the deployment files (Kubernetes manifests, systemd units, Prometheus configs, "
               "Containerfiles) from the monitoring config.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    generator.add_arguments(parser, DIRECTORY, config_flag="--alerts-config")


def run(args: argparse.Namespace) -> int:
    return generator.run_command(args, files)


def main(argv: list[str] | None = None) -> int:
    return generator.run_generator(argv, "python -m fleetscope.deploy.generate", __doc__ or "", DIRECTORY, files,
                                   config_flag="--alerts-config")


if __name__ == "__main__":
    raise SystemExit(main())
