"""GPU metrics, read from NVML. Units are base units; values NVML gives in other units
(MHz, mW, mJ, KiB, percent, nanoseconds) are converted where they are read.

Each GPU series carries GPU_LABELS; series of a MIG instance add MIG_LABELS; series of a GPU
(or MIG instance) held by a job add the JOB_LABELS that say whose it is.
"""

from fleetscope.catalog import MetricSpec

GPU_LABELS = ("gpu", "uuid", "pci_bus_id", "model_name", "hostname")
MIG_LABELS = ("gpu_instance_id", "compute_instance_id", "mig_profile")
POD_LABELS = ("namespace", "pod", "container")
# Who holds the GPU (exporters/attribution): a Kubernetes pod, its UID (--collector.gpu.pod-uid), a Slurm
# job, a DRA claim (dcgm-exporter's label names); a Ray worker's job, actor class, Serve deployment and replica.
DRA_LABELS = ("dra_claim_name", "dra_claim_namespace", "dra_driver_name", "dra_pool_name", "dra_device_name")
RAY_LABELS = ("ray_job", "ray_actor_class", "ray_serve_application", "ray_serve_deployment", "ray_serve_replica")
JOB_LABELS = POD_LABELS + ("pod_uid", "hpc_job") + DRA_LABELS + RAY_LABELS


def _gpu(name: str, type_: str, help_: str, *extra: str, mig: bool = False) -> MetricSpec:
    optional = (MIG_LABELS if mig else ()) + JOB_LABELS
    return MetricSpec(f"fleetscope_gpu_{name}", type_, help_, GPU_LABELS + extra, optional)


# Inventory and health
DRIVER_INFO = MetricSpec(
    "fleetscope_gpu_driver_info", "gauge", "NVIDIA driver, CUDA driver API and NVML versions on this node; always 1.",
    ("hostname", "driver_version", "cuda_driver_version", "nvml_version"),
)
INFO = _gpu("info", "gauge", "Static facts about a GPU; always 1.", "architecture", "serial")
UP = _gpu("up", "gauge", "Whether the GPU answered NVML at the last read (1) or is lost or failing (0). "
          "Other series of a GPU that is down are not served.")
LAST_UPDATE = _gpu("last_update_timestamp_seconds", "gauge", "Unix time of the last successful read of this GPU.")
NVML_ERRORS = MetricSpec(
    "fleetscope_gpu_nvml_errors_total", "counter",
    "NVML calls that failed with something other than 'not supported', by function and NVML error.",
    ("hostname", "function", "error"),
)

# Clocks
SM_CLOCK = _gpu("sm_clock_hertz", "gauge", "Current SM clock frequency in hertz (DCGM_FI_DEV_SM_CLOCK).")
SM_CLOCK_MAX = _gpu("sm_clock_max_hertz", "gauge", "Maximum SM clock frequency in hertz.")
MEMORY_CLOCK = _gpu("memory_clock_hertz", "gauge", "Current memory clock frequency in hertz (DCGM_FI_DEV_MEM_CLOCK).")

# Temperature
TEMPERATURE = _gpu("temperature_celsius", "gauge", "GPU die temperature in degrees Celsius (DCGM_FI_DEV_GPU_TEMP).")
MEMORY_TEMPERATURE = _gpu("memory_temperature_celsius", "gauge",
                          "HBM memory temperature in degrees Celsius (DCGM_FI_DEV_MEMORY_TEMP).")
SLOWDOWN_TEMPERATURE = _gpu("slowdown_temperature_celsius", "gauge",
                            "Temperature at which the GPU starts slowing its clocks, in degrees Celsius.")
SHUTDOWN_TEMPERATURE = _gpu("shutdown_temperature_celsius", "gauge",
                            "Temperature at which the GPU shuts down, in degrees Celsius.")

# Power and energy
POWER = _gpu("power_watts", "gauge", "Power draw of the board in watts (DCGM_FI_DEV_POWER_USAGE).")
POWER_LIMIT = _gpu("power_limit_watts", "gauge", "Power limit the driver enforces, in watts.")
ENERGY = _gpu("energy_joules_total", "counter",
              "Energy consumed since the driver was loaded, in joules (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION).")

# Utilization
UTILIZATION = _gpu("utilization_ratio", "gauge",
                   "Fraction of the last sample period in which a kernel ran (DCGM_FI_DEV_GPU_UTIL / 100).")
