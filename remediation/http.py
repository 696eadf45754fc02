"""The remediator's HTTP API: POST /webhook (Alertmanager's webhook), GET /metrics, /-/healthy and /-/ready.

Every route but the health checks needs a bearer token (auth.tokens) or basic auth (--web.config.file's
basic_auth_users) when either is configured. A body is read under limits.max_body_bytes and limits.body_timeout
before it is parsed; a bad one is answered 400 naming what is wrong."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetscope.remediation.metrics import Page
from fleetscope.remediation.payload import BadPayload, parse
from fleetscope.remediation.remediator import Remediator
from fleetscope.web.bodies import BodyRefused, bounded_body
from fleetscope.web.server import BasicAuth

WEBHOOK_PATH = "/webhook"
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def create_app(remediator: Remediator, basic_auth: BasicAuth | None = None,
               headers: Mapping[str, str] | None = None) -> Starlette:
    page = Page(remediator)
    tokens = [token.encode() for token in remediator.config.tokens]
    users = basic_auth or BasicAuth({})
    extra = dict(headers or {})
    limits = remediator.config.limits

    async def allowed(request: Request) -> bool:
        if not tokens and not users.enabled:
            return True
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            # Compared as bytes: a header may carry any byte, and compare_digest refuses non-ASCII text.
            token = header[7:].strip().encode("latin-1")
            return any(hmac.compare_digest(token, known) for known in tokens)
        return users.enabled and await run_in_threadpool(users.allows, header)  # bcrypt: tens of milliseconds

    def answer(status: int, document: Any, more: Mapping[str, str] | None = None) -> Response:
        return Response(json.dumps(document, ensure_ascii=True), status_code=status, media_type="application/json",
                        headers={**extra, **(more or {})})

    def unauthorized() -> Response:
        challenge = 'Bearer realm="fleetscope-remediate"' if tokens else 'Basic realm="fleetscope-remediate"'
        return answer(401, {"error": "missing or unknown credentials (a bearer token or basic auth)"},
                      {"WWW-Authenticate": challenge})

    async def webhook(request: Request) -> Response:
        if not await allowed(request):
            page.notifications["unauthorized"] += 1
            return unauthorized()
        try:
            body = await bounded_body(request, limits.max_body_bytes, limits.body_timeout)
        except BodyRefused as refusal:
            page.notifications["too_large" if refusal.status == 413 else "timeout"] += 1
            message = (f"the body is larger than limits.max_body_bytes ({limits.max_body_bytes} bytes): lower "
                       "max_alerts on the receiver") if refusal.status == 413 else refusal.message
            return answer(refusal.status, {"error": message}, refusal.headers)
        try:
            notification = parse(body)
        except BadPayload as bad:
            page.notifications["bad_request"] += 1
            return answer(400, {"error": str(bad)})
        page.notifications["accepted"] += 1
        decisions = await run_in_threadpool(remediator.handle, notification)
        shown = [{key: decision[key] for key in ("alertname", "node", "action", "decision", "refusal", "detail")
                  if key in decision} for decision in decisions]
        # A drain that failed (scontrol or the API unreachable) is answered 503, so that Alertmanager retries the
        # notification; what was done already is then found drained and left alone.
        failed = any(decision["decision"] == "failed" for decision in decisions)
        return answer(503 if failed else 200, {"decisions": shown})

    async def metrics(request: Request) -> Response:
        if not await allowed(request):
            return unauthorized()
        return Response(page.render(), media_type=_TEXT_FORMAT, headers=extra)

    async def healthy(request: Request) -> Response:
        return Response(b"OK\n", media_type="text/plain", headers=extra)

    return Starlette(routes=[
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/-/healthy", healthy, methods=["GET"]),
        Route("/-/ready", healthy, methods=["GET"]),
    ])
