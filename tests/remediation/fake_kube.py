"""A tiny Kubernetes API server on loopback: nodes held in memory, every request recorded; GET of the node list
and one node, and PATCH of a node as a JSON merge patch (RFC 7386) with the resourceVersion check the real API
server makes (409 when the patch carries a stale one)."""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def node(name: str, unschedulable: bool = False, taints: list[dict] | None = None,
         labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"unschedulable": unschedulable} if unschedulable else {}
    if taints:
        spec["taints"] = taints
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "resourceVersion": "1", "labels": labels or {}}, "spec": spec}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKubeApi:
    def __init__(self, nodes: list[dict[str, Any]], token: str = "kube-token-0123456789") -> None:
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.token = token
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "test",
                           "clusters": [{"name": "loopback", "cluster": {"server": self.url}}],
                           "users": [{"name": "remediator", "user": {"token": self.token}}],
                           "contexts": [{"name": "test", "context": {"cluster": "loopback", "user": "remediator"}}]})

    def __enter__(self) -> FakeKubeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def patches(self) -> list[Recorded]:
        return [request for request in self.requests if request.method == "PATCH"]

    def _answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"kind": "Status", "message": "Unauthorized"}
        route, _, _query = path.partition("?")
        with self._lock:
            if method == "GET" and route == "/api/v1/nodes":
                return 200, {"kind": "NodeList", "apiVersion": "v1", "items": list(self.nodes.values())}
            name = route.removeprefix("/api/v1/nodes/")
            if name not in self.nodes or not route.startswith("/api/v1/nodes/"):
                return 404, {"kind": "Status", "message": f"nodes {name!r} not found"}
            current = self.nodes[name]
            if method == "GET":
                return 200, current
            if method == "PATCH":
                if headers.get("Content-Type") != "application/merge-patch+json":
                    return 415, {"kind": "Status", "message": "unsupported patch type"}
                wanted = (body.get("metadata") or {}).get("resourceVersion")
                if wanted and wanted != current["metadata"]["resourceVersion"]:
                    return 409, {"kind": "Status", "message": "the object has been modified"}
                patched = merge_patch(current, body)
                patched["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
                self.nodes[name] = patched
                return 200, patched
        return 405, {"kind": "Status", "message": "method not allowed"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                headers = dict(self.headers.items())
                api.requests.append(Recorded(self.command, self.path, headers, body))
                status, answer = api._answer(self.command, self.path, headers, body)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_PATCH = _serve  # noqa: N815 (http.server's naming)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
