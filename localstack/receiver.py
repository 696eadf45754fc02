"""An HTTP endpoint on loopback that records every notification posted to it: Alertmanager's
webhook, and PagerDuty, Opsgenie and Slack's APIs as Alertmanager calls them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Notification:
    path: str
    headers: dict[str, str]
    body: Any  # the JSON document, or the raw text when it is not JSON


class NotificationReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 on_notification: Callable[[Notification], None] | None = None):
        self.notifications: list[Notification] = []
        self._changed = threading.Condition()
        self._on_notification = on_notification
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="notifications", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NotificationReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Callable[[Notification], bool], timeout: float) -> Notification:
        """The first notification (received already or within timeout) for which predicate holds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for notification in self.notifications:
                    if predicate(notification):
                        return notification
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    paths = [n.path for n in self.notifications]
                    raise TimeoutError(f"no matching notification within {timeout:.0f}s; received {len(paths)}: "
                                       f"{paths[-20:]}")
                self._changed.wait(remaining)

    def _record(self, notification: Notification) -> None:
        with self._changed:
            self.notifications.append(notification)
            self._changed.notify_all()
        if self._on_notification is not None:
            self._on_notification(notification)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self.send_error(413)
                    return
                raw = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                receiver._record(Notification(self.path, dict(self.headers), body))
                answer = b'{"status":"success","result":"ok","message":"Event processed","requestId":"test"}'
                self.send_response(202 if "enqueue" in self.path else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
