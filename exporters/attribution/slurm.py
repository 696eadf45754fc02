"""Slurm jobs on a node's GPUs, without Kubernetes.

Two sources, as dcgm-exporter reads them (internal/pkg/transformation/hpc.go):
- a job-mapping directory (dcgm-exporter's DCGM_HPC_JOB_MAPPING_DIR): one file per GPU, named by
  the GPU's index, listing the ids of the jobs using it, one a line; Slurm's prolog and epilog
  write and remove them;
- failing that, the GPU's own processes: the job in their cgroup path
  (`.../slurm/uid_1000/job_4242/step_0` under cgroup v1, `.../job_4242/step_0/...` under v2) or
  SLURM_JOB_ID in their environment.
A GPU shared by several jobs gets them all, sorted and comma-separated, at most MAX_JOBS_PER_GPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from fleetscope import log
from fleetscope.exporters.attribution import HPC_JOB_LABEL, Holders, bounded, read_head

_logger = log.get("fleetscope.exporters.attribution")
MAX_JOBS_PER_GPU = 8
MAX_MAPPING_FILE_BYTES = 4096
MAX_ENVIRONMENT_BYTES = 65536
_JOB_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_CGROUP_JOB = re.compile(r"/job_(\d{1,20})(?:/|$)")


def job_label(jobs: Iterable[str]) -> dict[str, str]:
    """{"hpc_job": "4242"} (or "4242,4243" for a shared GPU); empty without a job."""
    distinct = sorted({job for job in jobs if _JOB_ID.match(job)})[:MAX_JOBS_PER_GPU]
    return {HPC_JOB_LABEL: bounded(",".join(distinct))} if distinct else {}


class JobMappingDirectory:
    """The directory's files, read again at every collection (jobs start and end between them)."""

    def __init__(self, path: Path):
        self._path = path
        self._problem: str | None = None

    def holders(self) -> Holders:
        try:
            entries = sorted(self._path.iterdir())
        except OSError as error:
            self._report(f"cannot list {self._path}: {error.strerror}")
            return {}
        self._report(None)
        found = {}
        for entry in entries:
            if not entry.name.isdigit() or not entry.is_file():
                continue  # dcgm-exporter's convention: a file per GPU index, nothing else
            text = read_head(entry, MAX_MAPPING_FILE_BYTES)
            if text is None:
                continue  # removed by an epilog while being read
            label = job_label(line.strip() for line in text.splitlines())
            if label:
                found[str(int(entry.name))] = label
        return found

    def _report(self, problem: str | None) -> None:
        if problem and problem != self._problem:
            _logger.warning("cannot read the HPC job-mapping directory; GPU series will lack hpc_job",
                            extra={"error": problem})
        self._problem = problem


def job_of_process(pid: int, cgroup: str, proc: Path = Path("/proc")) -> str | None:
    """The Slurm job a process runs in: from its cgroup text (attribution.cgroup_of), else from
    SLURM_JOB_ID in the head of its environment."""
    match = _CGROUP_JOB.search(cgroup)
    if match:
        return match.group(1)
    environment = read_head(proc / str(pid) / "environ", MAX_ENVIRONMENT_BYTES) or ""
    for variable in environment.split("\0"):
        if variable.startswith("SLURM_JOB_ID="):
            job = variable.removeprefix("SLURM_JOB_ID=")
            return job if _JOB_ID.match(job) else None
    return None
