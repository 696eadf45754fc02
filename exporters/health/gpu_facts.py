"""What the checks read from NVML, through the same library object and call wrapper the GPU collector uses
(pynvml on a node, the simulation's stand-in under --simulate): one pass over every GPU, cheap calls only."""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass, field
from typing import Any

import pynvml

from fleetscope.exporters.gpu import mig, nvml
from fleetscope.exporters.gpu.calls import Calls, ErrorCounter
from fleetscope.exporters.gpu.identity import identify

# The fields read in one batched nvmlDeviceGetFieldValues call, by the name GpuFacts.counters keeps them under.
COUNTER_FIELDS = {
    "ecc_dbe_volatile": "NVML_FI_DEV_ECC_DBE_VOL_TOTAL",
    "retired_sbe": "NVML_FI_DEV_RETIRED_SBE",
    "retired_dbe": "NVML_FI_DEV_RETIRED_DBE",
    "retired_pending": "NVML_FI_DEV_RETIRED_PENDING",
    "remap_pending": "NVML_FI_DEV_REMAPPED_PENDING",
    "remap_failed": "NVML_FI_DEV_REMAPPED_FAILURE",
}


@dataclass
class GpuFacts:
    index: int
    labels: dict[str, str] = field(default_factory=dict)  # gpu, uuid, pci_bus_id, model_name, hostname
    error: str = ""  # why the GPU could not be read; empty when it was
    counters: dict[str, float] = field(default_factory=dict)  # COUNTER_FIELDS that the GPU reports
    ecc_enabled: bool | None = None
    clock_reasons: int | None = None
    temperature: float | None = None
    slowdown_temperature: float | None = None
    power_limit_watts: float | None = None
    default_power_limit_watts: float | None = None
    pcie_generation: int | None = None
    pcie_generation_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    nvlink_up: dict[int, bool] = field(default_factory=dict)
    fabric_state: int | None = None  # NVML_GPU_FABRIC_STATE_*; None where NVML does not report it
    fabric_status: int | None = None  # an NVML return code: why registration failed
    persistence_mode: bool | None = None
    mig_enabled: bool | None = None
    mig_profiles: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.labels.get("model_name", "")

    @property
    def pci_bus_id(self) -> str:
        return self.labels.get("pci_bus_id", "")


@dataclass
class NodeGpuFacts:
    error: str = ""  # why NVML could not be used at all; empty when it could
    driver_version: str = ""
    cuda_version: str = ""
    gpus: list[GpuFacts] = field(default_factory=list)


class GpuReader:
    """Reads every GPU's facts in one NVML session, kept open between reads (start it again after a failure)."""

    def __init__(self, library: Any, hostname: str):
        self._library = library
        self._hostname = hostname
        self._calls = Calls(library, ErrorCounter())
        self._started = False

    def read(self) -> NodeGpuFacts:
        try:
            if not self._started:
                self._library.nvmlInit()
                self._started = True
            return self._read()
        except nvml.NVMLError as error:
            self.close()
            return NodeGpuFacts(error=f"nvmlInit: {nvml.error_name(error)}")
        except nvml.LibraryFailed as failure:
            self.close()
            return NodeGpuFacts(error=str(failure))

    def close(self) -> None:
        if self._started:
            with contextlib.suppress(nvml.NVMLError):
                self._library.nvmlShutdown()
        self._started = False

    def _read(self) -> NodeGpuFacts:
        calls = self._calls
        cuda = calls("nvmlSystemGetCudaDriverVersion")
        facts = NodeGpuFacts(driver_version=nvml.text(calls("nvmlSystemGetDriverVersion") or ""),
                             cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else "")
        for index in range(calls("nvmlDeviceGetCount") or 0):
            gpu = GpuFacts(index, {"gpu": str(index), "hostname": self._hostname})
            try:
                _read_gpu(calls, index, self._hostname, gpu)
            except nvml.DeviceLost as lost:
                gpu.error = str(lost)
            facts.gpus.append(gpu)
        return facts


def _read_gpu(calls: Calls, index: int, hostname: str, gpu: GpuFacts) -> None:
    device = identify(calls, index, hostname)
    handle = device.handle
    gpu.labels = dict(device.labels)
    gpu.slowdown_temperature = device.slowdown_celsius
    ids = [getattr(pynvml, name) for name in COUNTER_FIELDS.values()]
    values = calls("nvmlDeviceGetFieldValues", handle, ids)
    for key, value in zip(COUNTER_FIELDS, values or (), strict=False):
        if calls.succeeded("nvmlDeviceGetFieldValues", value.nvmlReturn):
            gpu.counters[key] = nvml.field_value(value)
    ecc = calls("nvmlDeviceGetEccMode", handle)
    gpu.ecc_enabled = None if ecc is None else ecc[0] == pynvml.NVML_FEATURE_ENABLED
    gpu.clock_reasons = calls("nvmlDeviceGetCurrentClocksEventReasons", handle)
    gpu.temperature = calls("nvmlDeviceGetTemperature", handle, pynvml.NVML_TEMPERATURE_GPU)
    gpu.power_limit_watts = _watts(calls("nvmlDeviceGetEnforcedPowerLimit", handle))
    gpu.default_power_limit_watts = _watts(calls("nvmlDeviceGetPowerManagementDefaultLimit", handle))
    gpu.pcie_generation = calls("nvmlDeviceGetCurrPcieLinkGeneration", handle)
    gpu.pcie_generation_max = calls("nvmlDeviceGetGpuMaxPcieLinkGeneration", handle)
    gpu.pcie_width = calls("nvmlDeviceGetCurrPcieLinkWidth", handle)
    gpu.pcie_width_max = calls("nvmlDeviceGetMaxPcieLinkWidth", handle)
    for link in range(device.nvlink_count):
        state = calls("nvmlDeviceGetNvLinkState", handle, link)
        if state is not None:
            gpu.nvlink_up[link] = state == pynvml.NVML_FEATURE_ENABLED
    _fabric(calls, handle, gpu)
    persistence = calls("nvmlDeviceGetPersistenceMode", handle)
    gpu.persistence_mode = None if persistence is None else persistence == pynvml.NVML_FEATURE_ENABLED
    mig_mode = calls("nvmlDeviceGetMigMode", handle)
    if mig_mode is not None:
        gpu.mig_enabled = mig_mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE
        if gpu.mig_enabled:
            gpu.mig_profiles = tuple(sorted(instance.profile for instance in mig.instances(calls, handle)))


def _fabric(calls: Calls, handle: Any, gpu: GpuFacts) -> None:
    """GPU fabric registration (NVSwitch systems, driver 530 and newer); absent where pynvml or the GPU lacks it."""
    if not hasattr(calls.library, "nvmlDeviceGetGpuFabricInfo"):
        return
    info = pynvml.c_nvmlGpuFabricInfo_t()
    if calls("nvmlDeviceGetGpuFabricInfo", handle, ctypes.byref(info)) is None:
        return
    if info.state == pynvml.NVML_GPU_FABRIC_STATE_NOT_SUPPORTED:
        return
    gpu.fabric_state, gpu.fabric_status = int(info.state), int(info.status)


def _watts(milliwatts: float | None) -> float | None:
    return None if milliwatts is None else milliwatts / 1000
