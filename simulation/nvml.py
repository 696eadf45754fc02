"""A fake of pynvml's surface, replaying a recording of a real node.

Tests and --simulate substitute it for pynvml at the collector's boundary. Handles, field
values and GPM requests are pynvml's own ctypes types; failures are pynvml.NVMLError with
the codes real NVML returns, and can be injected per function, per GPU or for the library.

It replays the format of exporters/gpu/recording.py, which exporters/gpu/recorder.py writes.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from types import SimpleNamespace
from typing import Any

import pynvml

from fleetscope.exporters.gpu import nvml
from fleetscope.exporters.gpu.recording import FIELD_NAMES, GPM_METRIC_NAMES, recording_key

H100_RECORDING = "h100-sxm5-80gb.json"


def load_recording(name: str = H100_RECORDING) -> dict:
    return json.loads(resources.files("fleetscope.simulation").joinpath("recordings", name).read_text())


def _error(name: str) -> nvml.NVMLError:
    return pynvml.NVMLError(nvml.error_code(name))


@dataclass(frozen=True)
class FakeMig:
    """A MIG instance to create with FakeNvml.enable_mig."""

    uuid: str
    gpu_instance_id: int
    profile: str
    memory_total: int
    memory_used: int = 0
    compute_instance_id: int = 0
    # Fraction of time the instance's graphics engine is busy, as GPM reports it; None where GPM has nothing.
    activity: float | None = None

    def recorded(self, model_name: str) -> dict:
        values = {
            "nvmlDeviceGetUUID": self.uuid,
            "nvmlDeviceGetGpuInstanceId": self.gpu_instance_id,
            "nvmlDeviceGetComputeInstanceId": self.compute_instance_id,
            "nvmlDeviceGetName": f"{model_name} MIG {self.profile}",
            "nvmlDeviceGetMemoryInfo": {"total": self.memory_total, "used": self.memory_used,
                                        "free": self.memory_total - self.memory_used, "reserved": 0},
        }
        if self.activity is not None:
            for metric, share in (("GRAPHICS_UTIL", 1.0), ("SM_UTIL", 0.9), ("ANY_TENSOR_UTIL", 0.6)):
                values[f"nvmlGpmMetricsGet/NVML_GPM_METRIC_{metric}"] = round(self.activity * share * 100, 2)
        return {"values": values}


class FakeDevice:
    """One GPU or MIG instance of the recording; its values may be changed while running."""

    def __init__(self, index: int, recorded: dict, parent: FakeDevice | None = None):
        self.index = index
        self.parent = parent
        self.values: dict[str, Any] = dict(recorded.get("values", {}))
        self.fields: dict[str, Any] = dict(recorded.get("fields", {}))
        self.mig = [FakeDevice(i, m, parent=self) for i, m in enumerate(recorded.get("mig", []))]
        self.handle = pynvml.c_nvmlDevice_t(pynvml.struct_c_nvmlDevice_t())
        self.lost = False
        self.animated_at = 0.0
        self.state: dict[str, Any] = {}  # for the simulation's own bookkeeping
        # Values and fields a fault holds (FakeNvml.inject_fault), laid over whatever the simulation writes.
        self.pinned_values: dict[str, Any] = {}
        self.pinned_fields: dict[str, Any] = {}

    @property
    def root(self) -> FakeDevice:
        return self.parent or self


class FakeNvml:
    """Answers the pynvml functions the collector calls; other attributes are pynvml's."""

    def __init__(self, recording: dict | None = None, animate: Callable[[FakeDevice, float], None] | None = None):
        recording = copy.deepcopy(recording if recording is not None else load_recording())
        self.system: dict[str, Any] = recording.get("system", {})
        self.devices = [FakeDevice(i, d) for i, d in enumerate(recording["devices"])]
        self._by_handle = {nvml.handle_key(d.handle): d for d in self._all_devices()}
        self._animate = animate
        self._lock = threading.Lock()
        self._initialised = 0
        self._failures: dict[tuple[str, int | None], str] = {}
        self._init_error: str | None = None
        self._events: queue.Queue = queue.Queue()
        self._registered: set[int] = set()
        self._gpm_samples: dict[int, tuple[FakeDevice, float]] = {}
        self.calls: Counter[str] = Counter()
        # Time each call takes, to model a real driver in benchmarks: a default and per function.
        self.latency_seconds = 0.0
        self.latency_by_function: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("nvml") and name[4:5].isupper() and callable(getattr(pynvml, name, None)):
            raise AttributeError(f"FakeNvml does not implement {name}; add it, with its recorded values")
        return getattr(pynvml, name)

    # ---- injecting what real NVML does -------------------------------------------------

    def fail(self, function: str, error: str, gpu: int | None = None) -> None:
        """Every call of `function` (on GPU `gpu`, or on any) raises `error` until cleared."""
        nvml.error_code(error)
        self._failures[(function, gpu)] = error

    def clear_failures(self) -> None:
        self._failures.clear()
        self._init_error = None

    def remove_library(self, error: str = "NVML_ERROR_LIBRARY_NOT_FOUND") -> None:
        """nvmlInit fails as it does on a machine without a driver (or with a broken one)."""
        self._init_error = error

    def lose_gpu(self, gpu: int) -> None:
        """The GPU falls off the bus: every call on it answers NVML_ERROR_GPU_IS_LOST, and its
        registration for events is gone (a GPU that returns must be registered again)."""
        self.devices[gpu].lost = True
        self._registered.discard(nvml.handle_key(self.devices[gpu].handle))

    def restore_gpu(self, gpu: int) -> None:
        self.devices[gpu].lost = False

    def enable_mig(self, gpu: int, instances: Iterable[FakeMig]) -> None:
        """Puts a GPU in MIG mode with these instances, as nvidia-smi mig would."""
        device = self.devices[gpu]
        device.values["nvmlDeviceGetMigMode"] = [pynvml.NVML_DEVICE_MIG_ENABLE] * 2
        model = device.values.get("nvmlDeviceGetName", "")
        device.mig = [FakeDevice(i, m.recorded(model), parent=device) for i, m in enumerate(instances)]
        self._by_handle.update({nvml.handle_key(d.handle): d for d in device.mig})

    def inject_fault(self, fault: str, gpu: int) -> None:
        """Puts GPU `gpu` in one of the failing states of FAULTS, held until clear_fault (a simulation's
        animation does not undo it)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known are {', '.join(FAULTS)}")
        device = self.devices[gpu]
        if fault == "gpu-lost":
            self.lose_gpu(gpu)
            return
        values, fields = FAULTS[fault](device)
        device.pinned_values.update(values)
        device.pinned_fields.update(fields)
        device.values.update(values)
        device.fields.update(fields)

    def clear_fault(self, gpu: int) -> None:
        """Stops holding the GPU's faulted values; the recording's or the simulation's come back at its next write."""
        device = self.devices[gpu]
        device.pinned_values.clear()
        device.pinned_fields.clear()
        self.restore_gpu(gpu)

    def inject_xid(self, gpu: int, xid: int, mig_instance: int | None = None) -> None:
        device = self.devices[gpu]
        if nvml.handle_key(device.handle) not in self._registered:
            return  # nobody listens: the event is dropped, as NVML drops it
        gi = ci = 0xFFFFFFFF
        if mig_instance is not None:
            instance = device.mig[mig_instance]
            gi, ci = instance.values["nvmlDeviceGetGpuInstanceId"], instance.values["nvmlDeviceGetComputeInstanceId"]
        self._events.put(SimpleNamespace(device=device.handle, eventType=pynvml.nvmlEventTypeXidCriticalError,
                                         eventData=xid, gpuInstanceId=gi, computeInstanceId=ci))

    # ---- plumbing ----------------------------------------------------------------------

    def _all_devices(self):
        for device in self.devices:
            yield device
            yield from device.mig

    def _enter(self, function: str, device: FakeDevice | None = None) -> None:
        self.calls[function] += 1
        delay = self.latency_by_function.get(function, self.latency_seconds)
        if delay:
            time.sleep(delay)
        if function != "nvmlInit" and not self._initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        for gpu in (None, device.root.index if device else None):
            error = self._failures.get((function, gpu))
            if error is not None:
                raise _error(error)
        if device is not None and device.root.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    def _device(self, function: str, handle: Any) -> FakeDevice:
        device = self._by_handle.get(nvml.handle_key(handle))
        if device is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._enter(function, device)
        if self._animate is not None:
            now = time.time()
            root = device.root
            with self._lock:
                if now - root.animated_at >= 0.2:
                    root.animated_at = now
                    self._animate(root, now)
                    root.values.update(root.pinned_values)
                    root.fields.update(root.pinned_fields)
        return device

    def _value(self, function: str, handle: Any, *args: Any) -> Any:
        device = self._device(function, handle)
        return _recorded(device.values, recording_key(function, args))

    def _system(self, function: str) -> Any:
        self._enter(function)
        return _recorded(self.system, function)

    # ---- library and system ------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self._init_error:
            raise _error(self._init_error)
        self._initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self._initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self._system("nvmlSystemGetDriverVersion")

    def nvmlSystemGetNVMLVersion(self) -> str:
        return self._system("nvmlSystemGetNVMLVersion")

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self._system("nvmlSystemGetCudaDriverVersion")

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.devices):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        error = self._failures.get(("nvmlDeviceGetHandleByIndex", index))
        if error:
            raise _error(error)
        return self.devices[index].handle

    # ---- identity ----------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle):
        return self._value("nvmlDeviceGetUUID", handle)

    def nvmlDeviceGetName(self, handle):
        return self._value("nvmlDeviceGetName", handle)

    def nvmlDeviceGetSerial(self, handle):
        return self._value("nvmlDeviceGetSerial", handle)

    def nvmlDeviceGetPciInfo(self, handle):
        return _struct(self._value("nvmlDeviceGetPciInfo", handle))

    def nvmlDeviceGetArchitecture(self, handle):
        return self._value("nvmlDeviceGetArchitecture", handle)

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return self._value("nvmlDeviceGetMaxClockInfo", handle, clock)

    def nvmlDeviceGetTemperatureThreshold(self, handle, threshold):
        return self._value("nvmlDeviceGetTemperatureThreshold", handle, threshold)

    def nvmlDeviceGetSupportedClocksEventReasons(self, handle):
        return self._value("nvmlDeviceGetSupportedClocksEventReasons", handle)

    def nvmlDeviceGetNumFans(self, handle):
        return self._value("nvmlDeviceGetNumFans", handle)

    def nvmlGpmQueryDeviceSupport(self, handle):
        return _struct(self._value("nvmlGpmQueryDeviceSupport", handle))

    # ---- readings ----------------------------------------------------------------------

    def nvmlDeviceGetFieldValues(self, handle, field_ids):
        device = self._device("nvmlDeviceGetFieldValues", handle)
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for slot, requested in zip(values, field_ids, strict=True):
            field_id, scope = requested if isinstance(requested, tuple) else (requested, 0)
            slot.fieldId, slot.scopeId, slot.timestamp = field_id, scope, int(time.time() * 1e6)
            recorded = _recorded_field(device.fields, field_id, scope)
            if recorded is None:
                slot.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            elif isinstance(recorded, dict):
                slot.nvmlReturn = nvml.error_code(recorded["error"])
            elif isinstance(recorded, float):
                slot.nvmlReturn, slot.valueType, slot.value.dVal = 0, pynvml.NVML_VALUE_TYPE_DOUBLE, recorded
            else:
                slot.nvmlReturn, slot.valueType = 0, pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
                slot.value.ullVal = int(recorded)
        return values

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return self._value("nvmlDeviceGetClockInfo", handle, clock)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return self._value("nvmlDeviceGetTemperature", handle, sensor)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._value("nvmlDeviceGetPowerUsage", handle)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return self._value("nvmlDeviceGetEnforcedPowerLimit", handle)

    def nvmlDeviceGetPcieThroughput(self, handle, counter):
        return self._value("nvmlDeviceGetPcieThroughput", handle, counter)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return _struct(self._value("nvmlDeviceGetUtilizationRates", handle))

    def nvmlDeviceGetEncoderUtilization(self, handle):
        return list(self._value("nvmlDeviceGetEncoderUtilization", handle))

    def nvmlDeviceGetDecoderUtilization(self, handle):
        return list(self._value("nvmlDeviceGetDecoderUtilization", handle))

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        return _struct(self._value("nvmlDeviceGetMemoryInfo", handle))

    def nvmlDeviceGetPerformanceState(self, handle):
        return self._value("nvmlDeviceGetPerformanceState", handle)

    def nvmlDeviceGetFanSpeed_v2(self, handle, fan):
        return self._value("nvmlDeviceGetFanSpeed_v2", handle, fan)

    def nvmlDeviceGetNvLinkState(self, handle, link):
        return self._value("nvmlDeviceGetNvLinkState", handle, link)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._value("nvmlDeviceGetCurrentClocksEventReasons", handle)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [_struct(p) for p in self._value("nvmlDeviceGetComputeRunningProcesses", handle)]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return [_struct(p) for p in self._value("nvmlDeviceGetGraphicsRunningProcesses", handle)]

    def nvmlDeviceGetProcessUtilization(self, handle, last_seen_microseconds):
        """The recorded samples, as if taken since last_seen_microseconds; NVML_ERROR_NOT_FOUND if there are none."""
        device = self._device("nvmlDeviceGetProcessUtilization", handle)
        samples = _recorded(device.values, "nvmlDeviceGetProcessUtilization")
        if not samples:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return [_struct(s) for s in samples]

    def nvmlDeviceGetMinorNumber(self, handle):
        return self._value("nvmlDeviceGetMinorNumber", handle)

    # ---- configuration and links, as fleetscope check reads them -------------------------

    def nvmlDeviceGetEccMode(self, handle):
        return list(self._value("nvmlDeviceGetEccMode", handle))

    def nvmlDeviceGetPersistenceMode(self, handle):
        return self._value("nvmlDeviceGetPersistenceMode", handle)

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle):
        return self._value("nvmlDeviceGetCurrPcieLinkGeneration", handle)

    def nvmlDeviceGetGpuMaxPcieLinkGeneration(self, handle):
        return self._value("nvmlDeviceGetGpuMaxPcieLinkGeneration", handle)

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle):
        return self._value("nvmlDeviceGetCurrPcieLinkWidth", handle)

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle):
        return self._value("nvmlDeviceGetMaxPcieLinkWidth", handle)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle):
        return self._value("nvmlDeviceGetPowerManagementDefaultLimit", handle)

    def nvmlDeviceGetGpuFabricInfo(self, handle, info):
        """Fills a c_nvmlGpuFabricInfo_t passed by reference, as pynvml's does."""
        recorded = self._value("nvmlDeviceGetGpuFabricInfo", handle)
        target = getattr(info, "_obj", info)
        target.status, target.cliqueId, target.state = recorded["status"], recorded["cliqueId"], recorded["state"]
        return pynvml.NVML_SUCCESS

    # ---- MIG ---------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle):
        return list(self._value("nvmlDeviceGetMigMode", handle))

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return self._value("nvmlDeviceGetMaxMigDeviceCount", handle)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        device = self._device("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if not 0 <= index < len(device.mig):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return device.mig[index].handle

    def nvmlDeviceGetGpuInstanceId(self, handle):
        return self._value("nvmlDeviceGetGpuInstanceId", handle)

    def nvmlDeviceGetComputeInstanceId(self, handle):
        return self._value("nvmlDeviceGetComputeInstanceId", handle)

    # ---- GPM ---------------------------------------------------------------------------

    def nvmlGpmSampleAlloc(self):
        self._enter("nvmlGpmSampleAlloc")
        return pynvml.c_nvmlGpmSample_t(pynvml.struct_c_nvmlGpmSample_t())

    def nvmlGpmSampleFree(self, sample):
        self._enter("nvmlGpmSampleFree")
        self._gpm_samples.pop(nvml.handle_key(sample), None)

    def nvmlGpmSampleGet(self, handle, sample):
        device = self._device("nvmlGpmSampleGet", handle)
        self._gpm_samples[nvml.handle_key(sample)] = (device, time.time())
        return sample

    def nvmlGpmMigSampleGet(self, handle, gpu_instance_id, sample):
        device = self._device("nvmlGpmMigSampleGet", handle)
        instance = next((m for m in device.mig if m.values.get("nvmlDeviceGetGpuInstanceId") == gpu_instance_id), None)
        if instance is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._gpm_samples[nvml.handle_key(sample)] = (instance, time.time())
        return sample

    def nvmlGpmMetricsGet(self, request):
        self._enter("nvmlGpmMetricsGet")
        first = self._gpm_samples.get(nvml.handle_key(request.sample1))
        second = self._gpm_samples.get(nvml.handle_key(request.sample2))
        if first is None or second is None or first[0] is not second[0]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        device = second[0]
        for slot in request.metrics[: request.numMetrics]:
            recorded = device.values.get(f"nvmlGpmMetricsGet/{GPM_METRIC_NAMES.get(slot.metricId)}")
            if recorded is None:
                slot.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
            else:
                slot.nvmlReturn, slot.value = 0, float(recorded)
        return request

    # ---- events ------------------------------------------------------------------------

    def nvmlEventSetCreate(self):
        self._enter("nvmlEventSetCreate")
        return object()

    def nvmlEventSetFree(self, event_set) -> None:
        self._enter("nvmlEventSetFree")
        self._registered.clear()

    def nvmlDeviceRegisterEvents(self, handle, event_types, event_set) -> None:
        device = self._device("nvmlDeviceRegisterEvents", handle)
        if not _recorded(device.values, "nvmlDeviceRegisterEvents"):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        self._registered.add(nvml.handle_key(handle))

    def nvmlEventSetWait_v2(self, event_set, timeout_ms):
        self._enter("nvmlEventSetWait_v2")
        try:
            return self._events.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT) from None


