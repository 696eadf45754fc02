"""A fleet that runs dcgm-exporter switches to fleetscope: the queries of NVIDIA's published dashboard and
autoscaling examples, unchanged, return data from the simulated exporter in --compat.dcgm mode, scraped by a
real Prometheus."""

from __future__ import annotations

import pytest

from fleetscope.cli import build_parser
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.simulation.gpu import simulated_nvml
from fleetscope.simulation.node import build
from tests.support.kubelet import encode_response, start_kubelet

pytestmark = pytest.mark.integration

# NVIDIA/dcgm-exporter grafana/dcgm-exporter-dashboard.json (Grafana id 12239; commit 068798b), every panel's
# query and both template variables, with $Hostname and $gpu as Grafana sends "All".
DASHBOARD_QUERIES = (
    'max(DCGM_FI_DEV_GPU_TEMP{Hostname=~"$Hostname", gpu=~"$gpu"}) by (Hostname, gpu, uuid)',
    'avg(DCGM_FI_DEV_GPU_TEMP{Hostname=~"$Hostname", gpu=~"$gpu"})',
    'max(DCGM_FI_DEV_POWER_USAGE{Hostname=~"$Hostname", gpu=~"$gpu"}) by (Hostname, gpu, uuid)',
    'sum(max(DCGM_FI_DEV_POWER_USAGE{Hostname=~"$Hostname", gpu=~"$gpu"}) by (gpu))',
    'max(DCGM_FI_DEV_SM_CLOCK{Hostname=~"$Hostname", gpu=~"$gpu"} * 1000000) by (Hostname, UUID, gpu)',
    'max(DCGM_FI_PROF_GR_ENGINE_ACTIVE{Hostname=~"$Hostname", gpu=~"$gpu"}) by (Hostname, gpu, GPU_I_ID, '
    'GPU_I_PROFILE)',
    'max(DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{Hostname=~"$Hostname", gpu=~"$gpu"}) by (Hostname, gpu, GPU_I_ID, '
    'GPU_I_PROFILE)',
    'max(DCGM_FI_DEV_FB_USED{Hostname=~"$Hostname", gpu=~"$gpu"}) by (Hostname, gpu, GPU_I_ID, GPU_I_PROFILE)',
)
DASHBOARD_VARIABLES = (("DCGM_FI_DEV_FB_FREE", "Hostname"), ('DCGM_FI_DEV_FB_FREE{Hostname=~"$Hostname"}', "gpu"))
# Autoscaling on dcgm-exporter's series: NVIDIA/dcgm-exporter grafana/keda-gpu-scaling.json (its KEDA triggers'
# signals, commit eaa6bae), and the prometheus-adapter rule of NVIDIA's "GPU telemetry in Kubernetes" guide,
# whose HPA scales on DCGM_FI_DEV_GPU_UTIL averaged per pod.
AUTOSCALING_QUERIES = (
    'sum(DCGM_FI_PROF_GR_ENGINE_ACTIVE{pod=~".*prefill.*",namespace="dynamo-system"})',
    'avg(DCGM_FI_DEV_FB_USED{pod=~".*decode.*",namespace="dynamo-system"} / '
    '(DCGM_FI_DEV_FB_USED{pod=~".*decode.*",namespace="dynamo-system"} + '
    'DCGM_FI_DEV_FB_FREE{pod=~".*decode.*",namespace="dynamo-system"}))',
    'avg(DCGM_FI_DEV_GPU_UTIL{namespace="dynamo-system",pod!=""}) by (pod)',
)


def test_nvidias_dashboard_and_autoscaling_queries_return_data(monkeypatch, prometheus, tmp_path):
    from fleetscope.simulation import gpu as simulation

    fake = simulated_nvml(gpus=4)
    monkeypatch.setattr(simulation, "simulated_nvml", lambda **kwargs: fake)
    uuid = [device.values["nvmlDeviceGetUUID"] for device in fake.devices]
    socket_path = tmp_path / "kubelet.sock"
    response = encode_response([
        ("dynamo-system", "llama-prefill-0", [("worker", [("nvidia.com/gpu", [uuid[0], uuid[1]])])]),
        ("dynamo-system", "llama-decode-0", [("worker", [("nvidia.com/gpu", [uuid[2]])])]),
    ])
    kubelet = start_kubelet(socket_path, lambda context: response)
    args = build_parser().parse_args(["exporter", "--simulate", "--simulate.gpus=4", "--compat.dcgm",
                                      "--web.listen-address=127.0.0.1:0", "--collector.gpu.poll-interval=1s",
                                      "--no-collector.nccl", "--no-collector.fabric",
                                      f"--collector.gpu.pod-resources-socket={socket_path}",
                                      "--collector.hostname=gpu-node-7"])
    registry, server = build(args)
    server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        prom = prometheus([Prometheus.targets("dcgm", [address])])
        prom.wait_for("DCGM_FI_PROF_GR_ENGINE_ACTIVE", lambda r: len(r) == 4, timeout=30)
        for expr in DASHBOARD_QUERIES:
            result = prom.query(expr.replace("$Hostname", ".*").replace("$gpu", ".*"))
            assert result, f"no data for the dashboard's {expr}"
        temperatures = prom.query(DASHBOARD_QUERIES[0].replace("$Hostname", ".*").replace("$gpu", ".*"))
        assert {r["metric"]["gpu"] for r in temperatures} == {"0", "1", "2", "3"}
        assert all(25 < float(r["value"][1]) < 95 for r in temperatures), "degrees Celsius"
        clocks = prom.query(DASHBOARD_QUERIES[4].replace("$Hostname", ".*").replace("$gpu", ".*"))
        assert all(3e8 <= float(r["value"][1]) <= 2.1e9 for r in clocks), "MHz times 1e6 is hertz"
        for selector, label in DASHBOARD_VARIABLES:
            found = prom.api("series", **{"match[]": selector.replace("$Hostname", "gpu-node-7")})
            assert {series[label] for series in found} >= ({"gpu-node-7"} if label == "Hostname" else {"0", "3"})
        for expr in AUTOSCALING_QUERIES:
            assert prom.query(expr), f"no data for the autoscaling query {expr}"
        prefill = float(prom.query(AUTOSCALING_QUERIES[0])[0]["value"][1])
        assert 0 <= prefill <= 2, "a ratio per GPU, summed over the pod's two GPUs"
        pressure = float(prom.query(AUTOSCALING_QUERIES[1])[0]["value"][1])
        assert 0 < pressure < 1
        per_pod = {r["metric"]["pod"] for r in prom.query(AUTOSCALING_QUERIES[2])}
        assert per_pod == {"llama-prefill-0", "llama-decode-0"}
        # A counter without _total keeps its name, and rate() of its millijoules is the power draw in mW.
        power = prom.wait_for("rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[5s]) / 1000", lambda r: len(r) == 4)
        assert all(50 < float(r["value"][1]) < 750 for r in power)
    finally:
        server.shutdown()
        registry.close()
        kubelet.stop(grace=None)
