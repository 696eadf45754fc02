"""Ray's dashboard as far as the exporter's Ray attribution reads it (GET /nodes?view=summary,
GET /nodes/<node_id> and the state API's GET /api/v0/placement_groups filtered by id, in Ray 2.60's shapes),
behind token authentication, on loopback."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def node(node_id: str, hostname: str) -> dict:
    return {"hostname": hostname, "raylet": {"nodeId": node_id, "nodeManagerHostname": hostname}}


def actor(pid: int, job: str, class_name: str, state: str = "ALIVE", name: str = "",
          placement_group: str | None = None) -> dict:
    return {"pid": pid, "jobId": job, "className": class_name, "state": state, "name": name,
            "placementGroupId": placement_group}


class RayDashboardStub:
    def __init__(self, token: str, nodes: list[dict], actors: dict[str, dict],
                 placement_groups: dict[str, str] | None = None):
        """placement_groups: each placement group's name by its id, for the state API."""
        self.token, self.nodes, self.actors, self.requests = token, nodes, actors, 0
        self.placement_groups = dict(placement_groups or {})
        self.placement_group_requests = 0
        self.placement_groups_fail = False  # the state API answers 500
        self.body_override: bytes | None = None
        self.delay = 0.0  # seconds before each answer
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                stub.requests += 1
                time.sleep(stub.delay)
                if self.headers.get("Authorization") != f"Bearer {stub.token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                if self.path.startswith("/api/v0/placement_groups?"):
                    stub.placement_group_requests += 1
                    if stub.placement_groups_fail:
                        self.send_response(500)
                        self.end_headers()
                        return
                    query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                    assert query["filter_keys"] == ["placement_group_id"] and query["filter_predicates"] == ["="]
                    wanted = query["filter_values"][0]
                    found = [{"placement_group_id": wanted, "name": stub.placement_groups[wanted],
                              "state": "CREATED"}] if wanted in stub.placement_groups else []
                    body = json.dumps({"result": True, "msg": "", "data": {"result": {
                        "total": len(found), "num_after_truncation": len(found), "num_filtered": len(found),
                        "result": found}}}).encode()
                elif stub.body_override is not None:
                    body = stub.body_override
                elif self.path == "/nodes?view=summary":
                    body = json.dumps({"data": {"summary": stub.nodes}}).encode()
                else:
                    node_id = self.path.removeprefix("/nodes/")
                    body = json.dumps({"data": {"detail": {"actors": stub.actors.get(node_id, {})}}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
