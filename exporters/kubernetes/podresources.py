"""Which container holds which GPU, from the kubelet pod-resources API (v1 List).

The NVIDIA device plugin reports GPUs (resource nvidia.com/gpu) and MIG devices
(nvidia.com/mig-<profile>) by UUID, or by index with DEVICE_ID_STRATEGY=index; with time-slicing,
as `<UUID>::<replica>`. Kubernetes Dynamic Resource Allocation reports a container's claims
(KubeletPodResourcesDynamicResources, beta since 1.34): NVIDIA's DRA driver (gpu.nvidia.com) names a
GPU `gpu-<minor>`, and its claim's name, namespace, driver, pool and device become dcgm-exporter's
dra_* labels. Every id found is a key of the mapping returned here. A GPU shared by several
containers (time-slicing, MPS) is attributed to none of them rather than to an arbitrary one; its
processes' pod UIDs say whose each is (exporters/attribution/pods.py).

Field numbers are kubernetes' staging/src/k8s.io/kubelet/pkg/apis/podresources/v1/api.proto.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from fleetscope import log
from fleetscope.exporters.attribution import bounded
from fleetscope.exporters.kubernetes import protowire

_logger = log.get("fleetscope.exporters.kubernetes")
LIST_METHOD = "/v1.PodResourcesLister/List"
GPU_RESOURCE_PREFIX = "nvidia.com/"
DRA_GPU_DRIVER = "gpu.nvidia.com"
DRA_RESOURCE = "dra"


@dataclass(frozen=True)
class Assignment:
    namespace: str
    pod: str
    container: str
    resource: str
    device_id: str
    claim: dict[str, str] = field(default_factory=dict, compare=False)  # dra_* labels of a DRA claim

    @property
    def labels(self) -> dict[str, str]:
        return {"namespace": self.namespace, "pod": self.pod, "container": self.container, **self.claim}


def parse_list_response(data: bytes) -> list[Assignment]:
    """ListPodResourcesResponse{pod_resources=1: PodResources{name=1, namespace=2,
    containers=3: ContainerResources{name=1, devices=2: ContainerDevices{resource_name=1, device_ids=2},
    dynamic_resources=5: DynamicResource{claim_name=2, claim_namespace=3,
    claim_resources=4: ClaimResource{driver_name=2, pool_name=3, device_name=4}}}}}"""
    assignments = []
    for pod in protowire.messages(data, 1):
        pod_name = next(iter(protowire.strings(pod, 1)), "")
        namespace = next(iter(protowire.strings(pod, 2)), "")
        for container in protowire.messages(pod, 3):
            container_name = next(iter(protowire.strings(container, 1)), "")
            for devices in protowire.messages(container, 2):
                resource = next(iter(protowire.strings(devices, 1)), "")
                for device_id in protowire.strings(devices, 2):
                    assignments.append(Assignment(namespace, pod_name, container_name, resource, device_id))
            for claim in protowire.messages(container, 5):
                for device_id, labels in _claimed_devices(claim):
                    assignments.append(Assignment(namespace, pod_name, container_name, DRA_RESOURCE, device_id,
                                                  labels))
    return assignments


def _claimed_devices(claim: bytes) -> list[tuple[str, dict[str, str]]]:
    name = next(iter(protowire.strings(claim, 2)), "")
    namespace = next(iter(protowire.strings(claim, 3)), "")
    found = []
    for resource in protowire.messages(claim, 4):
        driver = next(iter(protowire.strings(resource, 2)), "")
        pool = next(iter(protowire.strings(resource, 3)), "")
        device = next(iter(protowire.strings(resource, 4)), "")
        if driver == DRA_GPU_DRIVER and device:
            found.append((device, {"dra_claim_name": name, "dra_claim_namespace": namespace,
                                   "dra_driver_name": driver, "dra_pool_name": pool, "dra_device_name": device}))
    return found


def gpu_owners(assignments: list[Assignment]) -> dict[str, dict[str, str]]:
    holders: dict[str, dict[tuple[str, str, str], dict[str, str]]] = {}
    for a in assignments:
        if a.resource.startswith(GPU_RESOURCE_PREFIX) or a.resource == DRA_RESOURCE:
            device_id = a.device_id.split("::")[0]  # a time-slicing replica is its GPU
            holders.setdefault(device_id, {})[(a.namespace, a.pod, a.container)] = a.labels
    return {device_id: {name: bounded(value) for name, value in next(iter(owners.values())).items()}
            for device_id, owners in holders.items() if len(owners) == 1}


class PodResources:
    """Reads GPU owners from the kubelet socket; absent socket or failed call means no owners."""

    def __init__(self, socket_path: str, timeout_seconds: float = 2.0):
        self._path = socket_path
        self._timeout = timeout_seconds
        self._channel: grpc.Channel | None = None
        self._problem: str | None = None

    def gpu_pods(self) -> Mapping[str, Mapping[str, str]]:
        if not os.path.exists(self._path):
            self._report(None)  # not a Kubernetes node (or no kubelet yet): nothing to say
            return {}
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix://{os.path.abspath(self._path)}")
        method = self._channel.unary_unary(LIST_METHOD, request_serializer=lambda _: b"",
                                           response_deserializer=parse_list_response)
        try:
            assignments = method(None, timeout=self._timeout)
        except grpc.RpcError as error:
            self._report(f"{error.code().name}: {error.details()}")
            return {}
        except ValueError as error:
            self._report(f"malformed response: {error}")
            return {}
        self._report(None)
        return gpu_owners(assignments)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _report(self, problem: str | None) -> None:
        if problem and problem != self._problem:
            _logger.warning("cannot read GPU pod assignments from the kubelet; GPU series will lack pod labels",
                            extra={"socket": self._path, "error": problem})
        elif self._problem and not problem:
            _logger.info("reading GPU pod assignments from the kubelet again", extra={"socket": self._path})
        self._problem = problem
