"""GPUs held by Ray workers carry the worker's Ray job, actor class and Serve deployment: from the process title
and environment Ray gives its workers, and from the Ray dashboard's view of the node. The last test starts a real
Ray cluster (CPU only, two GPUs declared) whose actor and Serve replica the fake NVML reports as its GPU processes."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fleetscope.exporters.attribution.processes import ProcessAttribution
from fleetscope.exporters.attribution.ray import (
    DASHBOARD_TIMEOUT_SECONDS,
    MAX_DASHBOARD_BYTES,
    RayAttribution,
    RayDashboard,
    labels_of_title,
)
from tests.support.exposition import samples, value
from tests.support.ray_dashboard import RayDashboardStub, actor, node

ray = pytest.importorskip("ray")

MiB = 1024 * 1024
NO_MIG = 0xFFFFFFFF


def _worker(proc: Path, pid: int, title: str, job: str | None = None) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(title.encode() + b"\0" * 64)  # setproctitle pads with NULs
    environment = [b"PATH=/usr/bin", b"RAY_RAYLET_PID=7"] + ([f"RAY_JOB_ID={job}".encode()] if job else [])
    (proc / str(pid) / "environ").write_bytes(b"\0".join(environment) + b"\0")
    (proc / str(pid) / "cgroup").write_text("0::/\n")


@pytest.mark.parametrize(("title", "expected"), [
    ("ray::ServeReplica:chat:LLMServer", {"ray_serve_application": "chat", "ray_serve_deployment": "LLMServer"}),
    ("ray::ServeReplica:chat:LLMServer.handle_request", {"ray_serve_application": "chat",
                                                         "ray_serve_deployment": "LLMServer"}),
    ("ray::Trainer", {}), ("ray::Trainer.step", {}), ("ray::IDLE", {}), ("python3 serve.py", {}),
    ("ray::ServeReplica:only-one-part", {}), ("ray::ServeReplica::", {}),
])
def test_a_serve_replica_is_named_by_its_title_and_nothing_else_is(title, expected):
    assert labels_of_title(title) == expected


def test_a_workers_job_comes_from_its_environment_unless_it_is_the_nil_job(tmp_path):
    _worker(tmp_path, 10, "ray::ServeReplica:iris:Classifier", job="02000000")
    _worker(tmp_path, 11, "ray::Trainer", job="ffffffff")  # prestarted for the pool
    _worker(tmp_path, 12, "ray::Trainer", job="'; DROP TABLE")
    _worker(tmp_path, 13, "python3 train.py", job="03000000")  # not a Ray worker: RAY_JOB_ID alone says nothing
    attribution = ProcessAttribution(slurm_jobs=False, proc=tmp_path, ray=RayAttribution(tmp_path))
    gpu, per_process = attribution.read([10, 11, 12, 13])
    assert per_process == {10: {"ray_job": "02000000", "ray_serve_application": "iris",
                                "ray_serve_deployment": "Classifier"}, 11: {}, 12: {}, 13: {}}
    assert gpu == {}  # the processes disagree
    assert attribution.read([10])[0] == per_process[10]


def test_a_pooled_worker_is_read_again_until_its_job_is_known(tmp_path):
    _worker(tmp_path, 20, "ray::IDLE", job="ffffffff")
    attribution = ProcessAttribution(slurm_jobs=False, proc=tmp_path, ray=RayAttribution(tmp_path))
    assert attribution.read([20])[1] == {20: {}}
    (tmp_path / "20" / "cmdline").write_bytes(b"ray::ServeReplica:a:b\0")
    (tmp_path / "20" / "environ").write_bytes(b"RAY_JOB_ID=05000000\0")
    assert attribution.read([20])[1] == {20: {"ray_job": "05000000", "ray_serve_application": "a",
                                              "ray_serve_deployment": "b"}}
    (tmp_path / "20" / "environ").write_bytes(b"RAY_JOB_ID=06000000\0")  # settled: a worker keeps its job
    assert attribution.read([20])[1][20]["ray_job"] == "05000000"


def test_a_hostile_title_is_read_only_to_its_bound(tmp_path):
    _worker(tmp_path, 30, "ray::ServeReplica:" + "a" * 5000 + ":b", job="07000000")
    labels = RayAttribution(tmp_path).labels(30)[0]
    assert labels == {"ray_job": "07000000"}  # the title was cut before the deployment: no Serve labels


@pytest.fixture
def dashboard():
    token = secrets.token_hex(16)
    served = RayDashboardStub(token, [node("n1", "gpu-7"), node("n2", "gpu-8")], {
        "n1": {"a": actor(40, "01000000", "Trainer"), "b": actor(41, "01000000", "Gone", state="DEAD")},
        "n2": {"c": actor(40, "09000000", "Elsewhere")},  # the same pid on another node
    })
    yield served
    served.close()


def test_the_dashboard_names_a_pooled_actors_job_and_class_on_this_node_only(tmp_path, dashboard):
    token_file = tmp_path / "token"
    token_file.write_text(dashboard.token + "\n")
    proc = tmp_path / "proc"
    _worker(proc, 40, "ray::Trainer.step", job="ffffffff")
    _worker(proc, 41, "ray::Gone", job="ffffffff")
    now = [0.0]
    source = RayDashboard(dashboard.url, "gpu-7", token_file, refresh=15.0, clock=lambda: now[0])
    attribution = ProcessAttribution(slurm_jobs=False, proc=proc, ray=RayAttribution(proc, source))
    gpu, per_process = attribution.read([40, 41])
    assert per_process == {40: {"ray_job": "01000000", "ray_actor_class": "Trainer"}, 41: {}}
    assert dashboard.requests == 2  # the node list and this node's page, once for both processes
    attribution.read([40, 41])
    assert dashboard.requests == 2  # 40 is settled; 41 waits for the next refresh
    now[0] = 15.0
    attribution.read([40, 41])
    assert dashboard.requests == 4


@pytest.mark.parametrize("problem", ["token", "unreachable", "slow", "oversized", "nested", "not json",
                                     "not an object", "wrong shapes", "no node"])
def test_a_dashboard_that_cannot_answer_leaves_the_title_and_environment(tmp_path, dashboard, caplog, problem):
    token_file = tmp_path / "token"
    token_file.write_text("wrong" if problem == "token" else dashboard.token)
    url, hostname = dashboard.url, "gpu-7"
    if problem == "unreachable":
        dashboard.close()
    elif problem == "oversized":
        dashboard.body_override = b"[" + b"0," * (MAX_DASHBOARD_BYTES // 2) + b"0]"
    elif problem == "slow":
        dashboard.delay = DASHBOARD_TIMEOUT_SECONDS + 1
    elif problem == "nested":
        dashboard.body_override = b"[" * 100_000 + b"]" * 100_000
    elif problem == "wrong shapes":
        dashboard.body_override = b'{"data": {"summary": "gpu-7", "detail": []}}'
    elif problem == "not json":
        dashboard.body_override = b"<html>login</html>"
    elif problem == "not an object":
        dashboard.body_override = b"[1, 2]"
    elif problem == "no node":
        hostname = "gpu-99"
    proc = tmp_path / "proc"
    _worker(proc, 50, "ray::ServeReplica:chat:LLM", job="0a000000")
    source = RayDashboard(url, hostname, token_file)
    assert RayAttribution(proc, source).labels(50) == (
        {"ray_job": "0a000000", "ray_serve_application": "chat", "ray_serve_deployment": "LLM"}, False)
    assert [r for r in caplog.records if "Ray dashboard" in r.getMessage()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_DRIVER = textwrap.dedent("""
    import json, os, sys, time, urllib.request
    import ray
    from ray import serve

    ray.init(num_cpus=4, num_gpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=int(sys.argv[1]), _temp_dir=sys.argv[2])

    @ray.remote(num_gpus=1)
    class Trainer:
        def pid(self):
            return os.getpid()

    @serve.deployment(ray_actor_options={"num_gpus": 1, "num_cpus": 0})
    class Embedder:
        def __call__(self, request):
            return str(os.getpid())

    trainer = Trainer.remote()
    trainer_pid = ray.get(trainer.pid.remote())
    serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[3])})
    serve.run(Embedder.bind(), name="embeddings", route_prefix="/embed")
    replica_pid = int(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[3]}/embed", timeout=60).read())
    print(json.dumps({"job": ray.get_runtime_context().get_job_id(), "trainer": trainer_pid,
                      "replica": replica_pid}), flush=True)
    sys.stdin.read()  # until the test closes it
