"""The boundary with NVML. Everything NVML-specific that is not a metric lives here:
which errors mean what, and how a field value is decoded.

The collector receives NVML as a module-like object: pynvml itself on a GPU node, or
FakeNvml (fake.py) in tests and --simulate, which raises the same pynvml.NVMLError codes.
"""

from __future__ import annotations

import ctypes
from typing import Any, TypeAlias

import pynvml

NVMLError: TypeAlias = pynvml.NVMLError

# The GPU itself is gone or unusable until reset: mark it down, serve none of its values.
DEVICE_FATAL = frozenset({
    pynvml.NVML_ERROR_GPU_IS_LOST,
    pynvml.NVML_ERROR_RESET_REQUIRED,
    pynvml.NVML_ERROR_GPU_NOT_FOUND,
})
# The library as a whole is unusable (driver unloaded or upgraded under us): start NVML again.
LIBRARY_FATAL = frozenset({
    pynvml.NVML_ERROR_UNINITIALIZED,
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
})
# The hardware does not have it: the metric is absent, nothing is counted or logged.
ABSENT = frozenset({
    pynvml.NVML_ERROR_NOT_SUPPORTED,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
})

_ERROR_NAMES = {
    value: name for name, value in vars(pynvml).items()
    if name.startswith("NVML_ERROR_") and isinstance(value, int)
}
ERROR_CODES = {name: value for value, name in _ERROR_NAMES.items()}


def error_name(error: NVMLError) -> str:
    """'NVML_ERROR_GPU_IS_LOST' for an NVMLError; bounded, so usable as a label value."""
    return _ERROR_NAMES.get(error.value, "NVML_ERROR_UNKNOWN")


def error_code(name: str) -> int:
    try:
        return ERROR_CODES[name]
    except KeyError:
        raise ValueError(f"{name!r} is not an NVML error name (e.g. NVML_ERROR_GPU_IS_LOST)") from None


class DeviceLost(Exception):
    """A call on one GPU failed in a way that means the GPU is down."""

    def __init__(self, function: str, error: NVMLError):
        super().__init__(f"{function}: {error_name(error)}")
        self.function = function
        self.error = error


class LibraryFailed(Exception):
    """NVML as a whole stopped working; the session must be started again."""

    def __init__(self, function: str, error: NVMLError):
        super().__init__(f"{function}: {error_name(error)} ({error})")
        self.function = function
        self.error = error


_VALUE_MEMBERS = {
    pynvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
    pynvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
}


def field_value(field: Any) -> float:
    """The number in a c_nvmlFieldValue_t, read from the union member its valueType names."""
    return float(getattr(field.value, _VALUE_MEMBERS[field.valueType]))


def text(value: str | bytes) -> str:
    """pynvml returns str or bytes depending on version and call."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def handle_key(handle: Any) -> int:
    """A stable key for a device handle: handles for the same GPU are distinct Python
    objects pointing at the same address."""
    return ctypes.cast(handle, ctypes.c_void_p).value or 0
