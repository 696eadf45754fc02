"""Node readiness in rules: the exporter's health verdicts (fleetscope_gpu_health_state, fleetscope_node_health_state,
served by exporters/health/) joined with the XIDs the monitoring config's policy pages or tickets on, recorded per
check and per node, counted per cluster for the fleet overview, and alerted on once per node.

    fleetscope:node_health_check:state     by (cluster, job, instance, hostname, check): 0 ok, 1 degraded, 2 unfit
    fleetscope:node_health:state           by (cluster, job, instance, hostname): the worst of its checks
    fleetscope:cluster_nodes_health:count  by (cluster, health): nodes healthy, degraded and unfit

Application XIDs (13, 31, 43, 45 and the others in neither gpu.xid_page nor gpu.xid_ticket) never count: a job's
fault is not the node's.
"""

from __future__ import annotations

from fleetscope.alerts.rule import Alert, group, record, regex
from fleetscope.exporters.catalog import gpu, health
from fleetscope.mixin.config import MonitoringConfig

NODE = "cluster, job, instance, hostname"
CHECK_STATE = "fleetscope:node_health_check:state"
NODE_STATE = "fleetscope:node_health:state"
CLUSTER_NODES = "fleetscope:cluster_nodes_health:count"
HEALTH = {"healthy": 0, "degraded": 1, "unfit": 2}
UNFIT, DEGRADED = HEALTH["unfit"], HEALTH["degraded"]


def _xids(codes: str, level: int, config: MonitoringConfig) -> str:
    """`level` for each node with an XID of `codes` in the window, as check="xid"; as FleetscopeGPUXidError counts
    them: a code's series appears at 1 with its first XID, so a series new within the window counts too."""
    e, window = config.selectors.exporter, config.gpu.xid_window
    by_code = gpu.XID_ERRORS.select(e, codes)
    recent = (f"(\n    increase({by_code}[{window}]) > 0\n    or\n"
              f"    ({by_code} unless {gpu.XID_ERRORS.select(e)} offset {window})\n  )\n"
              f"  and on (instance, uuid)\n  increase({gpu.XID_EVENTS.select(e)}[{window}]) > 0")
    return f'label_replace(\n  {level} * (max by ({NODE}) (\n  {recent}\n  ) > bool 0),\n  "check", "xid", "", ""\n)'


def records(config: MonitoringConfig) -> list[dict]:
    e, g = config.selectors.exporter, config.gpu
    page, ticket = regex(g.xid_page), regex(g.xid_ticket)
    page_xids, ticket_xids = f'xid=~"{page}"', f'xid=~"{ticket}"'
    per_check = (f"max by ({NODE}, check) ({health.GPU_HEALTH.select(e)})\n"
                 f"or\nmax by ({NODE}, check) ({health.NODE_HEALTH.select(e)})\n"
                 f"or\n{_xids(page_xids, UNFIT, config)}\n"
                 f"or\n{_xids(ticket_xids, DEGRADED, config)}")
    counts = [f'label_replace(count by (cluster) ({NODE_STATE} == {level}), "health", "{name}", "", "")'
              for name, level in HEALTH.items()]
    return [
        record(CHECK_STATE, per_check),
        record(NODE_STATE, f"max by ({NODE}) ({CHECK_STATE})"),
        record(CLUSTER_NODES, "\nor\n".join(counts)),
    ]


def _failing(level: int) -> str:
    """The node's failing checks, listed from the per-check record (Prometheus' template query)."""
    query = f'printf "{CHECK_STATE}{{instance=%q}} == {level}" $labels.instance'
    return (f'{{{{ range query ({query}) | sortByLabel "check" }}}}'
            "{{ .Labels.check }} {{ end }}")


def health_alerts(config: MonitoringConfig) -> list[Alert]:
    g = config.gpu
    return [
        Alert("FleetscopeNodeUnfit", f"{NODE_STATE} == {UNFIT}", "page", for_=g.health_unfit_for,
              summary="{{ $labels.hostname }} is unfit for work",
              description="{{ $labels.hostname }} ({{ $labels.instance }}) has failed health checks for "
                          f"{g.health_unfit_for}: {_failing(UNFIT)}. Drain it; the runbook says what each check "
                          "needs (`fleetscope check` on the node prints the reasons)."),
        Alert("FleetscopeNodeDegraded", f"{NODE_STATE} == {DEGRADED}", "ticket", for_=g.health_degraded_for,
              summary="{{ $labels.hostname }} is degraded",
              description="{{ $labels.hostname }} ({{ $labels.instance }}) has been degraded for "
                          f"{g.health_degraded_for}: {_failing(DEGRADED)}. It still runs work, more slowly or "
                          "closer to failing; fix it at the next maintenance."),
    ]


def rule_groups(config: MonitoringConfig) -> dict:
    return {"groups": [
        {"name": "fleetscope-health-recording", "rules": records(config)},
        group("fleetscope-health", config.team("gpu"), config, health_alerts(config), "gpu"),
    ]}