MEMORY_COPY_UTILIZATION = _gpu("memory_copy_utilization_ratio", "gauge",
                               "Fraction of the last sample period in which device memory was read or written "
                               "(DCGM_FI_DEV_MEM_COPY_UTIL / 100).")
ENCODER_UTILIZATION = _gpu("encoder_utilization_ratio", "gauge",
                           "Video encoder utilization (DCGM_FI_DEV_ENC_UTIL / 100).")
DECODER_UTILIZATION = _gpu("decoder_utilization_ratio", "gauge",
                           "Video decoder utilization (DCGM_FI_DEV_DEC_UTIL / 100).")
PERFORMANCE_STATE = _gpu("performance_state", "gauge",
                         "Current performance state, 0 (P0, fastest) to 15 (P15, slowest).")
FAN_SPEED = _gpu("fan_speed_ratio", "gauge",
                 "Fan speed as a fraction of its maximum; absent on passively cooled boards.", "fan")

# Framebuffer memory
MEMORY_TOTAL = _gpu("memory_total_bytes", "gauge", "Total framebuffer memory in bytes.", mig=True)
MEMORY_USED = _gpu("memory_used_bytes", "gauge", "Framebuffer memory in use, in bytes (DCGM_FI_DEV_FB_USED).", mig=True)
MEMORY_FREE = _gpu("memory_free_bytes", "gauge", "Framebuffer memory free, in bytes (DCGM_FI_DEV_FB_FREE).", mig=True)
MEMORY_RESERVED = _gpu("memory_reserved_bytes", "gauge",
                       "Framebuffer memory reserved by the driver and firmware, in bytes (DCGM_FI_DEV_FB_RESERVED).")

# PCIe
PCIE_REPLAYS = _gpu("pcie_replays_total", "counter", "PCIe replays (retries) (DCGM_FI_DEV_PCIE_REPLAY_COUNTER).")
PCIE_TRANSMIT = _gpu("pcie_transmit_bytes_total", "counter", "Bytes the GPU sent over PCIe.")
PCIE_RECEIVE = _gpu("pcie_receive_bytes_total", "counter", "Bytes the GPU received over PCIe.")
PCIE_TRANSMIT_RATE = _gpu("pcie_transmit_bytes_per_second", "gauge",
                          "PCIe transmit throughput over NVML's last 20 ms sample (DCGM_FI_PROF_PCIE_TX_BYTES).")
PCIE_RECEIVE_RATE = _gpu("pcie_receive_bytes_per_second", "gauge",
                         "PCIe receive throughput over NVML's last 20 ms sample (DCGM_FI_PROF_PCIE_RX_BYTES).")

# NVLink
NVLINK_UP = _gpu("nvlink_up", "gauge", "Whether an NVLink link is active (1) or not (0).", "link")
NVLINK_TRANSMIT = _gpu("nvlink_transmit_bytes_total", "counter", "Data bytes sent over an NVLink link.", "link")
NVLINK_RECEIVE = _gpu("nvlink_receive_bytes_total", "counter", "Data bytes received over an NVLink link.", "link")
NVLINK_ERRORS = _gpu("nvlink_errors_total", "counter",
                     "NVLink data-link errors by link and type (crc, replay, recovery).", "link", "type")

# Memory errors
ECC_ERRORS = _gpu("ecc_errors_total", "counter",
                  "ECC errors since the driver was loaded, by type (single_bit corrected, double_bit uncorrected).",
                  "type")
ECC_AGGREGATE_ERRORS = _gpu("ecc_aggregate_errors_total", "counter",
                            "ECC errors over the GPU's lifetime (persisted in the InfoROM), by type.", "type")
REMAPPED_ROWS = _gpu("remapped_rows_total", "counter",
                     "Memory rows remapped, by the error that caused it (correctable, uncorrectable) "
                     "(DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS, DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS).", "error")
ROW_REMAP_PENDING = _gpu("row_remap_pending", "gauge", "1 if a row remapping is pending and the GPU needs a reset.")
ROW_REMAP_FAILED = _gpu("row_remap_failed", "gauge", "1 if a row remapping failed (DCGM_FI_DEV_ROW_REMAP_FAILURE).")
RETIRED_PAGES = _gpu("retired_pages_total", "counter",
                     "Framebuffer pages retired, by cause (single_bit, double_bit); GPUs that remap rows instead "
                     "(A100 and newer) do not report it.", "cause")
