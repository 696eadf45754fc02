"""dcgm-exporter's vocabulary: the DCGM_FI_* series `--compat.dcgm` renders from the GPU collector's
own readings, so that dashboards, autoscalers and alerts written for dcgm-exporter keep working.

Names, Prometheus types, units and HELP follow NVIDIA/dcgm-exporter's etc/default-counters.csv and
METRICS.md (main, 2026; `default=True` marks its default set); label names and values follow its
internal/pkg/collector/gpu_collector.go (`gpu`, `UUID`, `pci_bus_id`, `device="nvidiaN"`, `modelName`,
`Hostname`, `GPU_I_PROFILE`/`GPU_I_ID` on MIG instances, `err_code`/`err_msg` on XIDs) and the
`DCGM_FI_DRIVER_VERSION` label field of its default set. Where fleetscope reads a field dcgm-exporter
only offers as an option (ECC, retired pages, NVLink errors, violations, more profiling ratios), its
DCGM name is served too.

These are not fleetscope metrics and do not follow its naming rules (counters without `_total`,
MiB and MHz units, camelCase labels): they are a rendering, declared here so that what is served
and what the migration table of docs/reference/dcgm-exporter.md lists are one list.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetscope.catalog import MetricSpec
from fleetscope.exporters.catalog import gpu as m

GPU_LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION")
MIG_LABELS = ("GPU_I_PROFILE", "GPU_I_ID")
XID_LABELS = ("err_code", "err_msg")
# Native label -> dcgm-exporter label, for the labels both have.
RENAMED = {"gpu": "gpu", "uuid": "UUID", "pci_bus_id": "pci_bus_id", "model_name": "modelName",
           "hostname": "Hostname", "mig_profile": "GPU_I_PROFILE", "gpu_instance_id": "GPU_I_ID"}

MEBIBYTE = 1024.0 * 1024.0
MEGAHERTZ = 1e6
PERCENT = 100.0
MILLIJOULES_PER_JOULE = 1e3
# dcgm-exporter's HELP says microseconds up to 4.4.2-4.7.0 and nanoseconds from 4.4.2-4.7.1
# (etc/default-counters.csv; dcgm-exporter #589): DCGM passes on NVML's violation time, in nanoseconds.
NANOSECONDS_PER_SECOND = 1e9


@dataclass(frozen=True)
class DcgmField:
    """One DCGM field, rendered from the native series of `source` (those with the labels in `where`),
    multiplied by `scale`; several native series of one GPU (links, reasons) are summed."""

    name: str
    type: str  # as dcgm-exporter declares it: "gauge" or "counter"
    help: str
    source: MetricSpec
    scale: float = 1.0
    where: tuple[tuple[str, str], ...] = ()
    default: bool = False

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(name) == value for name, value in self.where)


def _field(name: str, type_: str, help_: str, source: MetricSpec, scale: float = 1.0, default: bool = False,
           **where: str) -> DcgmField:
    return DcgmField(name, type_, help_, source, scale, tuple(where.items()), default)


FIELDS: tuple[DcgmField, ...] = (
    # dcgm-exporter's default set
    _field("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", m.SM_CLOCK, 1 / MEGAHERTZ, True),
    _field("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", m.MEMORY_CLOCK, 1 / MEGAHERTZ, True),
    _field("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", m.MEMORY_TEMPERATURE, default=True),
    _field("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", m.TEMPERATURE, default=True),
    _field("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", m.POWER, default=True),
    _field("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
           m.ENERGY, MILLIJOULES_PER_JOULE, True),
    _field("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", m.PCIE_REPLAYS,
           default=True),
    _field("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", m.UTILIZATION, PERCENT, True),
    _field("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", m.MEMORY_COPY_UTILIZATION, PERCENT,
           True),
    _field("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", m.ENCODER_UTILIZATION, PERCENT, True),
    _field("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", m.DECODER_UTILIZATION, PERCENT, True),
    _field("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", m.MEMORY_FREE, 1 / MEBIBYTE, True),
    _field("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", m.MEMORY_USED, 1 / MEBIBYTE, True),
    _field("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).", m.MEMORY_RESERVED,
           1 / MEBIBYTE, True),
    _field("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors",
           m.REMAPPED_ROWS, default=True, error="uncorrectable"),
    _field("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors",
           m.REMAPPED_ROWS, default=True, error="correctable"),
    _field("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed", m.ROW_REMAP_FAILED,
           default=True),
    _field("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
           m.GRAPHICS_ENGINE_ACTIVE, default=True),
    _field("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.",
           m.TENSOR_ACTIVE, default=True),
    _field("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
           "Ratio of cycles the device memory interface is active sending or receiving data.", m.DRAM_ACTIVE,
           default=True),
    _field("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge",
           "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - "
           "in bytes per second.", m.PCIE_TRANSMIT_RATE, default=True),
    _field("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge",
           "The rate of data received over the PCIe bus - including both protocol headers and data payloads - "
           "in bytes per second.", m.PCIE_RECEIVE_RATE, default=True),
    # Fields dcgm-exporter offers as options, which fleetscope reads anyway. The violations are NVML's
    # NVML_FI_DEV_PERF_POLICY_* fields, which are the same field ids as the clock-event durations read.
    _field("DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB).", m.MEMORY_TOTAL, 1 / MEBIBYTE),
    _field("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Power management limit (in W).", m.POWER_LIMIT),
    _field("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.",
           m.ECC_ERRORS, type="single_bit"),
    _field("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.",
           m.ECC_ERRORS, type="double_bit"),
    _field("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "counter", "Total number of single-bit persistent ECC errors.",
           m.ECC_AGGREGATE_ERRORS, type="single_bit"),
    _field("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "counter", "Total number of double-bit persistent ECC errors.",
           m.ECC_AGGREGATE_ERRORS, type="double_bit"),
    _field("DCGM_FI_DEV_RETIRED_SBE", "counter", "Total number of retired pages due to single-bit errors.",
           m.RETIRED_PAGES, cause="single_bit"),
    _field("DCGM_FI_DEV_RETIRED_DBE", "counter", "Total number of retired pages due to double-bit errors.",
           m.RETIRED_PAGES, cause="double_bit"),
    _field("DCGM_FI_DEV_RETIRED_PENDING", "counter", "Total number of pages pending retirement.",
           m.RETIRED_PAGES_PENDING),
    _field("DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink data CRC errors.",
           m.NVLINK_ERRORS, type="crc"),
    _field("DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink retries.",
           m.NVLINK_ERRORS, type="replay"),
    _field("DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", "counter", "Total number of NVLink recovery errors.",
           m.NVLINK_ERRORS, type="recovery"),
    _field("DCGM_FI_DEV_POWER_VIOLATION", "counter", "Throttling duration due to power constraints (in ns).",
           m.CLOCK_EVENT_DURATION, NANOSECONDS_PER_SECOND, reason="sw_power_cap"),
    _field("DCGM_FI_DEV_SYNC_BOOST_VIOLATION", "counter",
           "Throttling duration due to sync-boost constraints (in ns).", m.CLOCK_EVENT_DURATION,
           NANOSECONDS_PER_SECOND, reason="sync_boost"),
    _field("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned.",
           m.SM_ACTIVE),
    _field("DCGM_FI_PROF_SM_OCCUPANCY", "gauge",
           "The ratio of number of warps resident on an SM to the maximum number of warps.", m.SM_OCCUPANCY),
    _field("DCGM_FI_PROF_PIPE_FP64_ACTIVE", "gauge", "Ratio of cycles the fp64 pipes are active.", m.FP64_ACTIVE),
    _field("DCGM_FI_PROF_PIPE_FP32_ACTIVE", "gauge", "Ratio of cycles the fp32 pipes are active.", m.FP32_ACTIVE),
    _field("DCGM_FI_PROF_PIPE_FP16_ACTIVE", "gauge", "Ratio of cycles the fp16 pipes are active.", m.FP16_ACTIVE),
)

# Rendered by the compat renderer itself, not from one native series each.
XID_ERRORS = DcgmField("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", m.LAST_XID,
                       default=True)
# dcgm-exporter types it a counter but DCGM serves a rate (dcgm-exporter #195, #472), so it is rendered as
# one: the NVLink data of every link, both ways, between two readings, as DCGM computes it
# (DcgmCacheManager::ReadAndCacheNvLinkBandwidth, dcgmlib/src/DcgmCacheManager.cpp, DCGM v4.6.0): NVML's
# NVLINK_THROUGHPUT_DATA_RX + _TX counters, in KiB, per second, divided by 1000 and truncated to an integer.
NVLINK_BANDWIDTH = DcgmField("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter",
                             "Total number of NVLink bandwidth counters for all lanes", m.NVLINK_TRANSMIT,
                             default=True)
ALL: tuple[DcgmField, ...] = FIELDS + (XID_ERRORS, NVLINK_BANDWIDTH)
# In dcgm-exporter's default set but not served: fleetscope does not read vGPU licensing.
NOT_SERVED = {"DCGM_FI_DEV_VGPU_LICENSE_STATUS": "vGPU licence status is not read (no vGPU support)"}

# err_msg: NVIDIA's name of the code (catalog/xids.py), "No Error" before the first.
NO_XID_MESSAGE = "No Error"
# DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL's unit: KiB/s over 1000 (DCGM's "Convert to KiB/sec -> MiB/sec").
NVLINK_BANDWIDTH_BYTES_PER_UNIT = 1024.0 * 1000.0
UNKNOWN_XID_MESSAGE = "Unknown Error"