def _pcie_degraded(device: FakeDevice) -> tuple[dict, dict]:
    """The link trained at half its width (a reseat or riser problem), a generation down."""
    values = device.values
    return ({"nvmlDeviceGetCurrPcieLinkWidth": max(1, values.get("nvmlDeviceGetMaxPcieLinkWidth", 16) // 2),
             "nvmlDeviceGetCurrPcieLinkGeneration": max(1, values.get("nvmlDeviceGetGpuMaxPcieLinkGeneration", 5) - 1)},
            {})


def _nvlink_down(device: FakeDevice) -> tuple[dict, dict]:
    links = sorted(key for key in device.values if key.startswith("nvmlDeviceGetNvLinkState/"))
    return ({links[0]: pynvml.NVML_FEATURE_DISABLED} if links else {}), {}


def _reasons(bit: int, temperature: int | None = None) -> Callable[[FakeDevice], tuple[dict, dict]]:
    def fault(device: FakeDevice) -> tuple[dict, dict]:
        values: dict[str, Any] = {"nvmlDeviceGetCurrentClocksEventReasons":
                                  device.values.get("nvmlDeviceGetCurrentClocksEventReasons", 0) | bit}
        if temperature is not None:
            values["nvmlDeviceGetTemperature/NVML_TEMPERATURE_GPU"] = temperature
        return values, {}
    return fault


def _counted(**fields: int) -> Callable[[FakeDevice], tuple[dict, dict]]:
    """Counters raised by `add`; one the recording answers with an error (H100s retire no pages) starts at 0."""
    def fault(device: FakeDevice) -> tuple[dict, dict]:
        counts = {}
        for name, add in fields.items():
            key = f"NVML_FI_DEV_{name.upper()}"
            value = device.fields.get(key, 0)
            counts[key] = (value if isinstance(value, int | float) else 0) + add
        return {}, counts
    return fault


def _set(**fields: int) -> Callable[[FakeDevice], tuple[dict, dict]]:
    return lambda device: ({}, {f"NVML_FI_DEV_{name.upper()}": value for name, value in fields.items()})


def _values(values: dict[str, Any]) -> Callable[[FakeDevice], tuple[dict, dict]]:
    return lambda device: (dict(values), {})


# The failing states a GPU can be put in (FakeNvml.inject_fault, --simulate.fault=KIND:GPU), each as the values
# and fields NVML answers in it: (values, fields) over the device's.
FAULTS: dict[str, Callable[[FakeDevice], tuple[dict, dict]]] = {
    "pcie-degraded": _pcie_degraded,
    "nvlink-down": _nvlink_down,
    "thermal-throttle": _reasons(pynvml.nvmlClocksEventReasonHwThermalSlowdown, temperature=90),
    "hw-slowdown": _reasons(pynvml.nvmlClocksEventReasonHwSlowdown),
    "retired-pages": lambda device: ({}, {**_counted(retired_dbe=2)(device)[1], "NVML_FI_DEV_RETIRED_PENDING": 1}),
    "row-remap-pending": _set(remapped_pending=1),
    "row-remap-failed": _set(remapped_failure=1),
    "ecc-uncorrectable": _counted(ecc_dbe_vol_total=1, ecc_dbe_agg_total=1),
    "ecc-disabled": _values({"nvmlDeviceGetEccMode": [0, 0]}),
    "fabric-not-ready": _values({"nvmlDeviceGetGpuFabricInfo": {
        "clusterUuid": "", "status": pynvml.NVML_ERROR_UNKNOWN, "cliqueId": 0,
        "state": pynvml.NVML_GPU_FABRIC_STATE_IN_PROGRESS}}),
    "persistence-off": _values({"nvmlDeviceGetPersistenceMode": 0}),
    "power-capped": _values({"nvmlDeviceGetEnforcedPowerLimit": 400000}),
    "gpu-lost": lambda device: ({}, {}),  # FakeNvml.inject_fault loses the GPU instead
}


def _recorded(values: dict, key: str) -> Any:
    if key not in values:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
    value = values[key]
    if isinstance(value, dict) and set(value) == {"error"}:
        raise _error(value["error"])
    return value


def _recorded_field(fields: dict, field_id: int, scope: int) -> Any:
    for name in FIELD_NAMES.get(field_id, ()):
        for key in (f"{name}/{scope}", name):
            if key in fields:
                return fields[key]
    return None


def _struct(value: Any) -> Any:
    return SimpleNamespace(**value) if isinstance(value, dict) else value
