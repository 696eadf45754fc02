"""NVML calls for the collector, each failure sorted into absent, counted or fatal."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pynvml

from fleetscope.exporters.gpu import nvml


class ErrorCounter:
    """fleetscope_gpu_nvml_errors_total: NVML failures that were neither 'not supported' nor fatal."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def count(self, function: str, error: nvml.NVMLError) -> None:
        with self._lock:
            self._counts[(function, nvml.error_name(error))] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


class Calls:
    """Calls NVML functions by name.

    Returns None where the hardware lacks the value (the metric is absent) or where the call
    failed in a way that leaves the GPU usable (the metric is absent and the error counted);
    raises DeviceLost or LibraryFailed where the GPU or NVML itself is gone.
    """

    def __init__(self, library: Any, errors: ErrorCounter):
        self.library = library
        self.errors = errors

    def __call__(self, function: str, *args: Any, **kwargs: Any) -> Any:
        return self._call(function, args, kwargs, nvml.ABSENT)

    def optional(self, function: str, *args: Any) -> Any:
        """Like calling, but NVML_ERROR_NOT_FOUND (an empty slot, a missing instance) is no error."""
        return self._call(function, args, {}, nvml.ABSENT | {pynvml.NVML_ERROR_NOT_FOUND})

    def succeeded(self, function: str, code: int) -> bool:
        """Sorts a return code carried in a result (a field value, a GPM metric) the same way."""
        if code == pynvml.NVML_SUCCESS:
            return True
        self._sort(function, pynvml.NVMLError(code), nvml.ABSENT)
        return False

    def _call(self, function: str, args: tuple, kwargs: dict, absent: frozenset[int]) -> Any:
        try:
            return getattr(self.library, function)(*args, **kwargs)
        except nvml.NVMLError as error:
            self._sort(function, error, absent)
            return None

    def _sort(self, function: str, error: nvml.NVMLError, absent: frozenset[int]) -> None:
        code = error.value
        if code in absent:
            return
        if code in nvml.DEVICE_FATAL:
            raise nvml.DeviceLost(function, error)
        if code in nvml.LIBRARY_FATAL:
            raise nvml.LibraryFailed(function, error)
        self.errors.count(function, error)
