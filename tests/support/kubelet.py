"""A real gRPC server on a unix socket answering the kubelet pod-resources List call."""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

Pods = list[tuple[str, str, list[tuple[str, list[tuple[str, list[str]]]]]]]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


Claims = list[tuple[str, str, list[tuple[str, str, str]]]]


def encode_response(pods: Pods, claims: dict[tuple[str, str], Claims] | None = None) -> bytes:
    """pods: [(namespace, name, [(container, [(resource, [device ids])])])], encoded as the kubelet does,
    with an unknown field and a varint cpu_ids field that a reader must skip. claims: by (pod, container),
    the container's DRA claims, [(claim name, claim namespace, [(driver, pool, device)])]."""
    body = b""
    for namespace, name, containers in pods:
        pod = _field(1, name) + _field(2, namespace)
        for container_name, devices in containers:
            container = _field(1, container_name)
            for resource, ids in devices:
                container += _field(2, _field(1, resource) + b"".join(_field(2, i) for i in ids)
                                    + _varint(9 << 3) + b"\x01")
            container += _varint(3 << 3) + _varint(4)
            for claim_name, claim_namespace, devices_claimed in (claims or {}).get((name, container_name), []):
                claim = _field(2, claim_name) + _field(3, claim_namespace)
                for driver, pool, device in devices_claimed:
                    claim += _field(4, _field(1, _field(1, f"k8s.{driver}/claim={device}")) + _field(2, driver)
                                    + _field(3, pool) + _field(4, device))
                container += _field(5, claim)
            pod += _field(3, container)
        body += _field(1, pod)
    return body


def start_kubelet(path: Path, respond: Callable[[grpc.ServicerContext], bytes]) -> grpc.Server:
    handler = grpc.method_handlers_generic_handler("v1.PodResourcesLister", {
        "List": grpc.unary_unary_rpc_method_handler(lambda request, context: respond(context),
                                                    request_deserializer=lambda b: b,
                                                    response_serializer=lambda b: b)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix://{path}")
    server.start()
    return server
