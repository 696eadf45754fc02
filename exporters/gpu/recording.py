"""The format of an NVML recording, as exporters/gpu/recorder.py writes it and the simulation's fake
NVML (simulation/nvml.py) replays it.

A recording (simulation/recordings/ holds one of a real H100 node): {"system": {function: value}, "devices": [device]},
where a device is {"values": {key: value}, "fields": {key: value}, "mig": [device]}. A key
is the function name, followed by "/ARG" for each argument after the handle, enum
arguments by their pynvml constant name (nvmlDeviceGetClockInfo/NVML_CLOCK_SM); field keys
are the field's constant name, "/SCOPE" for per-link fields. A value is what the call
returns (a mapping for a struct) or {"error": "NVML_ERROR_..."}; a key the recording
lacks answers NVML_ERROR_NOT_SUPPORTED, as the hardware would.
"""

from __future__ import annotations

import pynvml


def _constant_names(prefix: str) -> dict[int, str]:
    return {getattr(pynvml, n): n for n in dir(pynvml) if n.startswith(prefix) and isinstance(getattr(pynvml, n), int)}


_CLOCKS = {pynvml.NVML_CLOCK_SM: "NVML_CLOCK_SM", pynvml.NVML_CLOCK_MEM: "NVML_CLOCK_MEM",
           pynvml.NVML_CLOCK_GRAPHICS: "NVML_CLOCK_GRAPHICS", pynvml.NVML_CLOCK_VIDEO: "NVML_CLOCK_VIDEO"}
# How recording keys name enum arguments: by their pynvml constant, per function.
ARGUMENT_NAMES: dict[str, dict[int, str]] = {
    "nvmlDeviceGetClockInfo": _CLOCKS,
    "nvmlDeviceGetMaxClockInfo": _CLOCKS,
    "nvmlDeviceGetTemperatureThreshold": _constant_names("NVML_TEMPERATURE_THRESHOLD_"),
    "nvmlDeviceGetTemperature": {pynvml.NVML_TEMPERATURE_GPU: "NVML_TEMPERATURE_GPU"},
    "nvmlDeviceGetPcieThroughput": {pynvml.NVML_PCIE_UTIL_TX_BYTES: "NVML_PCIE_UTIL_TX_BYTES",
                                    pynvml.NVML_PCIE_UTIL_RX_BYTES: "NVML_PCIE_UTIL_RX_BYTES"},
}
GPM_METRIC_NAMES = _constant_names("NVML_GPM_METRIC_")


def recording_key(function: str, args: tuple) -> str:
    """'nvmlDeviceGetClockInfo/NVML_CLOCK_SM' for nvmlDeviceGetClockInfo(handle, NVML_CLOCK_SM)."""
    names = ARGUMENT_NAMES.get(function, {})
    return "/".join([function, *(names.get(arg, str(arg)) for arg in args)])


# Every pynvml name of each field id, for recording keys. Some ids have several
# (NVML_FI_DEV_PERF_POLICY_POWER is NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP).
FIELD_NAMES: dict[int, list[str]] = {}
for _name in dir(pynvml):
    if _name.startswith("NVML_FI_DEV_") and isinstance(getattr(pynvml, _name), int):
        FIELD_NAMES.setdefault(getattr(pynvml, _name), []).append(_name)
