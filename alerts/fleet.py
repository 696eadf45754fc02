"""The fleet in recorded series: per node and per cluster aggregates of the GPUs' state, use, memory and
power, recorded where the raw series are, so that the fleet overview reads a few series per cluster and
one per node instead of every GPU's (benchmarks/fleet_cost.py measures the difference). Per-node
dashboards keep reading the raw series of the node chosen.

    fleetscope:node_gpu_<what>        by (cluster, job, instance, hostname)
    fleetscope:node_gpu_<what>_top10  each cluster's ten highest (bottom10: lowest) of a node record: the
                                      fleet overview's extremes panels read ten series a cluster, not every node
    fleetscope:cluster_<what>         by (cluster)
    fleetscope:gpu_<what>             by (cluster, job, instance, hostname, gpu), only where it is above zero:
                                      the attention table reads the few GPUs that need someone, not every GPU
"""

from __future__ import annotations

from fleetscope.alerts.gpu import GPU_COUNT
from fleetscope.alerts.rule import extremes, record, regex
from fleetscope.exporters.catalog import gpu
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.matchers import matchers

IDLE_UTILIZATION = 0.1  # a GPU busier than this is counted busy
# Throttling that costs performance; idle, application clocks, sync boost and display settings hold clocks
# down without anything being wrong.
THROTTLE_REASONS = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                    "hw_power_brake_slowdown")
RECOVERY_NEEDED = 'action!="none"'
DOUBLE_BIT = 'type="double_bit"'

NODE = "cluster, job, instance, hostname"
_PER_GPU = "cluster, instance, gpu"
NODE_UTILIZATION = "fleetscope:node_gpu_utilization_ratio:avg"
NODE_MEMORY_USED = "fleetscope:node_gpu_memory_used_bytes:sum"
NODE_MEMORY_TOTAL = "fleetscope:node_gpu_memory_total_bytes:sum"
NODE_POWER = "fleetscope:node_gpu_power_watts:sum"
NODE_TEMPERATURE = "fleetscope:node_gpu_temperature_celsius:max"
TOP = 10  # the nodes each cluster's extremes records keep: the fleet overview shows the fleet's ten
NODE_LEAST_BUSY = "fleetscope:node_gpu_utilization_ratio:avg_bottom10"
NODE_FULLEST_MEMORY = "fleetscope:node_gpu_memory_used_ratio:top10"
NODE_HOTTEST = "fleetscope:node_gpu_temperature_celsius:max_top10"
CLUSTER_GPUS = "fleetscope:cluster_gpus:count"
CLUSTER_BUSY = "fleetscope:cluster_gpus_busy:count"
CLUSTER_IDLE = "fleetscope:cluster_gpus_idle:count"
CLUSTER_THROTTLED = "fleetscope:cluster_gpus_throttled:count"
CLUSTER_UNHEALTHY = "fleetscope:cluster_gpus_unhealthy:count"
CLUSTER_NODES = "fleetscope:cluster_nodes:count"
CLUSTER_UTILIZATION = "fleetscope:cluster_gpu_utilization_ratio:avg"
CLUSTER_MEMORY_USED = "fleetscope:cluster_gpu_memory_used_bytes:sum"
CLUSTER_MEMORY_TOTAL = "fleetscope:cluster_gpu_memory_total_bytes:sum"
CLUSTER_POWER = "fleetscope:cluster_gpu_power_watts:sum"
CLUSTER_POWER_LIMIT = "fleetscope:cluster_gpu_power_limit_watts:sum"
CLUSTER_ENERGY = "fleetscope:cluster_gpu_energy_joules:rate5m"
CLUSTER_THROTTLED_TIME = "fleetscope:cluster_gpu_clock_event_seconds:rate5m"
ATTENTION_WINDOW = "24h"
GPU_XIDS = f"fleetscope:gpu_xid_events:increase{ATTENTION_WINDOW}"
GPU_DOUBLE_BIT_ECC = f"fleetscope:gpu_ecc_double_bit_errors:increase{ATTENTION_WINDOW}"
GPU_LAST_XID = "fleetscope:gpu_last_xid:max"
GPU_ROW_REMAPS = "fleetscope:gpu_row_remap_pending_plus_failed:max"
NODE_GPU = f"{NODE}, gpu"


