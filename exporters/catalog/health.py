"""Health verdicts: what the exporter's health collector (exporters/health/) serves, the passive checks of
`fleetscope check` run at each poll. A value per check: 0 ok, 1 degraded, 2 unfit; a check that could not be
judged is absent. The check label takes one of a fixed set of names (exporters/health/checks.py)."""

from fleetscope.catalog import MetricSpec
from fleetscope.exporters.catalog.gpu import GPU_LABELS

GPU_HEALTH = MetricSpec(
    "fleetscope_gpu_health_state", "gauge",
    "Verdict of one passive check of a GPU: 0 ok, 1 degraded, 2 unfit (nvml, ecc_mode, row_remap, pcie_link, "
    "nvlink, fabric, ...). XIDs are judged by the rules, from fleetscope_gpu_xid_errors_total.",
    GPU_LABELS + ("check",),
)
NODE_HEALTH = MetricSpec(
    "fleetscope_node_health_state", "gauge",
    "Verdict of one passive check of the node: 0 ok, 1 degraded, 2 unfit (nvml_library, gpu_count, driver_version, "
    "infiniband, nccl_env, memlock, clock_sync, ...).",
    ("hostname", "check"),
)
LAST_CHECK_TIME = MetricSpec(
    "fleetscope_node_check_last_run_timestamp_seconds", "gauge",
    "Unix time of the last `fleetscope check --record` on this node.", ("hostname",),
)
LAST_CHECK_STATE = MetricSpec(
    "fleetscope_node_check_last_state", "gauge",
    "Verdict of the last `fleetscope check --record` on this node: 0 healthy, 1 degraded, 2 unfit.", ("hostname",),
)

LAST_ACTIVE_CHECK_TIME = MetricSpec(
    "fleetscope_node_active_check_last_run_timestamp_seconds", "gauge",
    "Unix time of the last `fleetscope check --active --record` on this node (DCGM diagnostics, or the GEMM, "
    "host-to-device copy and all-reduce measurements).", ("hostname",),
)
LAST_ACTIVE_CHECK_STATE = MetricSpec(
    "fleetscope_node_active_check_last_state", "gauge",
    "Verdict of the active checks of the last `fleetscope check --active --record` on this node: 0 healthy, "
    "1 degraded, 2 unfit. Each active check's own verdict is served as fleetscope_gpu_health_state or "
    "fleetscope_node_health_state with check=\"active_...\".", ("hostname",),
)

METRICS = (GPU_HEALTH, NODE_HEALTH, LAST_CHECK_TIME, LAST_CHECK_STATE, LAST_ACTIVE_CHECK_TIME, LAST_ACTIVE_CHECK_STATE)
