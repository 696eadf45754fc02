"""The GPU collector: one NVML session, every GPU read each time it collects.

A GPU that fails is marked down (fleetscope_gpu_up 0) and none of its values are served;
the others are. If NVML itself is missing or breaks, collect() raises, the registry marks
the collector failed, and the next collection starts NVML again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pynvml
from prometheus_client.metrics_core import Metric

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.exporters.attribution import HoldersSource
from fleetscope.exporters.attribution.processes import NO_PROCESS_ATTRIBUTION, ProcessAttribution
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.gpu import nvml
from fleetscope.exporters.gpu.calls import Calls, ErrorCounter
from fleetscope.exporters.gpu.dcgm import DcgmRenderer
from fleetscope.exporters.gpu.identity import Device, identify
from fleetscope.exporters.gpu.readings import read_device
from fleetscope.exporters.gpu.xid import XidCounts, XidWatcher

_logger = log.get("fleetscope.exporters.gpu")


class NvmlUnavailable(Exception):
    """NVML could not be started; the message says why and what to check."""


class GpuCollector:
    name = "gpu"

    def __init__(
        self,
        library: Any,
        hostname: str,
        holders: HoldersSource = dict,
        xid_events: bool = True,
        compat_dcgm: bool = False,
        attribution: ProcessAttribution = NO_PROCESS_ATTRIBUTION,
        xid_wait_ms: int = 500,
    ):
        """holders: the job labels of each GPU, by device key (exporters/attribution), read at each
        collection; attribution: what to read from each GPU's processes; compat_dcgm: also serve every
        reading under dcgm-exporter's names (catalog/dcgm.py); xid_wait_ms: how long the XID thread waits on
        NVML at a time (an event ends the wait at once; a simulated fleet of hundreds lengthens it, so that
        hundreds of threads do not wake twice a second)."""
        self._library = library
        self._hostname = hostname
        self._holders = holders
        self._attribution = attribution
        self._xid_events = xid_events
        self._xid_wait_ms = xid_wait_ms
        self._errors = ErrorCounter()
        self._calls = Calls(library, self._errors)
        self._xids = XidCounts()
        self._lock = threading.Lock()
        self._started = False
        self._versions: dict[str, str] = {}
        self._devices: dict[int, Device] = {}
        self._watcher: XidWatcher | None = None
        # Labels of every GPU seen, so one that vanishes is still reported as down.
        self._known: dict[int, dict[str, str]] = {}
        self._down: set[int] = set()
        self._last_update: dict[int, float] = {}
        self._dcgm = DcgmRenderer() if compat_dcgm else None

    def collect(self) -> list[Metric]:
        with self._lock:
            try:
                if not self._started:
                    self._start()
                metrics = self._read_all()
                if self._dcgm is not None:
                    metrics += self._dcgm.render(metrics)
                return metrics
            except nvml.LibraryFailed as failure:
                _logger.error("NVML stopped working; it will be started again at the next collection",
                              extra={"reason": str(failure)})
                self._stop()
                raise

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> None:
        try:
            self._library.nvmlInit()
        except nvml.NVMLError as error:
            raise NvmlUnavailable(_init_advice(error)) from None
        self._started = True
        self._versions = {
            "driver_version": nvml.text(self._calls("nvmlSystemGetDriverVersion") or ""),
            "cuda_driver_version": _cuda_version(self._calls("nvmlSystemGetCudaDriverVersion")),
            "nvml_version": nvml.text(self._calls("nvmlSystemGetNVMLVersion") or ""),
        }
        if self._xid_events:
            self._watcher = XidWatcher(self._library, self._xids, self._xid_wait_ms)
            self._watcher.start()
        count = self._calls("nvmlDeviceGetCount") or 0
        for index in range(count):
            self._identify(index)
        _logger.info("NVML started", extra={"gpus": count, **self._versions})

    def _stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._started:
            for index in list(self._devices):
                self._forget(index)
            with contextlib.suppress(nvml.NVMLError):
                self._library.nvmlShutdown()
        self._devices.clear()
        self._started = False

    def _identify(self, index: int) -> Device | None:
        try:
            device = identify(self._calls, index, self._hostname)
        except nvml.DeviceLost as lost:
            self._mark_down(index, lost)
            return None
        self._devices[index] = device
        self._known[index] = device.labels
        if self._watcher is not None:
            # Also when a lost GPU answers again: the driver dropped its registration with it.
            self._watcher.watch(device.handle, device.uuid)
        return device

    def _read_all(self) -> list[Metric]:
        out = FamilySet()
        out.add(m.DRIVER_INFO, {"hostname": self._hostname, **self._versions}, 1)
        holders = self._holders()
        count = self._calls("nvmlDeviceGetCount")
        indexes = set(self._known) | set(range(count or 0))
        for index in sorted(indexes):
            device = self._devices.get(index) or self._identify(index)
            up = 0
            if device is not None:
                try:
                    # Into a buffer of its own: a GPU that fails halfway serves none of its values.
                    reading = FamilySet()
                    read_device(self._calls, device, holders, reading, self._attribution)
                    out.update(reading)
                    up = 1
                    self._last_update[index] = time.time()
                    if index in self._down:
                        self._down.discard(index)
                        _logger.info("GPU is answering again", extra={"gpu": index, "uuid": device.uuid})
                except nvml.DeviceLost as lost:
                    self._forget(index)  # its next read starts from a fresh handle
                    self._mark_down(index, lost)
            self._emit_health(index, up, out)
        for (function, error), total in sorted(self._errors.snapshot().items()):
            out.add(m.NVML_ERRORS, {"hostname": self._hostname, "function": function, "error": error}, total)
        return out.metrics()

    def _forget(self, index: int) -> None:
        device = self._devices.pop(index)
        for sampler in [device.gpm, *device.mig_gpm.values()]:
            if sampler is not None:
                with contextlib.suppress(nvml.DeviceLost, nvml.LibraryFailed):
                    sampler.close(self._calls)

    def _emit_health(self, index: int, up: int, out: FamilySet) -> None:
        labels = self._known.get(index, {"gpu": str(index), "hostname": self._hostname})
        out.add(m.UP, labels, up)
        if index in self._last_update:
            out.add(m.LAST_UPDATE, labels, self._last_update[index])
        if "uuid" in labels:
            self._xids.emit(labels["uuid"], labels, out)

    def _mark_down(self, index: int, lost: nvml.DeviceLost) -> None:
        if index not in self._down:
            self._down.add(index)
            _logger.error("GPU is down; its values are not served until it answers again",
                          extra={"gpu": index, "function": lost.function, "error": nvml.error_name(lost.error)})


def _cuda_version(version: int | None) -> str:
    return f"{version // 1000}.{version % 1000 // 10}" if version else ""


def _init_advice(error: nvml.NVMLError) -> str:
    code = error.value
    if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return ("NVML library not found (libnvidia-ml.so.1): no NVIDIA driver is installed here, or the container "
                "was started without the NVIDIA runtime; use --simulate to try the exporter without a GPU")
    if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "the NVIDIA kernel driver is not loaded (check `nvidia-smi` and `lsmod | grep nvidia`)"
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return "no permission to open the NVIDIA devices (/dev/nvidia*); run as a user that can"
    if code == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return "the NVML library and the loaded kernel driver differ in version; reboot or reload the driver"
    return f"nvmlInit failed: {nvml.error_name(error)} ({error})"
