"""The fleet topology: a Prometheus per cluster with its `cluster` as an external label, remote-writing
to one long-term store (VictoriaMetrics here; Thanos Receive and Mimir take the same remote_write), and
the generated rules in a global ruler (vmalert) over that store.

    fleet/prometheus-agent.yml      a cluster's Prometheus in agent mode: scrape, label, forward
    fleet/prometheus-cluster.yml    a cluster's full Prometheus: the same, plus local rules and alerts
                                    (which it does not forward: the global ruler records them once)
    fleet/prometheus-agent-fleet-only.yml  the agent, forwarding only the exporter series that a rule or a
                                    fleet-level dashboard reads: for fleets whose store must stay small
    systemd/fleetscope-vmalert.service  vmalert with the generated rules, as a systemd unit
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from fleetscope.deploy.baremetal import SANDBOX, scrape_configs
from fleetscope.exporters.catalog import NODE_EXPORTER

CLUSTER = "CLUSTER-NAME"  # replace with the cluster's name: every rule and dashboard groups by it
STORE = "http://victoria-metrics.internal:8428"
ALERTMANAGER = "http://alertmanager.internal:9093"
RULES = "/etc/fleetscope/rules"
# What a cluster's full Prometheus keeps to itself: its own recorded series and alert states. The global
# ruler computes them from the raw series; forwarding both would write each series twice, from two rulers.
LOCAL_ONLY = "fleetscope:.+|ALERTS|ALERTS_FOR_STATE"


def remote_write(url: str, drop: str = "", **queue_config: str) -> dict:
    """A remote_write entry to the global store; `drop` names series (a regex) that stay local."""
    entry: dict = {"url": url}
    if drop:
        entry["write_relabel_configs"] = [{"source_labels": ["__name__"], "regex": drop, "action": "drop"}]
    if queue_config:
        entry["queue_config"] = dict(queue_config)
    return entry


def labelled_with_cluster(jobs: list[dict], cluster: str = CLUSTER) -> list[dict]:
    """Each job's targets labelled with the cluster where the inventory's file_sd entries did not label them:
    an external label reaches only what leaves this Prometheus, and its own rules and dashboards group by
    cluster too."""
    unlabelled = {"source_labels": ["cluster"], "regex": "", "target_label": "cluster", "replacement": cluster}
    return [job | {"relabel_configs": [*job.get("relabel_configs", []), unlabelled]} for job in jobs]


def agent_config() -> dict:
    """Run with --enable-feature=agent: no local storage, rules or queries."""
    return {"global": {"scrape_interval": "15s", "external_labels": {"cluster": CLUSTER}},
            "scrape_configs": labelled_with_cluster(scrape_configs()),
            "remote_write": [remote_write(f"{STORE}/api/v1/write")]}


def node_detail_only(readers: Iterable[str]) -> list[str]:
    """The node exporter's metric names that none of `readers` (rule files, fleet-level dashboards, as text)
    reads: per-NVLink, PCIe, clock and process detail that only the node dashboard shows."""
    text = "\n".join(readers)
    read = {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"\bfleetscope_[a-z0-9_]+", text)}
    return sorted(spec.name for spec in NODE_EXPORTER if spec.name not in read)


def fleet_only_agent_config(detail: Sequence[str]) -> dict:
    """The agent, dropping what only the node dashboard reads before it leaves the cluster (keep a local
    Prometheus, or the exporter itself, for that dashboard)."""
    config = agent_config()
    names = "|".join(re.escape(name) for name in detail)
    config["remote_write"] = [remote_write(f"{STORE}/api/v1/write", drop=f"(?:{names})(?:_bucket|_sum|_count)?")]
    return config


def cluster_config() -> dict:
    return {"global": {"scrape_interval": "15s", "evaluation_interval": "15s", "external_labels": {"cluster": CLUSTER}},
            "rule_files": [f"{RULES}/*.yaml"],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER.removeprefix("http://")]}]}]},
            "scrape_configs": labelled_with_cluster(scrape_configs()),
            "remote_write": [remote_write(f"{STORE}/api/v1/write", drop=LOCAL_ONLY)]}


def vmalert_flags(evaluation_interval: str = "15s") -> list[str]:
    return [f"-rule={RULES}/*.yaml", f"-datasource.url={STORE}", f"-remoteWrite.url={STORE}",
            f"-remoteRead.url={STORE}", f"-notifier.url={ALERTMANAGER}", f"-evaluationInterval={evaluation_interval}",
            "-httpListenAddr=:8880"]


def vmalert_unit() -> str:
    flags = " \\\n    ".join(vmalert_flags())
    return f"""[Unit]
Description=vmalert: fleetscope's recording and alert rules over the fleet's VictoriaMetrics
Documentation=https://docs.victoriametrics.com/vmalert/
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/usr/bin/vmalert \\
    {flags}
Restart=on-failure
RestartSec=5s
{SANDBOX}PrivateDevices=yes
MemoryDenyWriteExecute=yes
ConfigurationDirectory=fleetscope

[Install]
WantedBy=multi-user.target
"""
