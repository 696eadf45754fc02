"""Writes the rules, the PrometheusRule manifest and the Alertmanager configuration:

    python -m fleetscope.alerts.generate [--config alerts.yaml] [DIR]
    fleetscope generate alerts [--config alerts.yaml] [DIR]

    rules/gpu.yaml                    the exporter, GPU health, idle allocated GPUs, and the fleet's per-node and
                                      per-cluster aggregates
    rules/collectives.yaml            NCCL collectives and the fabric
    rules/inference.yaml              every engine's telemetry normalized, and the serving alerts
    rules/efficiency.yaml             the GPUs that serve each model: energy per token, GPU-seconds per request
    rules/drift.yaml                  model drift and the drift service
    rules/health.yaml                 node readiness: health verdicts and paging XIDs per node, fleet counts
    rules/self.yaml                   fleetscope's own processes: slow scrapes, restarts, memory, the drift store
    rules/training.yaml               training goodput, badput by cause and ETTR from the training SDK, and its alerts
    rules/ray.yaml                    Ray's own metrics: lost nodes, Serve replicas replaced, pending tasks, spilling
    alertmanager/alertmanager.yml     the route tree, receivers and inhibit rules

The PrometheusRule manifest holding every group is written with the other deployment files
(python -m fleetscope.deploy.generate). DIR defaults to the package's own directory, whose
files are committed; with --config, the
thresholds, selectors and teams come from a YAML file over the defaults (see mixin/config.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from fleetscope.alerts import (
    checks,
    collectives,
    drift,
    efficiency,
    fleet,
    gpu,
    health,
    inference,
    ray,
    routing,
    self_monitoring,
    serving,
    serving_signals,
    training,
)
from fleetscope.generated import header
from fleetscope.mixin import generate as generator
from fleetscope.mixin.config import MonitoringConfig

HEADER = header("python -m fleetscope.alerts.generate")
DIRECTORY = Path(__file__).resolve().parent
RULE_FILES = ("gpu.yaml", "collectives.yaml", "inference.yaml", "efficiency.yaml", "drift.yaml", "health.yaml",
              "self.yaml", "training.yaml", "ray.yaml")


class _Literal(str):
    pass


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


yaml.add_representer(_Literal, _literal, Dumper=yaml.SafeDumper)


def _readable(document: object) -> object:
    if isinstance(document, dict):
        return {key: _readable(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_readable(value) for value in document]
    return _Literal(document) if isinstance(document, str) else document


def render(document: dict) -> str:
    return HEADER + yaml.safe_dump(_readable(document), sort_keys=False, width=120)


def rule_files(config: MonitoringConfig) -> dict[str, dict]:
    """ConfigError for a setting the rules cannot use (checks.py)."""
    checks.check(config)
    normalization = inference.rule_groups(config.inference.normalization)["groups"]
    return {
        "gpu.yaml": {"groups": gpu.rule_groups(config)["groups"] + fleet.rule_groups(config)},
        "collectives.yaml": collectives.rule_groups(config),
        "inference.yaml": {"groups": normalization + serving.rule_groups(config) + serving_signals.rule_groups(config)},
        "efficiency.yaml": {"groups": efficiency.rule_groups(config) + serving.efficiency_rule_groups(config)},
        "drift.yaml": drift.rule_groups(config),
        "health.yaml": health.rule_groups(config),
        "self.yaml": self_monitoring.rule_groups(config),
        "training.yaml": training.rule_groups(config),
        "ray.yaml": ray.rule_groups(config),
    }


# `kubectl apply` (client-side) keeps the whole object, as JSON, in an annotation that may hold 262,144 bytes
# (the rules of every engine's normalization came to 390 KB as one object). Each PrometheusRule stays well under.
ANNOTATION_LIMIT = 262_144
RULE_OBJECT_BUDGET = 200_000  # bytes of JSON per PrometheusRule, leaving room for metadata and kubectl's fields


def prometheus_rules(config: MonitoringConfig, rules: dict[str, dict]) -> list[dict]:
    """One PrometheusRule per rule file (fleetscope-gpu, fleetscope-inference, ...), as kube-prometheus splits
    its rules; a file whose groups would pass RULE_OBJECT_BUDGET is cut, between groups, into numbered parts."""
    objects = []
    for name in RULE_FILES:
        parts = _packed(rules[name]["groups"], RULE_OBJECT_BUDGET)
        stem = f"fleetscope-{name.removesuffix('.yaml')}"
        for number, groups in enumerate(parts, 1):
            objects.append(_prometheus_rule(config, stem if len(parts) == 1 else f"{stem}-{number}", groups))
    return objects


def _packed(groups: list[dict], budget: int) -> list[list[dict]]:
    """The groups in order, in as few parts as keep each part's JSON within budget; a group is never split (its
    rules are evaluated in order, each reading the last)."""
    parts: list[list[dict]] = [[]]
    size = 0
    for group in groups:
        group_size = len(json.dumps(group)) + 2
        if group_size > budget:
            raise ValueError(f"rule group {group['name']} is {group_size} bytes as JSON, over {budget}")
        if parts[-1] and size + group_size > budget:
            parts.append([])
            size = 0
        parts[-1].append(group)
        size += group_size
    return parts


def _prometheus_rule(config: MonitoringConfig, name: str, groups: list[dict]) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": config.kubernetes_namespace,
                     "labels": {"app.kubernetes.io/name": "fleetscope", "app.kubernetes.io/part-of": "fleetscope",
                                **config.prometheus_rule_labels}},
        "spec": {"groups": groups},
    }


def files(config: MonitoringConfig | None = None) -> dict[str, str]:
    config = config or MonitoringConfig()
    rules = rule_files(config)
    texts = {f"rules/{name}": render(document) for name, document in rules.items()}
    texts["alertmanager/alertmanager.yml"] = render(routing.alertmanager_config(config))
    return texts


DESCRIPTION = ("Write the recording and alert rules (rules/*.yaml) and the Alertmanager configuration "
               "(alertmanager/alertmanager.yml) from the monitoring config.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    generator.add_arguments(parser, DIRECTORY)


def run(args: argparse.Namespace) -> int:
    return generator.run_command(args, files)


def main(argv: list[str] | None = None) -> int:
    return generator.run_generator(argv, "python -m fleetscope.alerts.generate", __doc__ or "", DIRECTORY, files)


if __name__ == "__main__":
    raise SystemExit(main())
