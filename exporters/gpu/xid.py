"""XID errors from NVML's event API, counted per GPU and code by a background thread.

dcgm-exporter serves only the last XID as a gauge, so two XIDs between scrapes look like
one and a repeated code looks like none. Counting every event fixes both.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pynvml

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.gpu import nvml

_logger = log.get("fleetscope.exporters.gpu.xid")
# XID codes are a fixed list in NVIDIA's documentation, but the label is bounded regardless.
MAX_CODES_PER_GPU = 64
OVERFLOW_CODE = "other"


@dataclass
class _GpuXids:
    by_code: Counter[str] = field(default_factory=Counter)
    total: int = 0
    last_code: int | None = None
    last_time: float | None = None


class XidCounts:
    def __init__(self) -> None:
        self._gpus: dict[str, _GpuXids] = {}
        self._lock = threading.Lock()

    def record(self, uuid: str, code: int, when: float) -> None:
        with self._lock:
            gpu = self._gpus.setdefault(uuid, _GpuXids())
            label = str(code)
            if label not in gpu.by_code and len(gpu.by_code) >= MAX_CODES_PER_GPU:
                label = OVERFLOW_CODE
            gpu.by_code[label] += 1
            gpu.total += 1
            gpu.last_code, gpu.last_time = code, when

    def emit(self, uuid: str, labels: Mapping[str, str], out: FamilySet) -> None:
        with self._lock:
            gpu = self._gpus.get(uuid) or _GpuXids()
            out.add(m.XID_EVENTS, labels, gpu.total)
            for code, count in gpu.by_code.items():
                out.add(m.XID_ERRORS, {**labels, "xid": code}, count)
            if gpu.last_code is not None and gpu.last_time is not None:
                out.add(m.LAST_XID, labels, gpu.last_code)
                out.add(m.LAST_XID_TIME, labels, gpu.last_time)


class XidWatcher:
    """Waits on an NVML event set for critical XID events until stopped.

    GPUs are added with watch(), also while it waits (NVML is thread-safe): a GPU that fell off
    the bus loses its registration, and one that answers again is registered anew."""

    def __init__(self, library: Any, counts: XidCounts, wait_ms: int = 500):
        self._library = library
        self._counts = counts
        self._wait_ms = wait_ms
        self._uuids: dict[int, str] = {}
        self._event_set: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xid-events", daemon=True)

    def start(self) -> None:
        try:
            self._event_set = self._library.nvmlEventSetCreate()
        except nvml.NVMLError as error:
            _logger.warning("XID events unavailable: cannot create an NVML event set",
                            extra={"error": nvml.error_name(error)})
            return
        self._thread.start()

    def watch(self, handle: Any, uuid: str) -> None:
        """Registers the GPU for XID events; a GPU that cannot be registered is logged and skipped."""
        if self._event_set is None:
            return
        try:
            self._library.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError, self._event_set)
        except nvml.NVMLError as error:
            _logger.warning("XID events unavailable for this GPU",
                            extra={"uuid": uuid, "error": nvml.error_name(error)})
            return
        with self._lock:
            self._uuids[nvml.handle_key(handle)] = uuid

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5 * self._wait_ms / 1000 + 1)
        if self._event_set is not None:
            with contextlib.suppress(nvml.NVMLError):
                self._library.nvmlEventSetFree(self._event_set)
            self._event_set = None

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                watching = bool(self._uuids)
            if watching:
                self._wait_once(self._event_set)
            else:
                self._stop.wait(self._wait_ms / 1000)

    def _wait_once(self, event_set: Any) -> None:
        try:
            event = self._library.nvmlEventSetWait_v2(event_set, self._wait_ms)
        except nvml.NVMLError as error:
            if error.value != pynvml.NVML_ERROR_TIMEOUT:
                _logger.warning("waiting for NVML events failed", extra={"error": nvml.error_name(error)})
                self._stop.wait(self._wait_ms / 1000)
            return
        if not event.eventType & pynvml.nvmlEventTypeXidCriticalError:
            return
        with self._lock:
            uuid = self._uuids.get(nvml.handle_key(event.device), "")
        self._counts.record(uuid, int(event.eventData), time.time())
        _logger.warning("GPU reported an XID error", extra={"uuid": uuid, "xid": int(event.eventData)})
