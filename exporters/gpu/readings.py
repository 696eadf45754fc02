"""What is read from each GPU at every poll."""

from __future__ import annotations

from collections.abc import Mapping

import pynvml

from fleetscope.catalog import FamilySet, MetricSpec
from fleetscope.exporters.attribution import Holders, labels_of
from fleetscope.exporters.attribution.processes import NO_PROCESS_ATTRIBUTION, ProcessAttribution
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.gpu import mig, nvml, processes
from fleetscope.exporters.gpu.calls import Calls
from fleetscope.exporters.gpu.gpm import GpmSampler
from fleetscope.exporters.gpu.identity import Device

# (metric, NVML function, its arguments after the handle, factor to the base unit)
_SCALARS: tuple[tuple[MetricSpec, str, tuple, float], ...] = (
    (m.SM_CLOCK, "nvmlDeviceGetClockInfo", (pynvml.NVML_CLOCK_SM,), 1e6),
    (m.MEMORY_CLOCK, "nvmlDeviceGetClockInfo", (pynvml.NVML_CLOCK_MEM,), 1e6),
    (m.TEMPERATURE, "nvmlDeviceGetTemperature", (pynvml.NVML_TEMPERATURE_GPU,), 1.0),
    (m.POWER, "nvmlDeviceGetPowerUsage", (), 1e-3),
    (m.POWER_LIMIT, "nvmlDeviceGetEnforcedPowerLimit", (), 1e-3),
    (m.PCIE_TRANSMIT_RATE, "nvmlDeviceGetPcieThroughput", (pynvml.NVML_PCIE_UTIL_TX_BYTES,), 1024.0),
    (m.PCIE_RECEIVE_RATE, "nvmlDeviceGetPcieThroughput", (pynvml.NVML_PCIE_UTIL_RX_BYTES,), 1024.0),
)
CLOCK_EVENT_REASONS = {
    "gpu_idle": pynvml.nvmlClocksEventReasonGpuIdle,
    "applications_clocks_setting": pynvml.nvmlClocksEventReasonApplicationsClocksSetting,
    "sw_power_cap": pynvml.nvmlClocksEventReasonSwPowerCap,
    "hw_slowdown": pynvml.nvmlClocksEventReasonHwSlowdown,
    "sync_boost": pynvml.nvmlClocksEventReasonSyncBoost,
    "sw_thermal_slowdown": pynvml.nvmlClocksEventReasonSwThermalSlowdown,
    "hw_thermal_slowdown": pynvml.nvmlClocksEventReasonHwThermalSlowdown,
    "hw_power_brake_slowdown": pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
    "display_clock_setting": pynvml.nvmlClocksEventReasonDisplayClockSetting,
}
_PSTATE_UNKNOWN = 32
PERCENT = 0.01


def read_device(calls: Calls, device: Device, holders: Holders, out: FamilySet,
                attribution: ProcessAttribution = NO_PROCESS_ATTRIBUTION) -> None:
    """Adds every value one GPU has; raises DeviceLost if the GPU stops answering.

    holders: the job labels of each device key (exporters/attribution); attribution: what its
    processes say of their jobs."""
    handle = device.handle
    mig_mode = calls("nvmlDeviceGetMigMode", handle)
    in_mig_mode = mig_mode is not None and mig_mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE
    running = processes.running(calls, handle)
    gpu_jobs, process_jobs = attribution.read([process.pid for process in running])
    # A MIG GPU is shared by its instances' jobs; only its instances carry job labels. What a holders
    # source says (the kubelet, a job-mapping directory) comes before what the processes say.
    labels = dict(device.labels) if in_mig_mode else {
        **device.labels, **gpu_jobs, **labels_of(holders, device.uuid, str(device.index), device.dra_name)}

    _static(device, labels, out)
    _fields(calls, device, labels, out)
    for spec, function, args, scale in _SCALARS:
        value = calls(function, handle, *args)
        if value is not None:
            out.add(spec, labels, value * scale)
    _utilization(calls, handle, labels, out)
    _memory(calls, handle, labels, out)
    _clock_events(calls, device, labels, out)
    pstate = calls("nvmlDeviceGetPerformanceState", handle)
    if pstate is not None and pstate != _PSTATE_UNKNOWN:
        out.add(m.PERFORMANCE_STATE, labels, pstate)
    for fan in range(device.fan_count):
        speed = calls("nvmlDeviceGetFanSpeed_v2", handle, fan)
        if speed is not None:
            out.add(m.FAN_SPEED, {**labels, "fan": str(fan)}, speed * PERCENT)
    for link in range(device.nvlink_count):
        state = calls("nvmlDeviceGetNvLinkState", handle, link)
        if state is not None:
            out.add(m.NVLINK_UP, {**labels, "link": str(link)}, 1 if state == pynvml.NVML_FEATURE_ENABLED else 0)

    if mig_mode is not None:
        out.add(m.MIG_MODE, labels, 1 if in_mig_mode else 0)
    instance_labels = _mig(calls, device, holders, out) if in_mig_mode else {}
    utilization = {} if in_mig_mode else device.process_utilization.read(calls, handle)
    processes.emit(running, utilization, labels, out,
                   lambda gi, ci: instance_labels.get((gi, ci)) if gi is not None and ci is not None else None,
                   process_jobs, lambda pid: processes.process_name(pid, attribution.proc))
    if device.gpm is not None and not in_mig_mode:
        device.gpm.read(calls, handle, labels, out)
        while device.mig_gpm:  # MIG mode was turned off: its instances are gone
            device.mig_gpm.popitem()[1].close(calls)


