"""Labels read from the processes running on a GPU: their Slurm job and their pod's UID."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetscope.exporters.attribution import HPC_JOB_LABEL, POD_UID_LABEL, bounded
from fleetscope.exporters.attribution.pods import pod_uid_of_process
from fleetscope.exporters.attribution.slurm import job_label, job_of_process


class ProcessAttribution:
    def __init__(self, slurm_jobs: bool = True, pod_uid: bool = False, proc: Path = Path("/proc")):
        self._slurm_jobs = slurm_jobs
        self._pod_uid = pod_uid
        self.proc = proc  # where the host's processes are (--path.procfs)

    def read(self, pids: Sequence[int]) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
        """The GPU's labels (its job or jobs; its pod's UID only where every process is in one pod),
        and each process's own."""
        per_process: dict[int, dict[str, str]] = {}
        for pid in pids:
            labels = per_process[pid] = {}
            if self._slurm_jobs and (job := job_of_process(pid, self.proc)):
                labels.update(job_label([job]))
            if self._pod_uid and (uid := pod_uid_of_process(pid, self.proc)):
                labels[POD_UID_LABEL] = bounded(uid)
        gpu = job_label(found[HPC_JOB_LABEL] for found in per_process.values() if HPC_JOB_LABEL in found)
        uids = {found.get(POD_UID_LABEL) for found in per_process.values()}
        if len(uids) == 1 and (uid := uids.pop()):
            gpu[POD_UID_LABEL] = uid
        return gpu, per_process


NO_PROCESS_ATTRIBUTION = ProcessAttribution(slurm_jobs=False, pod_uid=False)
