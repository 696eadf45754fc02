"""The exporter as users deploy it: a real process, checked by promtool, scraped by a real Prometheus."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request

import bcrypt
import pytest
import yaml

from fleetscope.cli import build_parser
from fleetscope.exporters import catalog
from fleetscope.exporters.catalog import gpu as gpu_catalog
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.simulation.gpu import simulated_nvml
from fleetscope.simulation.node import build
from fleetscope.simulation.nvml import FakeMig
from tests.conftest import promtool_check_metrics
from tests.support.exposition import samples, unserved
from tests.support.inspector import coll, dump_v43, p2p
from tests.support.kubelet import encode_response, start_kubelet
from tests.support.ras import FakeRas
from tests.support.ras import report as ras_report
from tests.support.ray_dashboard import RayDashboardStub, actor, node

pytestmark = pytest.mark.integration


def fetch(address: str, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as response:
        return response.read().decode()


def test_promtool_accepts_the_simulated_page(exporter_process):
    address = exporter_process("--simulate", "--collector.gpu.poll-interval=1s")
    page = fetch(address)
    result = promtool_check_metrics(page)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    # The exporter process watches itself: its process and Python runtime, and its version.
    names = {name for name, _, _ in samples(page)}
    assert {"process_start_time_seconds", "process_resident_memory_bytes", "python_info",
            "fleetscope_build_info"} <= names


def test_prometheus_scrapes_the_exporter(exporter_process, prometheus):
    # Polled at the scrape interval (1s here), as the README asks: a counter read every 15 s but
    # scraped every second would rise in steps, and rate() over a few seconds would see bursts.
    address = exporter_process("--simulate", "--collector.gpu.poll-interval=1s", "--collector.fabric.poll-interval=1s")
    server = prometheus([prometheus_targets("fleetscope", address)])
    server.wait_for('up{job="fleetscope"} == 1', timeout=30)
    assert len(server.wait_for("fleetscope_gpu_up == 1", lambda r: len(r) == 8, timeout=30)) == 8
    # The energy counter rises between scrapes, so rate() over it is the power draw.
    rates = server.wait_for("rate(fleetscope_gpu_energy_joules_total[5s]) > 0", lambda r: len(r) == 8, timeout=30)
    assert all(0 < float(r["value"][1]) < 750 for r in rates)
    models = server.query("count by (model_name) (fleetscope_gpu_info)")
    assert models[0]["metric"]["model_name"] == "NVIDIA H100 80GB HBM3"
    assert float(server.query('fleetscope_exporter_collector_success{collector="gpu"}')[0]["value"][1]) == 1
    # The simulated fabric: 8 InfiniBand ports and a RoCE one, carrying traffic.
    fabric = server.wait_for("rate(fleetscope_fabric_port_transmit_bytes_total[5s]) > 0", lambda r: len(r) >= 8,
                             timeout=30)
    assert all(float(r["value"][1]) <= 5e10 for r in fabric), "no port sends faster than its 400 Gb/s link"


def prometheus_targets(job: str, address: str, **options) -> dict:
    return Prometheus.targets(job, [address], **options)


def test_prometheus_scrapes_over_tls_with_basic_auth(exporter_process, prometheus, tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {"prometheus": bcrypt.hashpw(b"scrape-me", bcrypt.gensalt(4)).decode()}}))
    address = exporter_process("--simulate", f"--web.config.file={web}", scheme="https")
    server = prometheus([prometheus_targets(
        "secure", address, scheme="https", tls_config={"ca_file": str(cert)},
        basic_auth={"username": "prometheus", "password": "scrape-me"})])
    server.wait_for('up{job="secure"} == 1', timeout=30)
    assert len(server.wait_for('fleetscope_gpu_up{job="secure"}', lambda r: len(r) == 8)) == 8


def test_sigterm_stops_the_exporter_cleanly(exporter_process):
    exporter_process("--simulate")
    process = exporter_process.processes[-1]._process
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert "stopped" in exporter_process.processes[-1].log_tail()


def test_without_a_driver_the_exporter_runs_and_reports_the_gpu_collector_failing(exporter_process):
    # No --simulate: this machine has no NVIDIA driver, so NVML cannot start.
    import pynvml

    try:
        pynvml.nvmlInit()
        pytest.skip("this machine has a working NVIDIA driver")
    except pynvml.NVMLError:
        pass
    address = exporter_process()
    page = fetch(address)
    assert 'fleetscope_exporter_collector_success{collector="gpu"} 0.0' in page
    assert "fleetscope_build_info" in page
    assert "NVML library not found" in exporter_process.processes[-1].log_tail()
    assert promtool_check_metrics(page).returncode == 0


def _everything_supported():
    """A simulated node where every cataloged metric has something to say: fans, retired pages,
    a GPU in MIG mode with its instances, a pod, an XID, an NVML error."""
    fake = simulated_nvml(gpus=2)
    gpu0 = fake.devices[0]
    gpu0.values.update({"nvmlDeviceGetNumFans": 1, "nvmlDeviceGetFanSpeed_v2/0": 35})
    gpu0.fields.update({"NVML_FI_DEV_RETIRED_SBE": 2, "NVML_FI_DEV_RETIRED_DBE": 0, "NVML_FI_DEV_RETIRED_PENDING": 0})
    fake.enable_mig(1, [FakeMig("MIG-1111", 1, "7g.80gb", 80 << 30, 1 << 30)])
    fake.fail("nvmlDeviceGetDecoderUtilization", "NVML_ERROR_UNKNOWN", gpu=1)
    return fake


def test_every_cataloged_metric_appears_on_a_live_page(monkeypatch, tmp_path):
    from fleetscope.simulation import gpu as simulation

    fake = _everything_supported()
    monkeypatch.setattr(simulation, "simulated_nvml", lambda **kwargs: fake)
    socket_path = tmp_path / "kubelet.sock"
    # GPU 0 is held through the device plugin and a DRA claim, and runs a Slurm job's process in a pod.
    fake.devices[0].values["nvmlDeviceGetMinorNumber"] = 0
    response = encode_response([("ml", "train", [("main", [("nvidia.com/gpu", [
        fake.devices[0].values["nvmlDeviceGetUUID"]])])])],
        claims={("train", "main"): [("one-gpu", "ml", [("gpu.nvidia.com", "node-a", "gpu-0")])]})
    grpc_server = start_kubelet(socket_path, lambda context: response)
    (tmp_path / "hpc-jobs").mkdir()
    (tmp_path / "hpc-jobs" / "0").write_text("4242\n")
    process = tmp_path / "proc" / "41230"  # the simulated process on GPU 0
    process.mkdir(parents=True)
    (process / "cgroup").write_text("0::/kubepods/pod1f2e3d4c-5b6a-4789-9abc-def012345678/0123abcd\n")
    # ... and is a Ray Serve replica, whose actor the Ray dashboard lists on this node.
    (process / "cmdline").write_bytes(b"ray::ServeReplica:chat:LLMServer\0")
    (process / "environ").write_bytes(b"RAY_JOB_ID=02000000\0")
    (tmp_path / "ray-token").write_text("test-token-0123456789")
    dashboard = RayDashboardStub("test-token-0123456789", [node("n1", "node-a")],
                                 {"n1": {"a": actor(41230, "02000000", "ServeReplica:chat:LLMServer",
                                                         name="SERVE_REPLICA::chat#LLMServer#abcd1234")}})
    inspector = tmp_path / "nccl"
    inspector.mkdir()
    from types import SimpleNamespace

    from fleetscope.simulation import nccl as nccl_simulation

    # In place of the simulated job: records with every kind of line, written below.
    from tests.exporters.test_nccl_debuglog import LOG

    (inspector / "nccl-debug.log").write_text(LOG)
    monkeypatch.setattr(nccl_simulation, "SimulatedJob",
                        lambda **kwargs: SimpleNamespace(root=inspector, debug_log=inspector / "nccl-debug.log",
                                                         advance=lambda: None, close=lambda: None))
    for rank in range(2):  # two local ranks of a job, so lateness and skew have something to compare
        (inspector / f"node-a-pid{rank}.log").write_text("\n".join(
            dump_v43([coll(1, exec_us=1000 + rank), coll(2), p2p(1)], rank=rank, pid=rank, dropped=3)
            + ["a corrupt line"]) + "\n")
    ras_service = FakeRas()
    ras_service.answer = ras_report({"0x1": {0: 3, 1: 2}}, missing={"0x1": [(2, True)]}, errors={"0x1": [1]})
    from fleetscope.exporters.health import record

    # as `fleetscope check --active --record` leaves it: the last check, and the last active one
    record.write(tmp_path / "last-check.json", time.time() - 60, [], active=True)
    args = build_parser().parse_args(["exporter", "--simulate", "--web.listen-address=127.0.0.1:0",
                                      f"--collector.health.check-record={tmp_path / 'last-check.json'}",
                                      "--collector.gpu.poll-interval=0s",
                                      f"--collector.gpu.pod-resources-socket={socket_path}",
                                      f"--collector.gpu.hpc-job-mapping-dir={tmp_path / 'hpc-jobs'}",
                                      "--collector.gpu.pod-uid", f"--path.procfs={tmp_path / 'proc'}",
                                      "--collector.hostname=node-a", f"--collector.gpu.ray-dashboard={dashboard.url}",
                                      f"--collector.gpu.ray-token-file={tmp_path / 'ray-token'}",
                                      f"--collector.nccl.ras-address=127.0.0.1:{ras_service.address[1]}",
                                      "--collector.nccl.ras-hang-after=0s"])
    registry, server = build(args)
    server.start()
    try:
        fetch(f"127.0.0.1:{server.port}")
        fake.inject_xid(0, 79)
        deadline = time.monotonic() + 10
        page = ""
        while time.monotonic() < deadline and "fleetscope_gpu_last_xid{" not in page:
            time.sleep(0.1)
            page = fetch(f"127.0.0.1:{server.port}")
        assert unserved(page, catalog.NODE_EXPORTER) == []
        pods = [labels for n, labels, _ in samples(page)
                if n == "fleetscope_gpu_power_watts" and labels.get("pod") == "train"]
        assert len(pods) == 1
        # Every job label the catalog declares, on the GPU that has them all.
        assert set(gpu_catalog.JOB_LABELS) <= set(pods[0]), set(gpu_catalog.JOB_LABELS) - set(pods[0])
        result = promtool_check_metrics(page)
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    finally:
        server.shutdown()
        registry.close()
        grpc_server.stop(grace=None)
        ras_service.close()
        dashboard.close()