def unhealthy(selector: str, config: MonitoringConfig) -> str:
    """1 for every GPU (of the series `selector` picks) that is down, has a failed or pending row remap, a
    recovery action the driver asks for, or a hardware XID or double-bit ECC error in the last hour. An XID of
    the application's own (13, 31, 43, 45, ...) says nothing of the GPU's health: only the codes that page or
    open a ticket (gpu.xid_page, gpu.xid_ticket, from NVIDIA's catalog by default) count."""
    hardware_xids = f'xid=~"{regex(config.gpu.xid_page + config.gpu.xid_ticket)}"'
    return (f"({gpu.UP.select(selector)} == 0)\nor ({gpu.ROW_REMAP_FAILED.select(selector)} == 1)\n"
            f"or ({gpu.ROW_REMAP_PENDING.select(selector)} == 1)\n"
            f"or ({gpu.RECOVERY_ACTION.select(matchers(selector, RECOVERY_NEEDED))} == 1)\n"
            f"or (increase({gpu.XID_ERRORS.select(matchers(selector, hardware_xids))}[1h]) > 0)\n"
            f"or (increase({gpu.ECC_ERRORS.select(matchers(selector, DOUBLE_BIT))}[1h]) > 0)")


def _counted_in_window(counter: str) -> str:
    return f"sum by ({NODE_GPU}) (round(increase({counter}[{ATTENTION_WINDOW}]))) > 0"


def rule_groups(config: MonitoringConfig) -> list[dict]:
    e = config.selectors.exporter
    utilization = gpu.UTILIZATION.select(e)
    throttled = gpu.CLOCK_EVENT_ACTIVE.select(matchers(e, f'reason=~"{regex(THROTTLE_REASONS)}"'))

    nodes = [
        record(NODE_UTILIZATION, f"avg by ({NODE}) ({utilization})"),
        record(NODE_MEMORY_USED, f"sum by ({NODE}) ({gpu.MEMORY_USED.select(e)})"),
        record(NODE_MEMORY_TOTAL, f"sum by ({NODE}) ({gpu.MEMORY_TOTAL.select(e)})"),
        record(NODE_POWER, f"sum by ({NODE}) ({gpu.POWER.select(e)})"),
        record(NODE_TEMPERATURE, f"max by ({NODE}) ({gpu.TEMPERATURE.select(e)})"),
        extremes(NODE_LEAST_BUSY, NODE_UTILIZATION, TOP, lowest=True),
        extremes(NODE_FULLEST_MEMORY, f"{NODE_MEMORY_USED} / {NODE_MEMORY_TOTAL}", TOP),
        extremes(NODE_HOTTEST, NODE_TEMPERATURE, TOP),
    ]
    clusters = [
        record(CLUSTER_GPUS, f"sum by (cluster) ({GPU_COUNT})"),
        record(CLUSTER_NODES, f"count by (cluster) ({GPU_COUNT})"),
        record(CLUSTER_BUSY, f"count by (cluster) ({utilization} > {IDLE_UTILIZATION:g})"),
        record(CLUSTER_IDLE, f"count by (cluster) ({utilization} <= {IDLE_UTILIZATION:g})"),
        record(CLUSTER_THROTTLED, f"count by (cluster) (max by ({_PER_GPU}) ({throttled}) == 1)"),
        record(CLUSTER_UNHEALTHY, f"count by (cluster) (max by ({_PER_GPU}) (\n{unhealthy(e, config)}\n))"),
        record(CLUSTER_UTILIZATION, f"avg by (cluster) ({utilization})"),
        record(CLUSTER_MEMORY_USED, f"sum by (cluster) ({NODE_MEMORY_USED})"),
        record(CLUSTER_MEMORY_TOTAL, f"sum by (cluster) ({NODE_MEMORY_TOTAL})"),
        record(CLUSTER_POWER, f"sum by (cluster) ({NODE_POWER})"),
        record(CLUSTER_POWER_LIMIT, f"sum by (cluster) ({gpu.POWER_LIMIT.select(e)})"),
        record(CLUSTER_ENERGY, f"sum by (cluster) (rate({gpu.ENERGY.select(e)}[5m]))"),
        record(CLUSTER_THROTTLED_TIME,
               f"sum by (cluster, reason) (rate({gpu.CLOCK_EVENT_DURATION.select(e)}[5m]))"),
    ]
    # Every GPU's counts over a day are read here, once an interval, not by every refresh of every dashboard;
    # only the GPUs above zero are recorded.
    attention = [
        record(GPU_XIDS, _counted_in_window(gpu.XID_EVENTS.select(e))),
        record(GPU_DOUBLE_BIT_ECC, _counted_in_window(gpu.ECC_ERRORS.select(matchers(e, DOUBLE_BIT)))),
        record(GPU_LAST_XID, f"max by ({NODE_GPU}) ({gpu.LAST_XID.select(e)}) > 0"),
        record(GPU_ROW_REMAPS,
               f"max by ({NODE_GPU}) ({gpu.ROW_REMAP_PENDING.select(e)} + {gpu.ROW_REMAP_FAILED.select(e)}) > 0"),
    ]
    # One group, nodes first: the cluster sums read this evaluation's node records.
    return [{"name": "fleetscope-fleet-recording", "rules": nodes + clusters},
            {"name": "fleetscope-fleet-attention", "interval": config.gpu.attention_interval, "rules": attention}]