""")


@pytest.fixture(scope="module")
def ray_driver():
    workdir = Path(tempfile.mkdtemp(dir="/tmp", prefix="fsray"))  # Ray's socket paths are length-limited
    token = secrets.token_hex(32)
    (workdir / "token").write_text(token)
    dashboard_port = _free_port()
    environment = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(workdir / "token"),
                   "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, str(dashboard_port), str(workdir / "r"),
                               str(_free_port())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=environment, start_new_session=True)
    try:
        line = _read_line(driver, timeout=180)
        yield json.loads(line), f"http://127.0.0.1:{dashboard_port}", workdir / "token"
    finally:
        driver.stdin.close()  # type: ignore[union-attr]
        try:
            os.killpg(driver.pid, signal.SIGTERM)
            driver.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(process.stdout.readline()), daemon=True)  # type: ignore
    reader.start()
    reader.join(timeout)
    if not found or not found[0]:
        raise AssertionError(f"the Ray driver printed nothing in {timeout}s (exit code {process.poll()})")
    return found[0]


def test_real_ray_workers_carry_their_job_actor_and_serve_deployment_in_gpu_series(
        ray_driver, fake, make_collector, page_of):
    started, url, token_file = ray_driver
    for index, pid in enumerate((started["trainer"], started["replica"])):
        fake.devices[index].values["nvmlDeviceGetComputeRunningProcesses"] = [
            {"pid": pid, "usedGpuMemory": 1024 * MiB, "gpuInstanceId": NO_MIG, "computeInstanceId": NO_MIG}]
    source = RayDashboard(url, socket.gethostname(), token_file, refresh=0.0)
    attribution = ProcessAttribution(proc=Path("/proc"), ray=RayAttribution(Path("/proc"), source))
    deadline = time.monotonic() + 30
    while True:  # the dashboard lists an actor a moment after it starts; until then the process is read again
        page = page_of(make_collector(fake, attribution=attribution))
        classes = {labels.get("ray_actor_class") for name, labels, _ in samples(page)
                   if name == "fleetscope_gpu_power_watts"}
        if "Trainer" in classes or time.monotonic() > deadline:
            break
        time.sleep(1)
    job = started["job"]
    assert value(page, "fleetscope_gpu_power_watts", gpu="0", ray_job=job, ray_actor_class="Trainer") > 0
    assert value(page, "fleetscope_gpu_power_watts", gpu="1", ray_job=job, ray_serve_application="embeddings",
                 ray_serve_deployment="Embedder") > 0
    process = {labels["pid"]: labels for name, labels, _ in samples(page)
               if name == "fleetscope_gpu_process_memory_used_bytes"}
    assert process[str(started["trainer"])]["ray_actor_class"] == "Trainer"
    assert process[str(started["replica"])]["ray_serve_deployment"] == "Embedder"