RETIRED_PAGES_PENDING = _gpu("retired_pages_pending", "gauge",
                             "1 if a page retirement waits for the next driver reload.")

# Clock events (throttling)
CLOCK_EVENT_ACTIVE = _gpu("clock_event_active", "gauge",
                          "1 while this reason is holding the clocks down, for each reason the GPU reports.", "reason")
CLOCK_EVENT_DURATION = _gpu("clock_event_duration_seconds_total", "counter",
                            "Time the clocks were held down for this reason, in seconds "
                            "(DCGM_FI_DEV_POWER_VIOLATION, DCGM_FI_DEV_THERMAL_VIOLATION, ...).", "reason")

# XID errors, from NVML's event API
XID_ERRORS = _gpu("xid_errors_total", "counter", "XID errors the driver reported, by XID code.", "xid")
XID_EVENTS = _gpu("xid_events_total", "counter",
                  "XID errors of every code together; present from start-up at 0 so increase() sees the first one.")
LAST_XID = _gpu("last_xid", "gauge",
                "Code of the most recent XID error since the exporter started (DCGM_FI_DEV_XID_ERRORS).")
LAST_XID_TIME = _gpu("last_xid_timestamp_seconds", "gauge", "Unix time of the most recent XID error.")

# What the driver says the GPU needs (XID 154 announces a change; Hopper and newer, driver 570+)
RECOVERY_ACTION = _gpu("recovery_action_state", "gauge",
                       "1 for the recovery action the driver asks for now, 0 for the others: none, gpu_reset, "
                       "node_reboot, drain_p2p, drain_and_reset, recover_imex_domain, bus_reset, system_reboot.",
                       "action")

# Processes
PROCESS_MEMORY = _gpu("process_memory_used_bytes", "gauge",
                      "GPU memory used by a process, by pid and process name (at most 64 processes per GPU).",
                      "pid", "process_name", mig=True)
PROCESS_UTILIZATION = _gpu("process_utilization_ratio", "gauge",
                           "Fraction of the time since the last poll in which a kernel of this process ran on the "
                           "GPU, averaged over NVML's samples (at most 64 processes per GPU; absent in MIG mode).",
                           "pid", "process_name")

# MIG
MIG_MODE = _gpu("mig_mode_enabled", "gauge", "1 if the GPU is in MIG mode.")

# NVML GPM (Hopper and newer): the DCGM_FI_PROF_* profiling metrics, averaged over the poll interval; in MIG mode,
# per MIG GPU instance.
GRAPHICS_ENGINE_ACTIVE = _gpu("graphics_engine_active_ratio", "gauge",
                              "Fraction of time the graphics or compute engine was active "
                              "(DCGM_FI_PROF_GR_ENGINE_ACTIVE).", mig=True)
SM_ACTIVE = _gpu("sm_active_ratio", "gauge",
                 "Fraction of time at least one warp was resident on an SM, averaged over SMs "
                 "(DCGM_FI_PROF_SM_ACTIVE).", mig=True)
SM_OCCUPANCY = _gpu("sm_occupancy_ratio", "gauge",
                    "Resident warps as a fraction of the SMs' maximum, averaged over SMs "
                    "(DCGM_FI_PROF_SM_OCCUPANCY).", mig=True)
TENSOR_ACTIVE = _gpu("tensor_active_ratio", "gauge",
                     "Fraction of cycles any tensor pipe was active (DCGM_FI_PROF_PIPE_TENSOR_ACTIVE).", mig=True)
DRAM_ACTIVE = _gpu("dram_active_ratio", "gauge",
                   "Fraction of cycles the device memory interface was busy (DCGM_FI_PROF_DRAM_ACTIVE).", mig=True)
FP64_ACTIVE = _gpu("fp64_active_ratio", "gauge",
                   "Fraction of cycles the FP64 pipe was active (DCGM_FI_PROF_PIPE_FP64_ACTIVE).", mig=True)
FP32_ACTIVE = _gpu("fp32_active_ratio", "gauge",
                   "Fraction of cycles the FP32 pipe was active (DCGM_FI_PROF_PIPE_FP32_ACTIVE).", mig=True)
FP16_ACTIVE = _gpu("fp16_active_ratio", "gauge",
                   "Fraction of cycles the FP16 pipe was active (DCGM_FI_PROF_PIPE_FP16_ACTIVE).", mig=True)

METRICS = tuple(value for value in globals().values() if isinstance(value, MetricSpec))
