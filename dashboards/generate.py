"""Writes the dashboards and their provisioning: `python -m fleetscope.dashboards.generate [--config FILE] [DIR]`
(or `fleetscope generate dashboards`).

The monitoring config (mixin/config.py) gives the dashboards what they share with the rules: the
exporter's and drift service's job selectors, and the latency objective the inference dashboard opens on.

    json/<uid>.json                 the dashboards, Grafana's JSON model
    provisioning/dashboards.yaml    a Grafana dashboard provider reading json/ (mount it at
                                    /etc/grafana/provisioning/dashboards/)
    provisioning/datasources.yaml   the Prometheus datasource (uid "prometheus")

configmaps() makes one ConfigMap per dashboard, labelled for the Grafana sidecar
(grafana_dashboard: "1") as kube-prometheus-stack expects; they are written with the other
Kubernetes manifests, to deploy/kubernetes/dashboards.yaml (python -m fleetscope.deploy.generate).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from fleetscope.generated import header
from fleetscope.mixin import generate as generator
from fleetscope.mixin.config import MonitoringConfig

with generator.needs_extra("dashboards", "python -m fleetscope.dashboards.generate", main=__name__ == "__main__"):
    from fleetscope.dashboards import collectives, drift, fleet, gpu, inference, ray, self_monitoring, training

DIRECTORY = Path(__file__).resolve().parent
BUILDERS = (fleet, gpu, collectives, inference, drift, self_monitoring, training, ray)
HEADER = header("python -m fleetscope.dashboards.generate")
MOUNT = "/var/lib/grafana/dashboards/fleetscope"


def dashboards(config: MonitoringConfig | None = None) -> list[dict]:
    return [module.build(config or MonitoringConfig()) for module in BUILDERS]


def _yaml(document: object) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=120)


def files(config: MonitoringConfig | None = None) -> dict[str, str]:
    built = dashboards(config)
    texts = {f"json/{board['uid']}.json": json.dumps(board, indent=2, sort_keys=True) + "\n" for board in built}
    texts["provisioning/dashboards.yaml"] = _yaml({"apiVersion": 1, "providers": [{
        "name": "fleetscope", "orgId": 1, "folder": "fleetscope", "folderUid": "fleetscope", "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": MOUNT, "foldersFromFilesStructure": False}}]})
    texts["provisioning/datasources.yaml"] = _yaml({"apiVersion": 1, "datasources": [{
        "name": "Prometheus", "uid": "prometheus", "type": "prometheus", "access": "proxy",
        "url": "http://prometheus:9090", "isDefault": True, "editable": False,
        "jsonData": {"timeInterval": "15s", "httpMethod": "POST"}}]})
    return texts


def configmaps(boards: list[dict], namespace: str = "monitoring") -> list[dict]:
    """One ConfigMap per dashboard, labelled for the Grafana sidecar of kube-prometheus-stack."""
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": board["uid"], "namespace": namespace,
                          "labels": {"grafana_dashboard": "1", "app.kubernetes.io/part-of": "fleetscope"},
                          "annotations": {"grafana_folder": "fleetscope"}},
             "data": {f"{board['uid']}.json": json.dumps(board, sort_keys=True)}} for board in boards]


DESCRIPTION = ("Write the Grafana dashboards (json/*.json) and their provisioning (provisioning/*.yaml) from the "
               "monitoring config.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    generator.add_arguments(parser, DIRECTORY)


def run(args: argparse.Namespace) -> int:
    return generator.run_command(args, files)


def main(argv: list[str] | None = None) -> int:
    return generator.run_generator(argv, "python -m fleetscope.dashboards.generate", __doc__ or "", DIRECTORY, files)


if __name__ == "__main__":
    raise SystemExit(main())
