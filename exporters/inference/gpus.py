"""The GPUs a model server's process uses, by UUID, so that off Kubernetes (Slurm, bare metal)
recording rules can join its requests and tokens to the GPU exporter's series on (hostname, uuid).

    metrics = InferenceMetrics(engine="my-server", gpus=visible_gpus())

CUDA_VISIBLE_DEVICES (the process's view) is read first, then NVIDIA_VISIBLE_DEVICES (the
container's, as the NVIDIA Container Toolkit sets it). Entries that are UUIDs ("GPU-...",
"MIG-...") are taken as they are; "all" and indices need NVML to name the GPUs. NVML numbers
GPUs in PCI bus order; CUDA numbers them fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, so
CUDA indices are mapped only under that setting (or where there is one GPU), and refused
otherwise rather than attributed to the wrong GPU. As CUDA does, a negative entry in
CUDA_VISIBLE_DEVICES ends the list ("-1" hides every GPU).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

NONE_VALUES = frozenset({"", "none", "void", "nodevfiles"})
MAX_GPUS = 64


class GpuDeclarationError(ValueError):
    """The environment names GPUs in a way that cannot be turned into UUIDs safely."""


def visible_gpus(environ: Mapping[str, str] | None = None, nvml: Any = None) -> tuple[str, ...]:
    """UUIDs of the GPUs this process may use, from the environment; () where none are named.

    `nvml` is pynvml (imported when needed and installed); indices or "all" without it raise
    GpuDeclarationError, as do CUDA indices in CUDA's default order on a machine of several GPUs."""
    environ = os.environ if environ is None else environ
    for variable in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        value = environ.get(variable)
        if value is None:
            continue
        entries = [entry.strip() for entry in value.split(",")]
        if variable == "CUDA_VISIBLE_DEVICES":
            entries = entries[:next((i for i, entry in enumerate(entries) if entry.startswith("-")), len(entries))]
        if value.strip().lower() in NONE_VALUES or not entries:
            return ()
        if all(_is_uuid(entry) for entry in entries):
            return _bounded(entries, variable)
        return _bounded(_by_nvml(entries, variable, environ, nvml), variable)
    return ()


def _is_uuid(entry: str) -> bool:
    return entry.startswith(("GPU-", "MIG-"))


def _bounded(uuids: list[str], variable: str) -> tuple[str, ...]:
    if len(uuids) > MAX_GPUS:
        raise GpuDeclarationError(f"{variable} names {len(uuids)} GPUs; at most {MAX_GPUS} are declared")
    return tuple(dict.fromkeys(uuids))


def _by_nvml(entries: list[str], variable: str, environ: Mapping[str, str], nvml: Any) -> list[str]:
    every = [entry.lower() for entry in entries] == ["all"]
    if not every and not all(entry.isdigit() for entry in entries):
        bad = next(entry for entry in entries if not entry.isdigit())
        raise GpuDeclarationError(f"{variable} entry {bad!r} is neither a GPU UUID nor an index")
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            raise GpuDeclarationError(f"{variable}={','.join(entries)} names GPUs by index or 'all'; naming their "
                                      "UUIDs needs NVML (pip install nvidia-ml-py), or pass gpus= the UUIDs") from None
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as error:  # NVMLError and its subclasses, or a missing library
        raise GpuDeclarationError(f"{variable} names GPUs by index or 'all', and NVML cannot name them: {error}") \
            from None
    try:
        count = nvml.nvmlDeviceGetCount()
        indices = list(range(count)) if every else [_index(entry, variable, count) for entry in entries]
        cuda_order = variable == "CUDA_VISIBLE_DEVICES" and environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID"
        if not every and cuda_order and count > 1:
            raise GpuDeclarationError(
                f"{variable} names GPUs by CUDA index, and CUDA numbers them fastest first, not as NVML does; "
                "set CUDA_DEVICE_ORDER=PCI_BUS_ID, use GPU UUIDs in CUDA_VISIBLE_DEVICES, or pass gpus=")
        return [_text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(index))) for index in indices]
    finally:
        nvml.nvmlShutdown()


def _index(entry: str, variable: str, count: int) -> int:
    if int(entry) >= count:
        raise GpuDeclarationError(f"{variable} entry {entry!r} is neither a GPU UUID nor an index below {count}")
    return int(entry)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
