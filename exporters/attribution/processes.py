"""Labels read from the processes running on a GPU: their Slurm job, their pod's UID, and the Ray job, actor class
and Serve deployment of a Ray worker.

A process keeps its job and its pod for life, so each is read from /proc once, when the process
is first seen, and remembered by (pid, start time): a pid the kernel reuses is a new process. A Ray worker is
remembered once its job (and, with the dashboard, its actor) is known: a pooled worker learns its job when leased.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetscope.exporters.attribution import HPC_JOB_LABEL, POD_UID_LABEL, bounded, cgroup_of, stat_fields
from fleetscope.exporters.attribution.pods import pod_uid_in
from fleetscope.exporters.attribution.ray import RAY_LABELS, RayAttribution
from fleetscope.exporters.attribution.slurm import job_label, job_of_process

# Processes remembered at once; past it the memory starts afresh (MPS allows many clients a GPU).
MAX_REMEMBERED = 4096


class ProcessAttribution:
    def __init__(self, slurm_jobs: bool = True, pod_uid: bool = False, proc: Path = Path("/proc"),
                 ray: RayAttribution | None = None):
        self._slurm_jobs = slurm_jobs
        self._pod_uid = pod_uid
        self._ray = ray
        self.proc = proc  # where the host's processes are (--path.procfs)
        self._known: dict[tuple[int, str], dict[str, str]] = {}

    def read(self, pids: Sequence[int]) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
        """The GPU's labels (its Slurm job or jobs; its pod's UID and its Ray labels only where every process
        agrees on them), and each process's own."""
        reads = self._slurm_jobs or self._pod_uid or self._ray is not None
        per_process = {pid: self._labels_of(pid) for pid in pids} if reads else {}
        gpu = job_label(found[HPC_JOB_LABEL] for found in per_process.values() if HPC_JOB_LABEL in found)
        for label in (POD_UID_LABEL, *RAY_LABELS):
            values = {found.get(label) for found in per_process.values()}
            if len(values) == 1 and (shared := values.pop()):
                gpu[label] = shared
        return gpu, per_process

    def _labels_of(self, pid: int) -> dict[str, str]:
        key = (pid, self._start_time(pid))
        known = self._known.get(key)
        if known is not None:
            return known
        labels = {}
        cgroup = cgroup_of(pid, self.proc)  # read once, for both
        if self._slurm_jobs and (job := job_of_process(pid, cgroup, self.proc)):
            labels.update(job_label([job]))
        if self._pod_uid and (uid := pod_uid_in(cgroup)):
            labels[POD_UID_LABEL] = bounded(uid)
        if self._ray is not None:
            ray_labels, settled = self._ray.labels(pid)
            labels.update(ray_labels)
            if not settled:
                return labels
        if len(self._known) >= MAX_REMEMBERED:
            self._known.clear()
        self._known[key] = labels
        return labels

    def _start_time(self, pid: int) -> str:
        """Field 22 of /proc/<pid>/stat (after the command, which may hold spaces); empty if unreadable."""
        fields = stat_fields(pid, self.proc)
        return fields[19] if len(fields) > 19 else ""


NO_PROCESS_ATTRIBUTION = ProcessAttribution(slurm_jobs=False, pod_uid=False)
