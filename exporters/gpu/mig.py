"""MIG instances of a GPU in MIG mode, each reported with its own labels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fleetscope.exporters.gpu import nvml
from fleetscope.exporters.gpu.calls import Calls

_PROFILE = re.compile(r"MIG (\S+)$")


@dataclass(frozen=True)
class MigInstance:
    handle: Any
    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    profile: str

    @property
    def labels(self) -> dict[str, str]:
        return {
            "gpu_instance_id": str(self.gpu_instance_id),
            "compute_instance_id": str(self.compute_instance_id),
            "mig_profile": self.profile,
        }


def instances(calls: Calls, parent: Any) -> list[MigInstance]:
    """The MIG devices present on a GPU; empty slots are skipped."""
    found = []
    for slot in range(calls("nvmlDeviceGetMaxMigDeviceCount", parent) or 0):
        handle = calls.optional("nvmlDeviceGetMigDeviceHandleByIndex", parent, slot)
        if handle is None:
            continue
        uuid = calls("nvmlDeviceGetUUID", handle)
        gpu_instance = calls("nvmlDeviceGetGpuInstanceId", handle)
        compute_instance = calls("nvmlDeviceGetComputeInstanceId", handle)
        if uuid is None or gpu_instance is None or compute_instance is None:
            continue
        name = nvml.text(calls("nvmlDeviceGetName", handle) or "")
        profile = match.group(1) if (match := _PROFILE.search(name)) else ""
        found.append(MigInstance(handle, nvml.text(uuid), gpu_instance, compute_instance, profile))
    return found
