"""Which container holds which GPU, from the kubelet pod-resources API (v1 List).

The NVIDIA device plugin reports GPUs (resource nvidia.com/gpu) and MIG devices
(nvidia.com/mig-<profile>) by UUID, or by index with DEVICE_ID_STRATEGY=index; both are
keys of the mapping returned here. A GPU shared by several containers (time-slicing)
is attributed to none of them rather than to an arbitrary one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from fleetscope import log
from fleetscope.exporters.kubernetes import protowire

_logger = log.get("fleetscope.exporters.kubernetes")
LIST_METHOD = "/v1.PodResourcesLister/List"
GPU_RESOURCE_PREFIX = "nvidia.com/"


@dataclass(frozen=True)
class Assignment:
    namespace: str
    pod: str
    container: str
    resource: str
    device_id: str


def parse_list_response(data: bytes) -> list[Assignment]:
    """ListPodResourcesResponse{pod_resources=1: PodResources{name=1, namespace=2,
    containers=3: ContainerResources{name=1, devices=2: ContainerDevices{resource_name=1, device_ids=2}}}}"""
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
    return assignments


def gpu_owners(assignments: list[Assignment]) -> dict[str, dict[str, str]]:
    holders: dict[str, set[tuple[str, str, str]]] = {}
    for a in assignments:
        if a.resource.startswith(GPU_RESOURCE_PREFIX):
            holders.setdefault(a.device_id, set()).add((a.namespace, a.pod, a.container))
    return {
        device_id: dict(zip(("namespace", "pod", "container"), next(iter(owners)), strict=True))
        for device_id, owners in holders.items() if len(owners) == 1
    }


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
