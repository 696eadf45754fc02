"""Which job holds each GPU: one mechanism, several small sources.

A *holders* source answers once per collection with labels by device key: a GPU's UUID, its
index as text, its DRA device name (`gpu-<minor>`), or a MIG instance's UUID. The kubelet's
pod-resources API (Kubernetes pods and DRA claims) and a Slurm job-mapping directory are such
sources. A *process* source answers for the processes running on one GPU: their Slurm job and
their pod's UID, read from /proc. Every label a source may give is in the GPU catalog's
JOB_LABELS, and every value is bounded in length, so that nothing a job controls grows the label
set without limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Holders = Mapping[str, Mapping[str, str]]
HoldersSource = Callable[[], Holders]

POD_UID_LABEL = "pod_uid"
HPC_JOB_LABEL = "hpc_job"
MAX_VALUE_LENGTH = 128
MAX_CGROUP_BYTES = 4096
MAX_STAT_BYTES = 4096  # a stat line is a few hundred bytes; its command at most 16 characters


def bounded(value: str) -> str:
    """A label value no longer than MAX_VALUE_LENGTH characters."""
    return value[:MAX_VALUE_LENGTH]


def read_head(path: Path, limit: int) -> str | None:
    """The first `limit` bytes of a file as text, never more; None where it cannot be read (a process
    that ended, a file an epilog removed)."""
    try:
        with path.open("rb") as file:
            return file.read(limit).decode(errors="replace")
    except OSError:
        return None


def cgroup_of(pid: int, proc: Path) -> str:
    """The text of /proc/<pid>/cgroup, bounded; empty where it cannot be read."""
    return read_head(proc / str(pid) / "cgroup", MAX_CGROUP_BYTES) or ""


def combine(sources: Sequence[HoldersSource]) -> HoldersSource:
    """One holders source from several; where two name the same label of a device, the first wins."""
    if len(sources) == 1:
        return sources[0]

    def holders() -> Holders:
        merged: dict[str, dict[str, str]] = {}
        for source in sources:
            for device, labels in source().items():
                mine = merged.setdefault(device, {})
                for name, value in labels.items():
                    mine.setdefault(name, value)
        return merged

    return holders


def labels_of(holders: Holders, *device_keys: str) -> dict[str, str]:
    """The labels every source gave a device under any of its keys, earlier keys first."""
    found: dict[str, str] = {}
    for key in filter(None, device_keys):
        for name, value in holders.get(key, {}).items():
            found.setdefault(name, value)
    return found


def stat_fields(pid: int, proc: Path) -> list[str]:
    """/proc/<pid>/stat's fields after the command (which may hold spaces and parentheses), from field 3 (the state)
    on, bounded; empty where it cannot be read."""
    return (read_head(proc / str(pid) / "stat", MAX_STAT_BYTES) or "").rpartition(")")[2].split()
