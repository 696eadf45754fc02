"""The processes on a GPU: memory and utilization per process, attributed to their MIG instance
where the GPU is in MIG mode, and to their job where the exporter is asked to."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.gpu.calls import Calls

# Processes per GPU are bounded by the hardware, but MPS allows many; keep the largest.
MAX_PROCESSES_PER_GPU = 64
PERCENT = 0.01
_NOT_IN_MIG = 0xFFFFFFFF


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory: int | None  # None where NVML cannot say (e.g. under WDDM)
    gpu_instance_id: int | None
    compute_instance_id: int | None


def process_name(pid: int, proc: Path = Path("/proc")) -> str:
    """The command name of a pid; empty where the exporter cannot see the host's processes."""
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def running(calls: Calls, handle: Any) -> list[GpuProcess]:
    """Compute and graphics processes, each pid once, the largest users of memory first, bounded."""
    found: dict[int, GpuProcess] = {}
    for function in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for process in calls(function, handle) or ():
            known = found.get(process.pid)
            if known is None or (process.usedGpuMemory or 0) > (known.used_memory or 0):
                found[process.pid] = GpuProcess(process.pid, process.usedGpuMemory,
                                                _instance(getattr(process, "gpuInstanceId", None)),
                                                _instance(getattr(process, "computeInstanceId", None)))
    return sorted(found.values(), key=lambda p: p.used_memory or -1, reverse=True)[:MAX_PROCESSES_PER_GPU]


def _instance(value: int | None) -> int | None:
    return None if value is None or value == _NOT_IN_MIG else value


@dataclass
class UtilizationSampler:
    """NVML keeps per-process utilization samples; each read asks for those since the previous one."""

    since_microseconds: int = 0

    def read(self, calls: Calls, handle: Any) -> dict[int, float]:
        """Mean SM utilization (0 to 1) of each process over NVML's samples since the last read."""
        now = int(time.time() * 1e6)
        samples = calls.optional("nvmlDeviceGetProcessUtilization", handle, self.since_microseconds)
        self.since_microseconds = now
        by_pid: dict[int, list[float]] = {}
        for sample in samples or ():
            by_pid.setdefault(sample.pid, []).append(sample.smUtil * PERCENT)
        return {pid: sum(values) / len(values) for pid, values in by_pid.items()}


def emit(
    processes: list[GpuProcess],
    utilization: Mapping[int, float],
    labels: Mapping[str, str],
    out: FamilySet,
    instance_labels: Callable[[int | None, int | None], Mapping[str, str] | None] = lambda gi, ci: None,
    job_labels: Mapping[int, Mapping[str, str]] | None = None,
    name_of: Callable[[int], str] = process_name,
) -> None:
    """instance_labels(gpu_instance_id, compute_instance_id) gives a MIG instance's labels;
    job_labels, a process's own job (its pod UID, its Slurm job)."""
    for process in processes:
        extra = instance_labels(process.gpu_instance_id, process.compute_instance_id) or {}
        own = {**labels, **extra, **(job_labels or {}).get(process.pid, {}),
               "pid": str(process.pid), "process_name": name_of(process.pid)}
        if process.used_memory is not None:
            out.add(m.PROCESS_MEMORY, own, process.used_memory)
        if process.pid in utilization:
            out.add(m.PROCESS_UTILIZATION, own, utilization[process.pid])
