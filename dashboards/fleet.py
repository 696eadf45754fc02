"""Fleet overview: what state every GPU is in, how busy the fleet is, what it draws, and
which GPUs need someone."""

from fleetscope.alerts import fleet as records
from fleetscope.alerts import health as health_records
from fleetscope.dashboards.build import (
    Query,
    Row,
    dashboard,
    datasource_variable,
    label_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import TITLES, UIDS, links_except
from fleetscope.exporters.catalog import xids
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.promql import bottom

CLUSTER = '{cluster=~"$cluster"}'
GPU_COLUMNS = "cluster, hostname, gpu"
XID_NAMES = {str(code): f"{code}: {xid.name}" for code, xid in xids.CATALOG.items()}
TOP = records.TOP  # nodes shown in the per-node panels: the fleet's extremes, not a line per node
ATTENTION = "GPUs needing attention"  # answers only the few GPUs that need someone: empty while all are well


def _sum(record: str) -> str:
    return f"sum({record}{CLUSTER})"


def _count(record: str) -> str:
    return f"{_sum(record)} or vector(0)"


def build(config: MonitoringConfig | None = None) -> dict:
    """Every panel reads records (alerts/fleet.py): the per-cluster ones, each cluster's extreme nodes, and the
    GPUs that need someone, so the dashboard's cost follows clusters, not nodes or GPUs."""
    config = config or MonitoringConfig()
    day, every = records.ATTENTION_WINDOW, config.gpu.attention_interval
    idle = records.IDLE_UTILIZATION
    state = Row("GPUs by state", [
        stat_panel("GPUs", "GPUs the exporters report, up or not.", "none", Query(_sum(records.CLUSTER_GPUS))),
        stat_panel("Busy", f"GPUs above {idle:.0%} utilization now.", "none", Query(_count(records.CLUSTER_BUSY))),
        stat_panel("Idle", f"GPUs at or below {idle:.0%} utilization now: capacity to reclaim.", "none",
                   Query(_count(records.CLUSTER_IDLE))),
        stat_panel("Throttled", "GPUs whose clocks are held down by power or thermal limits now "
                                f"({', '.join(records.THROTTLE_REASONS)}).", "none",
                   Query(_count(records.CLUSTER_THROTTLED)), thresholds=[(1, "orange")]),
        stat_panel("Unhealthy", "GPUs not answering NVML, with a failed or pending row remap, a recovery action "
                                "the driver asks for, or a hardware XID (not an application's) or double-bit "
                                "(uncorrectable) ECC error in the last hour.", "none",
                   Query(_count(records.CLUSTER_UNHEALTHY)), thresholds=[(1, "red")]),
        stat_panel("Nodes", "Nodes with GPUs reporting.", "none", Query(_sum(records.CLUSTER_NODES))),
    ])
    usage = Row("Utilization and memory", [
        timeseries_panel("GPU utilization by cluster", "Mean share of time a kernel ran, over each cluster's GPUs.",
                         "percentunit", Query(f"{records.CLUSTER_UTILIZATION}{CLUSTER}", "{{cluster}}"),
                         min=0, max=1),
        timeseries_panel("Memory used by cluster", "Framebuffer memory in use, summed over each cluster.",
                         "bytes", Query(f"{records.CLUSTER_MEMORY_USED}{CLUSTER}", "{{cluster}}"), min=0),
        timeseries_panel(f"Least busy nodes ({TOP})", f"The {TOP} nodes whose GPUs ran kernels least, on average: "
                                                      "capacity to reclaim, or a job stuck.", "percentunit",
                         Query(bottom(TOP, f"{records.NODE_LEAST_BUSY}{CLUSTER}"), "{{hostname}}"),
                         min=0, max=1, links=[("Node / GPU detail", f"/d/{UIDS['gpu']}")]),
        timeseries_panel(f"Fullest GPU memory ({TOP} nodes)", f"The {TOP} nodes with the largest share of GPU "
                                                              "memory in use.", "percentunit",
                         Query(f"topk({TOP}, {records.NODE_FULLEST_MEMORY}{CLUSTER})", "{{hostname}}"),
                         min=0, max=1),
    ])
    power = Row("Power and energy", [
        stat_panel("Power now", "Power drawn by the selected clusters' GPUs.", "watt",
                   Query(_sum(records.CLUSTER_POWER)), width=8),
        stat_panel("Energy, last 24 hours", "Energy the selected clusters' GPUs used over the last day: their "
                                            "mean power over the day, times a day.", "joule",
                   Query(f"sum(avg_over_time({records.CLUSTER_ENERGY}{CLUSTER}[24h])) * 86400"), width=8),
        stat_panel("Power against limits", "Power drawn over the sum of the GPUs' enforced power limits.",
                   "percentunit", Query(f"{_sum(records.CLUSTER_POWER)} / {_sum(records.CLUSTER_POWER_LIMIT)}"),
                   width=8, thresholds=[(0.9, "orange")]),
        timeseries_panel("Power by cluster", "Power drawn by each cluster's GPUs.", "watt",
                         Query(f"{records.CLUSTER_POWER}{CLUSTER}", "{{cluster}}"), stacked=True, width=24),
    ])
    health = Row("Health", [
        table_panel(ATTENTION, f"GPUs with XID events, double-bit (uncorrectable) ECC errors or a row remap pending "
                               f"or failed in the last {day}, most XIDs first, with the latest XID code and what it "
                               f"means. Recorded every {every} (gpu.attention_interval).", "none",
                    Query(f"sum by ({GPU_COLUMNS}) ({records.GPU_XIDS}{CLUSTER})", f"XID events, {day}"),
                    Query(f"max by ({GPU_COLUMNS}) ({records.GPU_LAST_XID}{CLUSTER})", "latest XID"),
                    Query(f"sum by ({GPU_COLUMNS}) ({records.GPU_DOUBLE_BIT_ECC}{CLUSTER})", f"double-bit ECC, {day}"),
                    Query(f"max by ({GPU_COLUMNS}) ({records.GPU_ROW_REMAPS}{CLUSTER})", "row remap pending + failed"),
                    columns=GPU_COLUMNS.split(", "), mappings={"latest XID": XID_NAMES},
                    nonzero_in=(f"XID events, {day}", f"double-bit ECC, {day}", "row remap pending + failed"),
                    decimals=0, width=24, height=10),
        timeseries_panel("Throttled time by reason", "Share of time clocks were held down, by reason, over the "
                                                     "selected clusters' GPUs.", "percentunit",
                         Query(f"sum by (reason) ({records.CLUSTER_THROTTLED_TIME}{CLUSTER}) / "
                               f"scalar({_sum(records.CLUSTER_GPUS)})", "{{reason}}"), min=0),
        timeseries_panel(f"Hottest nodes ({TOP})", f"The {TOP} nodes with the hottest GPU.", "celsius",
                         Query(f"topk({TOP}, {records.NODE_HOTTEST}{CLUSTER})", "{{hostname}}")),
        timeseries_panel("Nodes by health", "Nodes healthy, degraded (slower or closer to failing: a link below its "
                                            "width, throttling, a limit) and unfit for work (a failed check or a "
                                            "paging XID), from the exporters' health checks "
                                            "(`fleetscope check`'s, at every poll).", "none",
                         Query(f"sum by (health) ({health_records.CLUSTER_NODES}{CLUSTER})", "{{health}}"),
                         stacked=True, min=0, width=24),
    ])
    variables = [datasource_variable(), label_variable("cluster", "Cluster", records.CLUSTER_GPUS)]
    return dashboard(UIDS["fleet"], TITLES["fleet"],
                     "Every GPU's state, the fleet's utilization, memory, power and energy, and the GPUs that "
                     "need someone. Start here.", variables, [state, usage, power, health],
                     links_except("fleet"))
