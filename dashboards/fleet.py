"""Fleet overview: what state every GPU is in, how busy the fleet is, what it draws, and
which GPUs need someone."""

from fleetscope.alerts.config import AlertsConfig
from fleetscope.dashboards.build import (
    RATE,
    Query,
    Row,
    dashboard,
    datasource_variable,
    label_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import (
    IDLE_UTILIZATION,
    NODE_FILTERS,
    THROTTLE_REASONS,
    TITLES,
    UIDS,
    links_except,
    m,
    scoped,
)
from fleetscope.exporters.catalog import gpu, xids

# An XID of the application's own (13, 31, 43, 45, ...) says nothing of the GPU's health: only the codes
# NVIDIA's catalog says need a page or a ticket count.
HARDWARE_XIDS = 'xid=~"' + "|".join(str(code) for code in xids.PAGE + xids.TICKET) + '"'
RECOVERY_NEEDED = 'action!="none"'
GPU_COLUMNS = "cluster, hostname, gpu"
XID_NAMES = {str(code): f"{code}: {xid.name}" for code, xid in xids.CATALOG.items()}
DOUBLE_BIT = 'type="double_bit"'


def unhealthy(node: str) -> str:
    """1 for every GPU that is down, has a failed or pending row remap, a recovery action the driver asks for,
    or a hardware XID or double-bit ECC error in the last hour."""
    return (f"(({m(gpu.UP, node)} == 0) or ({m(gpu.ROW_REMAP_FAILED, node)} == 1) or "
            f"({m(gpu.ROW_REMAP_PENDING, node)} == 1) or "
            f"({m(gpu.RECOVERY_ACTION, scoped(node, RECOVERY_NEEDED))} == 1) or "
            f"(increase({m(gpu.XID_ERRORS, scoped(node, HARDWARE_XIDS))}[1h]) > 0) or "
            f"(increase({m(gpu.ECC_ERRORS, scoped(node, DOUBLE_BIT))}[1h]) > 0))")


def build(config: AlertsConfig | None = None) -> dict:
    exporter = (config or AlertsConfig()).selectors.exporter
    node = scoped(exporter, NODE_FILTERS)
    throttled = m(gpu.CLOCK_EVENT_ACTIVE, scoped(node, 'reason=~"' + THROTTLE_REASONS + '"'))
    state = Row("GPUs by state", [
        stat_panel("GPUs", "GPUs the exporters report, up or not.", "none",
                   Query(f"count({m(gpu.UP, node)})")),
        stat_panel("Busy", f"GPUs above {IDLE_UTILIZATION:.0%} utilization now.", "none",
                   Query(f"count({m(gpu.UTILIZATION, node)} > {IDLE_UTILIZATION}) or vector(0)")),
        stat_panel("Idle", f"GPUs at or below {IDLE_UTILIZATION:.0%} utilization now: capacity to reclaim.", "none",
                   Query(f"count({m(gpu.UTILIZATION, node)} <= {IDLE_UTILIZATION}) or vector(0)")),
        stat_panel("Throttled", "GPUs whose clocks are held down by power or thermal limits now "
                                f"({THROTTLE_REASONS.replace('|', ', ')}).", "none",
                   Query(f"count(max by (cluster, hostname, gpu) ({throttled}) == 1) or vector(0)"),
                   thresholds=[(1, "orange")]),
        stat_panel("Unhealthy", "GPUs not answering NVML, with a failed or pending row remap, a recovery action "
                                "the driver asks for, or a hardware XID (not an application's) or double-bit "
                                "(uncorrectable) ECC error in the last hour.", "none",
                   Query(f"count(max by (cluster, hostname, gpu) ({unhealthy(node)})) or vector(0)"),
                   thresholds=[(1, "red")]),
        stat_panel("Nodes", "Nodes with GPUs reporting.", "none",
                   Query(f"count(count by (cluster, hostname) ({m(gpu.UP, node)}))")),
    ])
    usage = Row("Utilization and memory", [
        timeseries_panel("GPU utilization by node", "Mean share of time a kernel ran, over the node's GPUs.",
                         "percentunit", Query(f"avg by (cluster, hostname) ({m(gpu.UTILIZATION, node)})",
                                              "{{hostname}}"), min=0, max=1),
        timeseries_panel("GPU memory used by node", "Framebuffer memory in use over the node's total.",
                         "percentunit",
                         Query(f"sum by (cluster, hostname) ({m(gpu.MEMORY_USED, node)}) / "
                               f"sum by (cluster, hostname) ({m(gpu.MEMORY_TOTAL, node)})", "{{hostname}}"),
                         min=0, max=1),
        timeseries_panel("GPU utilization by cluster", "Mean utilization over each cluster's GPUs.",
                         "percentunit", Query(f"avg by (cluster) ({m(gpu.UTILIZATION, node)})", "{{cluster}}"),
                         min=0, max=1),
        timeseries_panel("Memory used by cluster", "Framebuffer memory in use, summed over each cluster.",
                         "bytes", Query(f"sum by (cluster) ({m(gpu.MEMORY_USED, node)})", "{{cluster}}"), min=0),
    ])
    power = Row("Power and energy", [
        stat_panel("Power now", "Power drawn by the selected GPUs.", "watt",
                   Query(f"sum({m(gpu.POWER, node)})"), width=8),
        stat_panel("Energy, last 24 hours", "Energy used by the selected GPUs over the last day.", "joule",
                   Query(f"sum(increase({m(gpu.ENERGY, node)}[24h]))"), width=8),
        stat_panel("Power against limits", "Power drawn over the sum of the GPUs' enforced power limits.",
                   "percentunit", Query(f"sum({m(gpu.POWER, node)}) / sum({m(gpu.POWER_LIMIT, node)})"),
                   width=8, thresholds=[(0.9, "orange")]),
        timeseries_panel("Power by node", "Power drawn by each node's GPUs.", "watt",
                         Query(f"sum by (cluster, hostname) ({m(gpu.POWER, node)})", "{{hostname}}"),
                         stacked=True, width=24),
    ])
    health = Row("Health", [
        table_panel("GPUs needing attention", "GPUs with XID events, double-bit (uncorrectable) ECC errors or a "
                                              "row remap pending or failed in the last day, most XIDs first, with "
                                              "the latest XID code and what it means.", "none",
                    Query(f"sum by ({GPU_COLUMNS}) (round(increase({m(gpu.XID_EVENTS, node)}[24h])))",
                          "XID events, 24h"),
                    Query(f"max by ({GPU_COLUMNS}) ({m(gpu.LAST_XID, node)})", "latest XID"),
                    Query(f"sum by ({GPU_COLUMNS}) (round(increase({m(gpu.ECC_ERRORS, scoped(node, DOUBLE_BIT))}"
                          "[24h])))", "double-bit ECC, 24h"),
                    Query(f"max by ({GPU_COLUMNS}) ({m(gpu.ROW_REMAP_PENDING, node)} + "
                          f"{m(gpu.ROW_REMAP_FAILED, node)})", "row remap pending + failed"),
                    columns=GPU_COLUMNS.split(", "), mappings={"latest XID": XID_NAMES},
                    nonzero_in=("XID events, 24h", "double-bit ECC, 24h", "row remap pending + failed"),
                    decimals=0, width=24, height=10),
        timeseries_panel("Throttled time by reason", "Share of time clocks were held down, by reason, over the "
                                                     "selected GPUs.", "percentunit",
                         Query(f"sum by (reason) (rate({m(gpu.CLOCK_EVENT_DURATION, node)}[{RATE}])) / "
                               f"scalar(count({m(gpu.UP, node)}))", "{{reason}}"), min=0),
        timeseries_panel("Hottest GPU by node", "The highest GPU temperature on each node.", "celsius",
                         Query(f"max by (cluster, hostname) ({m(gpu.TEMPERATURE, node)})", "{{hostname}}")),
    ])
    variables = [datasource_variable(), label_variable("cluster", "Cluster", gpu.UP.name, exporter),
                 label_variable("hostname", "Host", gpu.UP.name, scoped(exporter, 'cluster=~"$cluster"'))]
    return dashboard(UIDS["fleet"], TITLES["fleet"],
                     "Every GPU's state, the fleet's utilization, memory, power and energy, and the GPUs that "
                     "need someone. Start here.", variables, [state, usage, power, health],
                     links_except("fleet"))
