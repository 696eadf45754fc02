"""ASGI middleware (FastAPI, Starlette, any ASGI app): each HTTP request it matches is tracked.

    app = InferenceMiddleware(app, metrics, route=lambda scope: ("iris", "predict")
                              if scope["path"] == "/predict" else None)

The route function names a request's model and operation, or returns None to leave it
untracked (health checks, /metrics). The handler reaches its tracked request as
scope["state"]["fleetscope_request"] (Starlette: request.state.fleetscope_request) to report
tokens or the end of queueing. The first non-empty body chunk marks the first token unless the
handler marked it; 429 and 503 responses count as rejections (overload), other 5xx responses and
exceptions as errors, other 4xx as client errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fleetscope.exporters.inference.tracking import InferenceMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Route = Callable[[Scope], "tuple[str, str] | None"]

STATE_KEY = "fleetscope_request"


class InferenceMiddleware:
    def __init__(self, app: ASGIApp, metrics: InferenceMetrics, route: Route):
        self.app = app
        self.metrics = metrics
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = self.route(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        request = self.metrics.track(*target)
        scope.setdefault("state", {})[STATE_KEY] = request
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and message.get("body"):
                request.first_token()
            await send(message)

        with request:
            await self.app(scope, receive, observe)
            if status in (429, 503):
                request.reject(str(status))
            elif status >= 500:
                request.fail(str(status))
            elif status >= 400:
                request.fail(str(status), client=True)
