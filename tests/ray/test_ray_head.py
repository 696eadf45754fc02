"""The RayHead harness against a real Ray: it comes up on loopback with its metrics page answering, a driver
reaches it, and stopping one head ends its processes and folder while another head beside it keeps running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from fleetscope.localstack.process import http_ok, port_open
from fleetscope.localstack.ray import RayHead, _group_alive

DRIVER = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
node = ray.nodes()[0]
print(json.dumps({"answer": ray.get(ray.remote(lambda: 6 * 7).remote()),
                  "node_address": node["NodeManagerAddress"], "cpus": node["Resources"]["CPU"]}))
"""


def run_driver(head: RayHead) -> dict:
    done = subprocess.run([sys.executable, "-c", DRIVER, head.address], capture_output=True, text=True,
                          env={**os.environ, **head.environment}, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_head_serves_drivers_and_metrics_and_stops_alone(tmp_path):
    first = RayHead(tmp_path / "first", num_cpus=2).start()
    try:
        temp_dir = first.session_dir.parent
        assert str(first.session_dir).startswith("/tmp/fsray") and first.session_dir.is_dir()
        assert first.address.startswith("127.0.0.1:") and first.metrics_url.startswith("http://127.0.0.1:")
        assert run_driver(first) == {"answer": 42, "node_address": "127.0.0.1", "cpus": 2.0}
        with urllib.request.urlopen(first.metrics_url, timeout=10) as response:
            assert response.status == 200 and b"# TYPE" in response.read()

        with RayHead(tmp_path / "second", num_cpus=1) as second:
            assert second.address != first.address and second.metrics_url != first.metrics_url
            second_group, second_temp = second.pid, second.session_dir.parent
        assert second_group is not None and not _group_alive(second_group)
        assert not second_temp.exists()
        assert http_ok(first.metrics_url, timeout=5) and port_open(first.gcs_port)

        group = first.pid
    finally:
        first.stop()
    assert group is not None and not _group_alive(group)
    assert not temp_dir.exists() and not port_open(first.gcs_port)
    first.stop()  # a second stop does nothing


def test_a_head_not_started_says_so(tmp_path):
    head = RayHead(tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        _ = head.session_dir
    with pytest.raises(RuntimeError, match="dashboard=True"):
        _ = head.dashboard_url
    head.stop()
