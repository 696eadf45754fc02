"""GPU memory per process, attributed to its MIG instance where the GPU is in MIG mode."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.gpu.calls import Calls

# Processes per GPU are bounded by the hardware, but MPS allows many; keep the largest.
MAX_PROCESSES_PER_GPU = 64


def process_name(pid: int, proc: Path = Path("/proc")) -> str:
    """The command name of a pid; empty where the exporter cannot see the host's processes."""
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def read(
    calls: Calls,
    handle: Any,
    labels: Mapping[str, str],
    out: FamilySet,
    instance_labels: Callable[[int | None, int | None], Mapping[str, str] | None] = lambda gi, ci: None,
    name_of: Callable[[int], str] = process_name,
) -> None:
    """instance_labels(gpu_instance_id, compute_instance_id) gives a MIG instance's labels."""
    memory: dict[int, Any] = {}
    for function in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for process in calls(function, handle) or ():
            if process.usedGpuMemory is None:  # not available, e.g. under WDDM
                continue
            known = memory.get(process.pid)
            if known is None or process.usedGpuMemory > known.usedGpuMemory:
                memory[process.pid] = process
    largest = sorted(memory.values(), key=lambda p: p.usedGpuMemory, reverse=True)[:MAX_PROCESSES_PER_GPU]
    for process in largest:
        extra = instance_labels(getattr(process, "gpuInstanceId", None), getattr(process, "computeInstanceId", None))
        out.add(m.PROCESS_MEMORY,
                {**labels, **(extra or {}), "pid": str(process.pid), "process_name": name_of(process.pid)},
                process.usedGpuMemory)
