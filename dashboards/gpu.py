"""Node / GPU detail: everything one node's GPUs report, GPU by GPU."""

from fleetscope.dashboards.build import (
    RATE,
    Query,
    Row,
    dashboard,
    datasource_variable,
    events_panel,
    label_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import GPU_FILTERS, NODE_FILTERS, TITLES, UIDS, links_except, m
from fleetscope.dashboards.fleet import XID_NAMES
from fleetscope.exporters.catalog import gpu, health
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.matchers import matchers

BY_GPU = "{{hostname}} GPU {{gpu}}"


def _per_gpu(title: str, description: str, unit: str, spec, gpus: str, **options):
    return timeseries_panel(title, description, unit, Query(m(spec, gpus), BY_GPU), **options)


def build(config: MonitoringConfig | None = None) -> dict:
    exporter = (config or MonitoringConfig()).selectors.exporter
    gpus = matchers(exporter, GPU_FILTERS)
    usage = Row("Utilization and memory", [
        _per_gpu("Utilization", "Share of time a kernel was running.", "percentunit", gpu.UTILIZATION, gpus,
                 min=0, max=1),
        _per_gpu("Memory bandwidth utilization", "Share of time memory was being read or written.", "percentunit",
                 gpu.MEMORY_COPY_UTILIZATION, gpus, min=0, max=1),
        _per_gpu("Memory used", "Framebuffer memory in use.", "bytes", gpu.MEMORY_USED, gpus, min=0),
        timeseries_panel("Memory used share", "Framebuffer memory in use over the GPU's total.", "percentunit",
                         Query(f"{m(gpu.MEMORY_USED, gpus)} / {m(gpu.MEMORY_TOTAL, gpus)}", BY_GPU), min=0, max=1),
    ])
    clocks = Row("Clocks, power and temperature", [
        timeseries_panel("SM clock against its maximum", "The SM clock; a clock well below its maximum under load "
                                                         "means throttling.", "hertz",
                         Query(m(gpu.SM_CLOCK, gpus), BY_GPU),
                         Query(f"max({m(gpu.SM_CLOCK_MAX, gpus)})", "maximum")),
        _per_gpu("Memory clock", "The memory clock.", "hertz", gpu.MEMORY_CLOCK, gpus),
        timeseries_panel("Power against the limit", "Power drawn, and the enforced power limit.", "watt",
                         Query(m(gpu.POWER, gpus), BY_GPU), Query(f"max({m(gpu.POWER_LIMIT, gpus)})", "limit")),
        timeseries_panel("Temperature against slowdown", "GPU temperature, and the temperature at which the GPU "
                                                         "slows itself down.", "celsius",
                         Query(m(gpu.TEMPERATURE, gpus), BY_GPU),
                         Query(f"min({m(gpu.SLOWDOWN_TEMPERATURE, gpus)})", "slowdown")),
        _per_gpu("Memory temperature", "HBM temperature.", "celsius", gpu.MEMORY_TEMPERATURE, gpus),
        _per_gpu("Performance state", "P-state: 0 is full performance, higher is slower.", "none",
                 gpu.PERFORMANCE_STATE, gpus),
    ])
    throttling = Row("Throttling", [
        timeseries_panel("Throttled time by reason", "Share of time the clocks were held down, by reason "
                                                     "(power cap, thermal, power brake, idle, ...).", "percentunit",
                         Query(f"rate({m(gpu.CLOCK_EVENT_DURATION, gpus)}[{RATE}])", BY_GPU + " {{reason}}"),
                         min=0),
        timeseries_panel("Active throttle reasons", "Reasons holding the clocks down right now (1 while active).",
                         "none", Query(m(gpu.CLOCK_EVENT_ACTIVE, gpus), BY_GPU + " {{reason}}"),
                         min=0, max=1),
    ])
    errors = Row("ECC, row remapping and XIDs", [
        events_panel("ECC errors", "ECC errors counted by the driver, by type; double-bit errors are "
                                   "uncorrectable.",
                     Query(f"round(increase({m(gpu.ECC_ERRORS, gpus)}[$__interval]))", BY_GPU + " {{type}}")),
        events_panel("Rows remapped", "Memory rows remapped, by the error that caused it.",
                     Query(f"round(increase({m(gpu.REMAPPED_ROWS, gpus)}[$__interval]))", BY_GPU + " {{error}}")),
        stat_panel("Row remap pending", "GPUs with a row remap waiting for a reset.", "none",
                   Query(f"sum({m(gpu.ROW_REMAP_PENDING, gpus)})"), thresholds=[(1, "orange")]),
        stat_panel("Row remap failed", "GPUs whose row remapping failed: replace the GPU.", "none",
                   Query(f"sum({m(gpu.ROW_REMAP_FAILED, gpus)})"), thresholds=[(1, "red")]),
        stat_panel("XID events, last hour", "XID events reported by the driver in the last hour.", "none",
                   Query(f"sum(round(increase({m(gpu.XID_EVENTS, gpus)}[1h])))"), thresholds=[(1, "red")],
                   decimals=0),
        stat_panel("PCIe replays, last hour", "PCIe packets replayed in the last hour: link errors.", "none",
                   Query(f"sum(round(increase({m(gpu.PCIE_REPLAYS, gpus)}[1h])))"), thresholds=[(1, "orange")],
                   decimals=0),
        table_panel("Latest XID per GPU", "Each GPU's XID events in the last day and the last XID code it "
                                          "reported, with what the code means.", "none",
                    Query(f"sum by (gpu) (round(increase({m(gpu.XID_EVENTS, gpus)}[24h])))", "XID events, 24h"),
                    Query(f"max by (gpu) ({m(gpu.LAST_XID, gpus)})", "latest XID"),
                    columns=["gpu"], mappings={"latest XID": XID_NAMES}, decimals=0, width=24, height=6),
    ])
    links = Row("PCIe and NVLink", [
        timeseries_panel("PCIe throughput", "Bytes per second over PCIe, transmitted (+) and received (-).",
                         "Bps", Query(f"rate({m(gpu.PCIE_TRANSMIT, gpus)}[{RATE}])", BY_GPU + " tx"),
                         Query(f"-rate({m(gpu.PCIE_RECEIVE, gpus)}[{RATE}])", BY_GPU + " rx")),
        timeseries_panel("NVLink throughput", "Bytes per second over all NVLinks of each GPU.", "Bps",
                         Query(f"sum by (hostname, gpu) (rate({m(gpu.NVLINK_TRANSMIT, gpus)}[{RATE}]))",
                               BY_GPU + " tx"),
                         Query(f"-sum by (hostname, gpu) (rate({m(gpu.NVLINK_RECEIVE, gpus)}[{RATE}]))",
                               BY_GPU + " rx")),
        timeseries_panel("NVLink errors", "NVLink errors per second, by type (CRC, replay, recovery).", "none",
                         Query(f"sum by (hostname, gpu, type) (rate({m(gpu.NVLINK_ERRORS, gpus)}[{RATE}]))",
                               BY_GPU + " {{type}}")),
        timeseries_panel("NVLinks down", "Links of each GPU that are not up.", "none",
                         Query(f"count by (hostname, gpu) ({m(gpu.NVLINK_UP, gpus)} == 0) or "
                               f"count by (hostname, gpu) ({m(gpu.NVLINK_UP, gpus)}) * 0", BY_GPU), min=0),
    ])
    processes = Row("Processes and jobs", [
        table_panel("Processes on the GPUs", "GPU memory used by each process, with its pod, pod UID or Slurm job "
                                             "where the exporter attributes it. Largest first.", "bytes",
                    Query(m(gpu.PROCESS_MEMORY, gpus), "memory used"),
                    columns=["gpu", "gpu_instance_id", "pid", "process_name", *gpu.JOB_LABELS], width=24),
        timeseries_panel("GPU utilization by process",
                         "Fraction of time a kernel of each process ran, from NVML's per-process samples: who uses "
                         "a GPU shared by time-slicing or MPS. Absent in MIG mode.", "percentunit",
                         Query(m(gpu.PROCESS_UTILIZATION, gpus), BY_GPU + " {{process_name}} ({{pid}})"),
                         min=0, width=24),
    ])
    verdicts = "0 ok, 1 degraded, 2 unfit"
    checks = Row("Health checks", [
        timeseries_panel("Health verdict", f"Each GPU's worst passive check ({verdicts}), as `fleetscope check` "
                                           "judges it; the next panel names the checks.", "none",
                         Query(f"max by (hostname, gpu) ({m(health.GPU_HEALTH, gpus)})", BY_GPU), min=0, max=2),
        timeseries_panel("Checks by state", f"Every check of the node and its GPUs ({verdicts}); a failing one "
                                            "is the reason in FleetscopeNodeUnfit and FleetscopeNodeDegraded.", "none",
                         Query(f"max by (hostname, check) ({m(health.GPU_HEALTH, gpus)})", "{{hostname}} {{check}}"),
                         Query(f"max by (hostname, check) ({m(health.NODE_HEALTH, matchers(exporter, NODE_FILTERS))})",
                               "{{hostname}} node {{check}}"), min=0, max=2),
    ])
    node = matchers(exporter, 'cluster=~"$cluster"')
    variables = [datasource_variable(), label_variable("cluster", "Cluster", gpu.UP.name, exporter),
                 label_variable("hostname", "Host", gpu.UP.name, node, one=True),  # a view of one node
                 label_variable("gpu", "GPU", gpu.UP.name, matchers(node, 'hostname=~"$hostname"'))]
    return dashboard(UIDS["gpu"], TITLES["gpu"],
                     "One node's GPUs in detail: utilization, memory, clocks, power, temperature, throttling, "
                     "ECC and row remapping, XIDs, PCIe and NVLink, the processes using them, and the health "
                     "checks' verdicts.",
                     variables, [usage, clocks, throttling, errors, links, processes, checks], links_except("gpu"))
