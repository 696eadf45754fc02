"""A driver that gives a Ray head something to report: tasks (finished, and one no node can take), an actor, objects
enough to spill (the head runs with spilling from the first byte, SPILL_EVERYTHING), and a small Serve application
on a free loopback port. It runs in its own process, as a user's driver does, prints one JSON line once all is in
place, and keeps its tasks, actor and objects alive until it is stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fleetscope.localstack.process import free_port
from fleetscope.localstack.ray import RayHead

# Ray's own switches (RAY_<setting> is read for every RayConfig setting): spill as soon as the store holds
# anything, whatever the size, so that a small workload spills on any machine.
SPILL_EVERYTHING = {"RAY_object_spilling_threshold": "0.0001", "RAY_min_spilling_size": "0"}

DRIVER = """
import json, sys, time
import ray
from ray import serve

ray.init(address=sys.argv[1], logging_level="ERROR")

@ray.remote
def square(x):
    return x * x

@ray.remote
class Counter:
    def __init__(self):
        self.count = 0
    def add(self):
        self.count += 1
        return self.count

assert ray.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
counter = Counter.remote()
ray.get([counter.add.remote() for _ in range(5)])
objects = [ray.put(b"x" * 5_000_000) for _ in range(4)]
infeasible = square.options(num_cpus=64).remote(0)  # no node has 64 CPUs: PENDING_NODE_ASSIGNMENT for good

@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class Echo:
    def __call__(self, request):
        return "echo"

serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[2])})
serve.run(Echo.bind(), name="echo", route_prefix="/echo")
print(json.dumps({"ready": True}), flush=True)
while True:
    time.sleep(1)
"""


class Workload:
    """The driver process; stop() ends it (its tasks and objects go with it, the Serve application stays with the
    head, which stop() of the head ends)."""

    def __init__(self, head: RayHead, log_path: Path) -> None:
        self.serve_port = free_port()
        self.serve_url = f"http://127.0.0.1:{self.serve_port}/echo"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed by stop()
        self._process = subprocess.Popen([sys.executable, "-c", DRIVER, head.address, str(self.serve_port)],
                                         stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **head.environment}, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the driver says all is in place; its log's tail if it ends first or takes longer than timeout."""
        assert self._process.stdout is not None
        os.set_blocking(self._process.stdout.fileno(), False)
        deadline, output = time.monotonic() + timeout, b""
        while time.monotonic() < deadline:
            output += self._process.stdout.read() or b""
            if b'"ready": true' in output:
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the Ray driver was not ready within {timeout:.0f}s (exit {self._process.poll()}):\n"
                           f"{Path(self._log.name).read_text(errors='replace')[-3000:]}")

    def requests(self, count: int) -> None:
        for _ in range(count):
            with urllib.request.urlopen(self.serve_url, timeout=10) as response:
                assert response.read() == b"echo"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._log.close()
