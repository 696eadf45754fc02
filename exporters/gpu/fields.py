"""The values read in one batched nvmlDeviceGetFieldValues call per GPU per poll.

Each entry names the NVML field, the metric it feeds, the extra labels it adds and the
factor that turns NVML's unit into the metric's base unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pynvml

from fleetscope.catalog import MetricSpec
from fleetscope.exporters.catalog import gpu as m

NANOSECONDS = 1e-9
MILLIJOULES = 1e-3
KIBIBYTES = 1024.0


@dataclass(frozen=True)
class FieldReading:
    field_name: str
    spec: MetricSpec
    labels: dict[str, str] = field(default_factory=dict)
    scale: float = 1.0
    scope: int = 0
    # For a field whose value is one of several states: a series per state, 1 for the one it is.
    states: tuple[tuple[int, dict[str, str]], ...] = ()

    @property
    def field_id(self) -> int:
        return getattr(pynvml, self.field_name)


# NVML's recovery actions (nvmlDeviceGpuRecoveryAction_t), by the label value each is served as.
RECOVERY_ACTIONS = tuple(
    (getattr(pynvml, f"NVML_GPU_RECOVERY_ACTION_{name.upper()}"), {"action": name})
    for name in ("none", "gpu_reset", "node_reboot", "drain_p2p", "drain_and_reset", "recover_imex_domain",
                 "bus_reset", "system_reboot"))

DEVICE_FIELDS: tuple[FieldReading, ...] = (
    FieldReading("NVML_FI_DEV_MEMORY_TEMP", m.MEMORY_TEMPERATURE),
    FieldReading("NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION", m.ENERGY, scale=MILLIJOULES),
    FieldReading("NVML_FI_DEV_PCIE_REPLAY_COUNTER", m.PCIE_REPLAYS),
    FieldReading("NVML_FI_DEV_PCIE_COUNT_TX_BYTES", m.PCIE_TRANSMIT),
    FieldReading("NVML_FI_DEV_PCIE_COUNT_RX_BYTES", m.PCIE_RECEIVE),
    FieldReading("NVML_FI_DEV_ECC_SBE_VOL_TOTAL", m.ECC_ERRORS, {"type": "single_bit"}),
    FieldReading("NVML_FI_DEV_ECC_DBE_VOL_TOTAL", m.ECC_ERRORS, {"type": "double_bit"}),
    FieldReading("NVML_FI_DEV_ECC_SBE_AGG_TOTAL", m.ECC_AGGREGATE_ERRORS, {"type": "single_bit"}),
    FieldReading("NVML_FI_DEV_ECC_DBE_AGG_TOTAL", m.ECC_AGGREGATE_ERRORS, {"type": "double_bit"}),
    FieldReading("NVML_FI_DEV_RETIRED_SBE", m.RETIRED_PAGES, {"cause": "single_bit"}),
    FieldReading("NVML_FI_DEV_RETIRED_DBE", m.RETIRED_PAGES, {"cause": "double_bit"}),
    FieldReading("NVML_FI_DEV_RETIRED_PENDING", m.RETIRED_PAGES_PENDING),
    FieldReading("NVML_FI_DEV_REMAPPED_COR", m.REMAPPED_ROWS, {"error": "correctable"}),
    FieldReading("NVML_FI_DEV_REMAPPED_UNC", m.REMAPPED_ROWS, {"error": "uncorrectable"}),
    FieldReading("NVML_FI_DEV_REMAPPED_PENDING", m.ROW_REMAP_PENDING),
    FieldReading("NVML_FI_DEV_REMAPPED_FAILURE", m.ROW_REMAP_FAILED),
    FieldReading("NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP", m.CLOCK_EVENT_DURATION,
                 {"reason": "sw_power_cap"}, NANOSECONDS),
    FieldReading("NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST", m.CLOCK_EVENT_DURATION,
                 {"reason": "sync_boost"}, NANOSECONDS),
    FieldReading("NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_THERM_SLOWDOWN", m.CLOCK_EVENT_DURATION,
                 {"reason": "sw_thermal_slowdown"}, NANOSECONDS),
    FieldReading("NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_THERM_SLOWDOWN", m.CLOCK_EVENT_DURATION,
                 {"reason": "hw_thermal_slowdown"}, NANOSECONDS),
    FieldReading("NVML_FI_DEV_CLOCKS_EVENT_REASON_HW_POWER_BRAKE_SLOWDOWN", m.CLOCK_EVENT_DURATION,
                 {"reason": "hw_power_brake_slowdown"}, NANOSECONDS),
    FieldReading("NVML_FI_DEV_GET_GPU_RECOVERY_ACTION", m.RECOVERY_ACTION, states=RECOVERY_ACTIONS),
)

# The link count is read once per GPU, with its identity.
LINK_COUNT_FIELD = "NVML_FI_DEV_NVLINK_LINK_COUNT"


def nvlink_fields(link_count: int) -> tuple[FieldReading, ...]:
    """Per-link NVLink counters; the field's scope is the link number."""
    readings = []
    for link in range(link_count):
        labels = {"link": str(link)}
        readings += [
            FieldReading("NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX", m.NVLINK_TRANSMIT, labels, KIBIBYTES, link),
            FieldReading("NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX", m.NVLINK_RECEIVE, labels, KIBIBYTES, link),
            FieldReading("NVML_FI_DEV_NVLINK_ERROR_DL_CRC", m.NVLINK_ERRORS, {**labels, "type": "crc"}, 1.0, link),
            FieldReading("NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY", m.NVLINK_ERRORS, {**labels, "type": "replay"}, 1.0,
                         link),
            FieldReading("NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY", m.NVLINK_ERRORS,
                         {**labels, "type": "recovery"}, 1.0, link),
        ]
    return tuple(readings)
