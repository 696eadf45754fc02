"""Declaring the GPUs a model server uses, from the environment as CUDA and the NVIDIA Container
Toolkit set it, and serving them as fleetscope_inference_gpu_info."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import generate_latest

from fleetscope.exporters.inference import InferenceMetrics
from fleetscope.exporters.inference.gpus import GpuDeclarationError, visible_gpus
from fleetscope.exporters.inference.prometheus import registry_for
from fleetscope.simulation.gpu import simulated_nvml
from tests.support.exposition import samples

A, B = "GPU-5e1f0c3a-0000-4b7e-9a2c-0d3f6e8b0000", "GPU-5e1f0c3a-0001-4b7e-9a2c-0d3f6e8b0001"


def uuids_of(nvml) -> list[str]:
    nvml.nvmlInit()
    try:
        return [nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(nvml.nvmlDeviceGetCount())]
    finally:
        nvml.nvmlShutdown()


def test_uuids_are_taken_as_they_are_and_cuda_comes_before_the_container():
    environ = {"CUDA_VISIBLE_DEVICES": f"{B}, MIG-1a2b3c4d-0000-5555-aaaa-000000000001,{B}",
               "NVIDIA_VISIBLE_DEVICES": A}
    assert visible_gpus(environ) == (B, "MIG-1a2b3c4d-0000-5555-aaaa-000000000001")
    assert visible_gpus({"NVIDIA_VISIBLE_DEVICES": A}) == (A,)


@pytest.mark.parametrize("value", ["", "none", "void", "NoDevFiles", "-1"])
def test_no_gpus_named_means_none(value):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": value, "NVIDIA_VISIBLE_DEVICES": A}) == ()
    assert visible_gpus({}) == ()


def test_a_negative_cuda_entry_ends_the_list_as_cuda_reads_it():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": f"{A},-1,{B}"}) == (A,)


def test_all_and_container_indices_are_named_by_nvml():
    nvml = simulated_nvml(gpus=4)
    every = uuids_of(nvml)
    assert visible_gpus({"NVIDIA_VISIBLE_DEVICES": "all"}, nvml) == tuple(every)
    assert visible_gpus({"NVIDIA_VISIBLE_DEVICES": "2,0"}, nvml) == (every[2], every[0])


def test_cuda_indices_are_mapped_only_in_pci_bus_order():
    nvml = simulated_nvml(gpus=4)
    every = uuids_of(nvml)
    with pytest.raises(GpuDeclarationError, match="CUDA_DEVICE_ORDER=PCI_BUS_ID"):
        visible_gpus({"CUDA_VISIBLE_DEVICES": "1"}, nvml)
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, nvml) == (every[1],)
    single = simulated_nvml(gpus=1)
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0"}, single) == tuple(uuids_of(single))


@pytest.mark.parametrize("value", ["7", "-1", "GPU0", "0,x"])
def test_entries_that_name_no_gpu_are_refused_by_name(value):
    with pytest.raises(GpuDeclarationError, match="neither a GPU UUID nor an index"):
        visible_gpus({"NVIDIA_VISIBLE_DEVICES": value}, simulated_nvml(gpus=4))


def test_indices_without_nvml_ask_for_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    with pytest.raises(GpuDeclarationError, match="needs NVML"):
        visible_gpus({"NVIDIA_VISIBLE_DEVICES": "0"})


def test_declared_gpus_are_served_with_the_host(monkeypatch):
    monkeypatch.setenv("NODE_NAME", "gpu-node-7")
    metrics = InferenceMetrics(engine="my-server", gpus=[A, B, A])
    page = generate_latest(registry_for(metrics)).decode()
    info = [labels for name, labels, value in samples(page) if name == "fleetscope_inference_gpu_info" and value == 1]
    assert info == [{"engine": "my-server", "hostname": "gpu-node-7", "uuid": A},
                    {"engine": "my-server", "hostname": "gpu-node-7", "uuid": B}]
    assert InferenceMetrics(hostname="other").hostname == "other"
    assert "fleetscope_inference_gpu_info" not in generate_latest(registry_for(InferenceMetrics())).decode()


@pytest.mark.parametrize("gpus, error", [(A, TypeError), ([A, 7], TypeError), ([""], ValueError)])
def test_gpus_that_are_not_uuids_are_refused(gpus, error):
    with pytest.raises(error):
        InferenceMetrics(gpus=gpus)


def test_the_example_model_server_takes_gpus_listed_or_from_the_environment(monkeypatch):
    from fleetscope import log
    from fleetscope.example.server import _gpus

    assert _gpus(f" {A},{B} ,") == (A, B)
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", B)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert _gpus(None) == (B,)
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "nine")
    with pytest.raises(log.UserError, match="'nine' is neither a GPU UUID nor an index; or give --gpus"):
        _gpus(None)


def test_indices_on_a_machine_without_the_driver_are_a_clear_error():
    class NoDriver:
        def nvmlInit(self):
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    with pytest.raises(GpuDeclarationError, match="NVML cannot name them: libnvidia-ml.so.1"):
        visible_gpus({"NVIDIA_VISIBLE_DEVICES": "0"}, NoDriver())
