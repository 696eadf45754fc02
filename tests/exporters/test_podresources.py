"""Pod attribution against a real gRPC server speaking the kubelet's pod-resources API."""

from __future__ import annotations

import grpc
import pytest

from fleetscope.exporters.kubernetes import protowire
from fleetscope.exporters.kubernetes.podresources import LIST_METHOD, PodResources, parse_list_response
from tests.support.kubelet import encode_response, start_kubelet


@pytest.fixture
def kubelet(tmp_path):
    """A gRPC server on a unix socket answering List with whatever `response` holds."""
    state = {"response": b"", "code": None}

    def list_pods(context):
        if state["code"] is not None:
            context.abort(state["code"], "kubelet is unhappy")
        return state["response"]

    path = tmp_path / "kubelet.sock"
    server = start_kubelet(path, list_pods)
    state["path"] = str(path)
    yield state
    server.stop(grace=None)


def test_gpus_are_mapped_to_the_one_container_holding_them(kubelet):
    kubelet["response"] = encode_response([
        ("ml", "trainer-0", [("main", [("nvidia.com/gpu", ["GPU-aaa", "GPU-bbb"]), ("example.com/nic", ["nic0"])])]),
        ("serving", "llm-1", [("server", [("nvidia.com/mig-1g.10gb", ["MIG-ccc"])])]),
        # Time-sliced: two containers share GPU-shared, so neither is named.
        ("a", "p1", [("c", [("nvidia.com/gpu", ["GPU-shared"])])]),
        ("b", "p2", [("c", [("nvidia.com/gpu", ["GPU-shared"])])]),
    ])
    client = PodResources(kubelet["path"])
    owners = client.gpu_pods()
    client.close()
    assert owners == {
        "GPU-aaa": {"namespace": "ml", "pod": "trainer-0", "container": "main"},
        "GPU-bbb": {"namespace": "ml", "pod": "trainer-0", "container": "main"},
        "MIG-ccc": {"namespace": "serving", "pod": "llm-1", "container": "server"},
    }


def test_dra_claims_name_their_gpus_and_time_sliced_replicas_their_gpu(kubelet):
    kubelet["response"] = encode_response(
        [("ml", "trainer-0", [("main", [])]), ("infer", "vllm-0", [("engine", [])]),
         ("nb", "notebook-3", [("jupyter", [("nvidia.com/gpu", ["GPU-ts::2"])])]),
         ("ml", "other", [("c", [("example.com/fpga", ["f0"])])])],
        claims={("trainer-0", "main"): [("two-gpus", "ml", [("gpu.nvidia.com", "node-a", "gpu-0"),
                                                          ("gpu.nvidia.com", "node-a", "gpu-1")])],
                ("vllm-0", "engine"): [("nic", "infer", [("rdma.example.com", "node-a", "mlx5_0")])]})
    client = PodResources(kubelet["path"])
    owners = client.gpu_pods()
    client.close()
    assert owners == {
        "gpu-0": {"namespace": "ml", "pod": "trainer-0", "container": "main", "dra_claim_name": "two-gpus",
                  "dra_claim_namespace": "ml", "dra_driver_name": "gpu.nvidia.com", "dra_pool_name": "node-a",
                  "dra_device_name": "gpu-0"},
        "gpu-1": {"namespace": "ml", "pod": "trainer-0", "container": "main", "dra_claim_name": "two-gpus",
                  "dra_claim_namespace": "ml", "dra_driver_name": "gpu.nvidia.com", "dra_pool_name": "node-a",
                  "dra_device_name": "gpu-1"},
        # A time-slicing replica held by one container alone names its GPU.
        "GPU-ts": {"namespace": "nb", "pod": "notebook-3", "container": "jupyter"},
    }


def test_label_values_are_bounded(kubelet):
    kubelet["response"] = encode_response([("ns", "p" * 1000, [("c", [("nvidia.com/gpu", ["GPU-x"])])])])
    client = PodResources(kubelet["path"])
    assert len(client.gpu_pods()["GPU-x"]["pod"]) == 128
    client.close()


def test_kubelet_errors_and_missing_socket_mean_no_labels(kubelet, tmp_path, caplog):
    kubelet["code"] = grpc.StatusCode.UNAVAILABLE
    client = PodResources(kubelet["path"], timeout_seconds=2)
    assert client.gpu_pods() == {}
    assert "cannot read GPU pod assignments" in caplog.text
    client.close()
    assert PodResources(str(tmp_path / "absent.sock")).gpu_pods() == {}


def test_malformed_responses_are_rejected(kubelet):
    kubelet["response"] = b"\x0a\xff\xff"  # a length running past the end
    client = PodResources(kubelet["path"])
    assert client.gpu_pods() == {}
    client.close()


@pytest.mark.parametrize("data", [b"\x0a\x05ab", b"\x80", b"\x0b", b"\x08" + b"\xff" * 11])
def test_protowire_refuses_truncated_or_unknown_encodings(data):
    with pytest.raises(ValueError):
        list(protowire.fields(data))


def test_parse_list_response_reads_every_device():
    data = encode_response([("ns", "pod", [("c", [("nvidia.com/gpu", ["0", "1"])])])])
    assert [a.device_id for a in parse_list_response(data)] == ["0", "1"]
    assert LIST_METHOD == "/v1.PodResourcesLister/List"