def _static(device: Device, labels: dict[str, str], out: FamilySet) -> None:
    out.add(m.INFO, {**labels, "architecture": device.architecture, "serial": device.serial}, 1)
    for spec, value in ((m.SM_CLOCK_MAX, device.max_sm_clock_hertz),
                        (m.SLOWDOWN_TEMPERATURE, device.slowdown_celsius),
                        (m.SHUTDOWN_TEMPERATURE, device.shutdown_celsius)):
        if value is not None:
            out.add(spec, labels, value)


def _fields(calls: Calls, device: Device, labels: dict[str, str], out: FamilySet) -> None:
    values = calls("nvmlDeviceGetFieldValues", device.handle, [(f.field_id, f.scope) for f in device.fields])
    if values is None:
        return
    for reading, value in zip(device.fields, values, strict=True):
        if not calls.succeeded("nvmlDeviceGetFieldValues", value.nvmlReturn):
            continue
        number = nvml.field_value(value)
        if reading.states:
            for state, state_labels in reading.states:
                out.add(reading.spec, {**labels, **reading.labels, **state_labels}, 1 if number == state else 0)
        else:
            out.add(reading.spec, {**labels, **reading.labels}, number * reading.scale)


def _utilization(calls: Calls, handle, labels: dict[str, str], out: FamilySet) -> None:
    rates = calls("nvmlDeviceGetUtilizationRates", handle)
    if rates is not None:
        out.add(m.UTILIZATION, labels, rates.gpu * PERCENT)
        out.add(m.MEMORY_COPY_UTILIZATION, labels, rates.memory * PERCENT)
    for spec, function in ((m.ENCODER_UTILIZATION, "nvmlDeviceGetEncoderUtilization"),
                           (m.DECODER_UTILIZATION, "nvmlDeviceGetDecoderUtilization")):
        result = calls(function, handle)
        if result is not None:
            out.add(spec, labels, result[0] * PERCENT)


def _memory(calls: Calls, handle, labels: Mapping[str, str], out: FamilySet, reserved: bool = True) -> None:
    info = calls("nvmlDeviceGetMemoryInfo", handle, version=pynvml.nvmlMemory_v2)
    if info is None:
        return
    out.add(m.MEMORY_TOTAL, labels, info.total)
    out.add(m.MEMORY_USED, labels, info.used)
    out.add(m.MEMORY_FREE, labels, info.free)
    if reserved:
        out.add(m.MEMORY_RESERVED, labels, info.reserved)


def _clock_events(calls: Calls, device: Device, labels: dict[str, str], out: FamilySet) -> None:
    active = calls("nvmlDeviceGetCurrentClocksEventReasons", device.handle)
    if active is None:
        return
    for reason, bit in CLOCK_EVENT_REASONS.items():
        if device.supported_clock_events & bit:
            out.add(m.CLOCK_EVENT_ACTIVE, {**labels, "reason": reason}, 1 if active & bit else 0)


def _mig(calls: Calls, device: Device, holders: Holders, out: FamilySet) -> dict[tuple[int, int], dict[str, str]]:
    """Reports each MIG instance's memory and, where the GPU has GPM, its activity; returns its labels
    by (GPU instance, compute instance)."""
    by_ids = {}
    for instance in mig.instances(calls, device.handle):
        labels = {**device.labels, **instance.labels, **labels_of(holders, instance.uuid)}
        _memory(calls, instance.handle, labels, out, reserved=False)
        by_ids[(instance.gpu_instance_id, instance.compute_instance_id)] = labels
    if device.gpm is not None:
        _mig_activity(calls, device, by_ids, out)
    return by_ids


def _mig_activity(calls: Calls, device: Device, instances: Mapping[tuple[int, int], dict[str, str]],
                  out: FamilySet) -> None:
    """GPM samples a GPU instance as a whole: its series carry its first compute instance's labels."""
    first_of_each: dict[int, dict[str, str]] = {}
    for (gpu_instance, _), labels in sorted(instances.items()):
        first_of_each.setdefault(gpu_instance, labels)
    for gone in set(device.mig_gpm) - set(first_of_each):
        device.mig_gpm.pop(gone).close(calls)
    for gpu_instance, labels in first_of_each.items():
        sampler = device.mig_gpm.setdefault(gpu_instance, GpmSampler(gpu_instance))
        sampler.read(calls, device.handle, labels, out)
