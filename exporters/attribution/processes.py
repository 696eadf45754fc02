"""Labels read from the processes running on a GPU: their Slurm job and their pod's UID.

A process keeps its job and its pod for life, so each is read from /proc once, when the process
is first seen, and remembered by (pid, start time): a pid the kernel reuses is a new process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetscope.exporters.attribution import HPC_JOB_LABEL, POD_UID_LABEL, bounded, cgroup_of, read_head
from fleetscope.exporters.attribution.pods import pod_uid_in
from fleetscope.exporters.attribution.slurm import job_label, job_of_process

# Processes remembered at once; past it the memory starts afresh (MPS allows many clients a GPU).
MAX_REMEMBERED = 4096
MAX_STAT_BYTES = 4096  # a stat line is a few hundred bytes; its command at most 16 characters


class ProcessAttribution:
    def __init__(self, slurm_jobs: bool = True, pod_uid: bool = False, proc: Path = Path("/proc")):
        self._slurm_jobs = slurm_jobs
        self._pod_uid = pod_uid
        self.proc = proc  # where the host's processes are (--path.procfs)
        self._known: dict[tuple[int, str], dict[str, str]] = {}

    def read(self, pids: Sequence[int]) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
        """The GPU's labels (its job or jobs; its pod's UID only where every process is in one pod),
        and each process's own."""
        per_process = {pid: self._labels_of(pid) for pid in pids} if self._slurm_jobs or self._pod_uid else {}
        gpu = job_label(found[HPC_JOB_LABEL] for found in per_process.values() if HPC_JOB_LABEL in found)
        uids = {found.get(POD_UID_LABEL) for found in per_process.values()}
        if len(uids) == 1 and (uid := uids.pop()):
            gpu[POD_UID_LABEL] = uid
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
        if len(self._known) >= MAX_REMEMBERED:
            self._known.clear()
        self._known[key] = labels
        return labels

    def _start_time(self, pid: int) -> str:
        """Field 22 of /proc/<pid>/stat (after the command, which may hold spaces); empty if unreadable."""
        stat = read_head(self.proc / str(pid) / "stat", MAX_STAT_BYTES) or ""
        fields = stat.rpartition(")")[2].split()
        return fields[19] if len(fields) > 19 else ""


NO_PROCESS_ATTRIBUTION = ProcessAttribution(slurm_jobs=False, pod_uid=False)
