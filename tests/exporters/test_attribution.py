"""Which job holds a GPU, beyond Kubernetes' device plugin: Slurm's job-mapping directory and the GPU
processes' own cgroups and environment, read from real files laid out as the host has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetscope.exporters.attribution import cgroup_of, combine, labels_of
from fleetscope.exporters.attribution.pods import pod_uid_in
from fleetscope.exporters.attribution.processes import ProcessAttribution
from fleetscope.exporters.attribution.slurm import MAX_JOBS_PER_GPU, JobMappingDirectory, job_of_process
from tests.support.exposition import samples, value, values

MiB = 1024 * 1024
POD_UID = "1f2e3d4c-5b6a-4789-9abc-def012345678"
CGROUP_V1_SLURM = "12:memory:/slurm/uid_1000/job_4242/step_0\n11:devices:/slurm/uid_1000/job_4242/step_0\n"
CGROUP_V2_SLURM = "0::/system.slice/slurmstepd.scope/job_4243/step_batch/user/task_0\n"
CGROUP_V2_SYSTEMD_POD = ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                         f"{POD_UID.replace('-', '_')}.slice/cri-containerd-0123abcd.scope\n")
CGROUP_V1_CGROUPFS_POD = f"4:memory:/kubepods/besteffort/pod{POD_UID}/0123abcd\n"


def _process(proc: Path, pid: int, cgroup: str = "", environ: bytes = b"", comm: str = "python3") -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cgroup").write_text(cgroup)
    (proc / str(pid) / "environ").write_bytes(environ)
    (proc / str(pid) / "comm").write_text(comm + "\n")


def test_the_job_mapping_directory_names_each_gpus_jobs(tmp_path):
    mapping = tmp_path / "hpc-jobs"
    mapping.mkdir()
    (mapping / "0").write_text("4242\n")
    (mapping / "1").write_text("4243\n4242\n\n")
    (mapping / "2").write_text("")  # a GPU the epilog emptied
    (mapping / "3").write_text("$(reboot)\n" + "\n".join(str(5000 + i) for i in range(20)))
    (mapping / "README").write_text("4242")  # not a GPU index
    (mapping / "4").mkdir()
    (mapping / "5").write_bytes(b"7\n" + b"9" * 10_000_000)  # hostile: only its head is read
    assert JobMappingDirectory(mapping).holders() == {
        "0": {"hpc_job": "4242"}, "1": {"hpc_job": "4242,4243"},
        "3": {"hpc_job": ",".join(str(5000 + i) for i in range(MAX_JOBS_PER_GPU))}, "5": {"hpc_job": "7"}}


def test_a_missing_mapping_directory_is_no_job_and_one_warning(tmp_path, caplog):
    source = JobMappingDirectory(tmp_path / "absent")
    assert source.holders() == {} and source.holders() == {}
    assert caplog.text.count("cannot read the HPC job-mapping directory") == 1


def test_a_process_slurm_job_comes_from_its_cgroup_else_its_environment(tmp_path):
    _process(tmp_path, 10, CGROUP_V1_SLURM)
    _process(tmp_path, 11, CGROUP_V2_SLURM)
    _process(tmp_path, 12, "0::/user.slice\n", b"HOME=/root\0SLURM_JOB_ID=77\0")
    _process(tmp_path, 13, "0::/user.slice\n", b"SLURM_JOB_ID=$(x)\0")
    _process(tmp_path, 14, CGROUP_V2_SYSTEMD_POD)
    assert [job_of_process(pid, cgroup_of(pid, tmp_path), tmp_path) for pid in (10, 11, 12, 13, 14, 99)] == [
        "4242", "4243", "77", None, None, None]


def test_hostile_cgroup_and_environment_files_are_read_only_to_their_bound(tmp_path):
    # A job or pod named past the head of a huge file is not found, and the file is never read whole.
    _process(tmp_path, 15, "0::/" + "x" * 100_000 + "/job_4242/step_0\n",
             b"PAD=" + b"y" * 200_000 + b"\0SLURM_JOB_ID=77\0")
    _process(tmp_path, 16, "0::/" + "x" * 100_000 + f"/kubepods/pod{POD_UID}/c\n")
    assert job_of_process(15, cgroup_of(15, tmp_path), tmp_path) is None
    assert pod_uid_in(cgroup_of(16, tmp_path)) is None
    assert len(cgroup_of(15, tmp_path)) == 4096


@pytest.mark.parametrize("cgroup", [CGROUP_V2_SYSTEMD_POD, CGROUP_V1_CGROUPFS_POD])
def test_a_process_pod_uid_comes_from_its_cgroup_under_either_driver(tmp_path, cgroup):
    _process(tmp_path, 20, cgroup)
    _process(tmp_path, 21, CGROUP_V1_SLURM)
    assert pod_uid_in(cgroup_of(20, tmp_path)) == POD_UID
    assert pod_uid_in(cgroup_of(21, tmp_path)) is None and pod_uid_in(cgroup_of(22, tmp_path)) is None


def test_a_gpu_takes_its_processes_jobs_and_a_pod_uid_only_when_they_share_one(tmp_path):
    _process(tmp_path, 30, CGROUP_V2_SYSTEMD_POD)
    _process(tmp_path, 31, CGROUP_V1_CGROUPFS_POD)
    _process(tmp_path, 32, "0::/kubepods/pod99999999-8888-7777-6666-555555555555/c\n")
    attribution = ProcessAttribution(slurm_jobs=True, pod_uid=True, proc=tmp_path)
    assert attribution.read([30, 31])[0] == {"pod_uid": POD_UID}
    shared, per_process = attribution.read([30, 32])
    assert shared == {} and per_process[32] == {"pod_uid": "99999999-8888-7777-6666-555555555555"}
    _process(tmp_path, 33, CGROUP_V1_SLURM)
    _process(tmp_path, 34, CGROUP_V2_SLURM)
    assert attribution.read([33, 34])[0] == {"hpc_job": "4242,4243"}
    assert ProcessAttribution(slurm_jobs=False, pod_uid=False, proc=tmp_path).read([30, 33]) == ({}, {})


def test_a_process_is_read_once_and_a_reused_pid_again(tmp_path):
    _process(tmp_path, 40, CGROUP_V1_SLURM)
    stat = tmp_path / "40" / "stat"
    # After the command: state, then fields 4 to 21, then the start time (field 22).
    stat.write_text("40 (python3 -u train) S 1 40 40 0 -1 4194560 " + " ".join(["0"] * 12) + " 123456 0\n")
    attribution = ProcessAttribution(slurm_jobs=True, proc=tmp_path)
    assert attribution.read([40])[0] == {"hpc_job": "4242"}
    (tmp_path / "40" / "cgroup").write_text(CGROUP_V2_SLURM)  # not read again: a process keeps its job
    assert attribution.read([40])[0] == {"hpc_job": "4242"}
    stat.write_text(stat.read_text().replace("123456", "999999"))  # the pid now names a new process
    assert attribution.read([40])[0] == {"hpc_job": "4243"}


def test_holders_sources_combine_the_first_naming_a_label_wins():
    kubelet = {"GPU-a": {"namespace": "ml", "pod": "p"}}
    mapping = {"0": {"hpc_job": "1"}, "GPU-a": {"pod": "other"}}
    holders = combine([lambda: kubelet, lambda: mapping])()
    assert labels_of(holders, "GPU-a", "0") == {"namespace": "ml", "pod": "p", "hpc_job": "1"}


def test_slurm_jobs_reach_gpu_and_process_series(fake, make_collector, page_of, tmp_path):
    mapping = tmp_path / "hpc-jobs"
    mapping.mkdir()
    (mapping / "0").write_text("4242\n")
    proc = tmp_path / "proc"
    _process(proc, 501, CGROUP_V2_SLURM, comm="train.py")
    _process(proc, 502, CGROUP_V2_SLURM)
    fake.devices[0].values["nvmlDeviceGetComputeRunningProcesses"] = [
        {"pid": 501, "usedGpuMemory": 4096 * MiB, "gpuInstanceId": 0xFFFFFFFF, "computeInstanceId": 0xFFFFFFFF}]
    fake.devices[1].values["nvmlDeviceGetComputeRunningProcesses"] = [
        {"pid": 502, "usedGpuMemory": 2048 * MiB, "gpuInstanceId": 0xFFFFFFFF, "computeInstanceId": 0xFFFFFFFF}]
    fake.devices[1].values["nvmlDeviceGetProcessUtilization"] = [
        {"pid": 502, "timeStamp": 1, "smUtil": 60, "memUtil": 20, "encUtil": 0, "decUtil": 0},
        {"pid": 502, "timeStamp": 2, "smUtil": 80, "memUtil": 20, "encUtil": 0, "decUtil": 0}]
    collector = make_collector(fake, holders=JobMappingDirectory(mapping).holders,
                               attribution=ProcessAttribution(slurm_jobs=True, proc=proc))
    page = page_of(collector)
    # The mapping directory names GPU 0's job; GPU 1's comes from its process; GPU 2 has none.
    assert value(page, "fleetscope_gpu_power_watts", gpu="0", hpc_job="4242") > 0
    assert value(page, "fleetscope_gpu_power_watts", gpu="1", hpc_job="4243") > 0
    assert values(page, "fleetscope_gpu_power_watts", gpu="2", hpc_job="4242") == []
    process = [labels for n, labels, _ in samples(page) if n == "fleetscope_gpu_process_memory_used_bytes"
               and labels["gpu"] == "0"]
    assert process == [process[0] | {"pid": "501", "process_name": "train.py", "hpc_job": "4243"}]
    assert value(page, "fleetscope_gpu_process_utilization_ratio", gpu="1", pid="502") == pytest.approx(0.7)


def test_a_dra_claim_labels_the_gpu_it_names(fake, make_collector, page_of):
    fake.devices[3].values["nvmlDeviceGetMinorNumber"] = 5  # DRA names GPUs by minor number
    claim = {"namespace": "ml", "pod": "trainer-0", "container": "main", "dra_claim_name": "one-gpu",
             "dra_claim_namespace": "ml", "dra_driver_name": "gpu.nvidia.com", "dra_pool_name": "node-a",
             "dra_device_name": "gpu-5"}
    page = page_of(make_collector(fake, holders=lambda: {"gpu-5": claim}))
    labels = next(lb for n, lb, _ in samples(page) if n == "fleetscope_gpu_utilization_ratio" and lb["gpu"] == "3")
    assert labels.items() >= claim.items()
    assert all("dra_claim_name" not in lb for n, lb, _ in samples(page)
               if n == "fleetscope_gpu_utilization_ratio" and lb["gpu"] != "3")


def test_dcgm_compat_keeps_the_job_labels(fake, make_collector, page_of):
    page = page_of(make_collector(fake, compat_dcgm=True, holders=lambda: {"2": {"hpc_job": "4242"}}))
    assert values(page, "DCGM_FI_DEV_GPU_UTIL", gpu="2", hpc_job="4242")
