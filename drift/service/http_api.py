"""What every route of the drift service's HTTP API shares: auth, the guard that checks the model and maps
refusals to statuses, reading a body under the limits, a write slot, and the JSON answers."""

from __future__ import annotations

import contextlib
import hmac
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from fleetscope import log
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.service import DriftService
from fleetscope.drift.service.writes import IDENTIFIER, Overloaded
from fleetscope.log import quoted
from fleetscope.web.bodies import BodyRefused, bounded_body, discard_body

_log = log.get("fleetscope.drift")
MAX_MESSAGE_CHARACTERS = 1000
Handler = Callable[[Request, str], Awaitable[Response]]


class Api:
    def __init__(self, service: DriftService, body_timeout: float) -> None:
        """body_timeout: seconds a client has to send a request's whole body."""
        self.service, self.body_timeout = service, body_timeout
        self.auth, self.limits = service.config.auth, service.limits

    def refused(self, request: Request, write: bool) -> Response | None:
        """None where the request may go on; else the 401 (counted) to answer."""
        auth = self.auth
        if not auth.enabled:
            return None
        header = request.headers.get("authorization", "")
        # Compared as bytes: a header may carry any byte, and compare_digest refuses non-ASCII text.
        token = header[7:].strip().encode("latin-1") if header[:7].lower() == "bearer " else b""
        allowed = auth.write_tokens if write else auth.read_tokens
        if token and any(hmac.compare_digest(token, known.encode()) for known in allowed):
            return None
        self.service.reject(request.path_params.get("model"), "unauthorized", None)
        read_only = token and any(hmac.compare_digest(token, known.encode()) for known in auth.read_tokens)
        message = "a write token is required" if write and read_only else "missing or unknown bearer token"
        return error(401, message, headers={"WWW-Authenticate": 'Bearer realm="fleetscope-drift"'})

    def endpoint(self, handler: Handler, write: bool, known_model: bool = True,
                 busy_status: int = 503) -> Callable[[Request], Awaitable[Response]]:
        """Auth, the model check and the mapping of refusals to statuses, around one handler.

        busy_status: 429 where the client sent too much at once (writes), 503 where the
        service itself is busy (evaluations and reports)."""
        service = self.service

        async def guarded(request: Request) -> Response:
            model: str = request.path_params["model"]  # every guarded route's path names the model
            if (denied := self.refused(request, write)) is not None:
                return denied
            try:
                if known_model and model not in service.models():
                    service.check_shard(model)
                    return error(404, f"model {quoted(model)} is not known: declare it in the config or PUT its "
                                      "reference first")
                return await handler(request, model)
            except BadBatch as refusal:
                refusal.__traceback__ = None  # its frames hold the body and what was decoded of it, in a cycle
                return error(refusal.status, refusal.message, reason=refusal.reason, headers=refusal.headers)
            except Overloaded as busy:
                busy.__traceback__ = None
                return error(busy_status, str(busy), headers={"Retry-After": str(busy.retry_after)})
            except LookupError as missing:
                return error(404, str(missing))
            except Exception:
                # The store failing (disk full, I/O error) or a bug: nothing was accepted. The
                # exception's text goes to the log only; it can name files and internals.
                _log.exception("request failed", extra={"model": model, "path": request.url.path})
                return error(503, "the service could not complete the request; its log has the details",
                             headers={"Retry-After": "5"})
        return guarded

    async def read_body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        try:
            return await bounded_body(request, limit, self.body_timeout)
        except BodyRefused as refusal:
            message = (f"the body is larger than limits.max_body_bytes ({limit} bytes): "
                       "send smaller batches") if refusal.reason == "too_large" else refusal.message
            raise BadBatch(refusal.status, refusal.reason, message, headers=refusal.headers) from None

    @contextlib.asynccontextmanager
    async def writing(self, request: Request, model: str) -> AsyncIterator[None]:
        """A write slot from before the body is read until the write is stored; when none is free the
        body is drained first, so that the 429 reaches a client still sending it."""
        try:
            with self.service.counting_refusals(model), self.service.write_slot():
                yield
        except Overloaded:
            await discard_body(request, self.limits.max_body_bytes, self.body_timeout)
            raise


def batch_id_of(request: Request) -> str | None:
    batch_id = request.headers.get("idempotency-key")
    if batch_id is not None and not IDENTIFIER.match(batch_id):
        raise BadBatch(400, "bad_batch_id", "Idempotency-Key must be 1-128 letters, digits, '-', '_', '.' or ':'")
    return batch_id


def replayed(was: bool) -> dict[str, str] | None:
    """The headers of a write's answer: Idempotent-Replayed where it stored nothing new."""
    return {"Idempotent-Replayed": "true"} if was else None


def names(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def error(status: int, message: str, reason: str | None = None, headers: dict | None = None) -> Response:
    # ASCII JSON: a message that quotes the client's input may hold a lone surrogate, which UTF-8 cannot encode.
    # Messages quote input through log.quoted(); the cap is for any that does not.
    if len(message) > MAX_MESSAGE_CHARACTERS:
        message = message[:MAX_MESSAGE_CHARACTERS] + "..."
    body = {"error": message, **({"reason": reason} if reason else {})}
    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")


def as_json(document: dict) -> Response:
    # Scores can be NaN (a test on degenerate data); JSON has no NaN, so they are sent as null.
    return Response(json.dumps(_finite(document)), media_type="application/json")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
