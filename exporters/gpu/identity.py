"""What is read once per GPU per NVML session: who it is and what it supports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pynvml

from fleetscope.exporters.gpu import nvml
from fleetscope.exporters.gpu.calls import Calls
from fleetscope.exporters.gpu.fields import DEVICE_FIELDS, LINK_COUNT_FIELD, FieldReading, nvlink_fields
from fleetscope.exporters.gpu.gpm import GpmSampler
from fleetscope.exporters.gpu.processes import UtilizationSampler

_ARCHITECTURES = {
    getattr(pynvml, name): name.removeprefix("NVML_DEVICE_ARCH_").lower()
    for name in dir(pynvml) if name.startswith("NVML_DEVICE_ARCH_")
}


@dataclass
class Device:
    index: int
    handle: Any
    labels: dict[str, str]
    architecture: str
    serial: str
    max_sm_clock_hertz: float | None
    slowdown_celsius: float | None
    shutdown_celsius: float | None
    supported_clock_events: int
    fan_count: int
    nvlink_count: int
    fields: tuple[FieldReading, ...]
    gpm: GpmSampler | None = field(default=None)
    # In MIG mode, one sampler per GPU instance (by its id), made as instances appear.
    mig_gpm: dict[int, GpmSampler] = field(default_factory=dict)
    process_utilization: UtilizationSampler = field(default_factory=UtilizationSampler)
    # How Kubernetes DRA names it: NVIDIA's DRA driver publishes each GPU as gpu-<minor number>; empty
    # where NVML gives no minor number.
    dra_name: str = ""

    @property
    def uuid(self) -> str:
        return self.labels["uuid"]


def identify(calls: Calls, index: int, hostname: str) -> Device:
    """Reads a GPU's identity and capabilities; raises DeviceLost if it cannot be named."""
    try:
        handle = calls.library.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError as error:
        if error.value in nvml.LIBRARY_FATAL:
            raise nvml.LibraryFailed("nvmlDeviceGetHandleByIndex", error) from None
        raise nvml.DeviceLost("nvmlDeviceGetHandleByIndex", error) from None
    uuid = calls("nvmlDeviceGetUUID", handle)
    if uuid is None:
        raise nvml.DeviceLost("nvmlDeviceGetUUID", pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN))
    pci = calls("nvmlDeviceGetPciInfo", handle)
    labels = {
        "gpu": str(index),
        "uuid": nvml.text(uuid),
        "pci_bus_id": nvml.text(pci.busId) if pci is not None else "",
        "model_name": nvml.text(calls("nvmlDeviceGetName", handle) or ""),
        "hostname": hostname,
    }
    architecture = calls("nvmlDeviceGetArchitecture", handle)
    link_count = _link_count(calls, handle)
    gpm_support = calls("nvmlGpmQueryDeviceSupport", handle)
    max_sm_clock = calls("nvmlDeviceGetMaxClockInfo", handle, pynvml.NVML_CLOCK_SM)
    minor = calls("nvmlDeviceGetMinorNumber", handle)
    return Device(
        index=index,
        handle=handle,
        labels=labels,
        architecture=_ARCHITECTURES.get(architecture, "unknown"),
        serial=nvml.text(calls("nvmlDeviceGetSerial", handle) or ""),
        max_sm_clock_hertz=max_sm_clock * 1e6 if max_sm_clock is not None else None,
        slowdown_celsius=calls("nvmlDeviceGetTemperatureThreshold", handle,
                               pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
        shutdown_celsius=calls("nvmlDeviceGetTemperatureThreshold", handle,
                               pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN),
        supported_clock_events=calls("nvmlDeviceGetSupportedClocksEventReasons", handle) or 0,
        fan_count=calls("nvmlDeviceGetNumFans", handle) or 0,
        nvlink_count=link_count,
        fields=DEVICE_FIELDS + nvlink_fields(link_count),
        gpm=GpmSampler() if gpm_support is not None and gpm_support.isSupportedDevice else None,
        dra_name=f"gpu-{minor}" if minor is not None else "",
    )


def _link_count(calls: Calls, handle: Any) -> int:
    values = calls("nvmlDeviceGetFieldValues", handle, [getattr(pynvml, LINK_COUNT_FIELD)])
    if values is None or not calls.succeeded("nvmlDeviceGetFieldValues", values[0].nvmlReturn):
        return 0
    return int(nvml.field_value(values[0]))
