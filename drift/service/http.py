"""The drift service's HTTP API (Starlette), over a DriftService.

Writes (PUT reference, POST outputs, profiles and labels, POST evaluate) need a write token and reads a read
token when auth is configured; a request refused for auth, size or load writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fleetscope import log
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.outcomes import LABEL_OUTCOMES
from fleetscope.drift.service.service import (
    IDENTIFIER,
    PROFILE_CONTENT_TYPE,
    REPORT_WAIT_SECONDS,
    DriftService,
    Overloaded,
)
from fleetscope.log import quoted
from fleetscope.web.bodies import BodyRefused, bounded_body, discard_body
from fleetscope.web.headers import SecurityHeaders

_log = log.get("fleetscope.drift")
MAX_MESSAGE_CHARACTERS = 1000


def create_app(service: DriftService, body_timeout: float = 30.0) -> SecurityHeaders:
    """body_timeout: seconds a client has to send a request's whole body."""
    auth, limits = service.config.auth, service.limits
    page = MetricsPage(service)
    report_builds: dict[str, asyncio.Lock] = {}  # per model: one build at a time, waiters hold no thread

    def refused(request: Request, write: bool) -> Response | None:
        if not auth.enabled:
            return None
        header = request.headers.get("authorization", "")
        # Compared as bytes: a header may carry any byte, and compare_digest refuses non-ASCII text.
        token = header[7:].strip().encode("latin-1") if header[:7].lower() == "bearer " else b""
        allowed = auth.write_tokens if write else auth.read_tokens
        if token and any(hmac.compare_digest(token, known.encode()) for known in allowed):
            return None
        service.reject(request.path_params.get("model"), "unauthorized", None)
        read_only = token and any(hmac.compare_digest(token, known.encode()) for known in auth.read_tokens)
        message = "a write token is required" if write and read_only else "missing or unknown bearer token"
        return _error(401, message, headers={"WWW-Authenticate": 'Bearer realm="fleetscope-drift"'})

    def endpoint(handler, write: bool, known_model: bool = True, busy_status: int = 503):
        """Auth, the model check and the mapping of refusals to statuses, around one handler.

        busy_status: 429 where the client sent too much at once (writes), 503 where the
        service itself is busy (evaluations and reports)."""
        async def guarded(request: Request) -> Response:
            model = request.path_params.get("model")
            if (denied := refused(request, write)) is not None:
                return denied
            try:
                if known_model and model not in service.models():
                    service.check_shard(str(model))
                    return _error(404, f"model {quoted(model)} is not known: declare it in the config or PUT its "
                                       "reference first")
                return await handler(request, model)
            except BadBatch as error:
                error.__traceback__ = None  # its frames hold the body and what was decoded of it, in a cycle
                return _error(error.status, error.message, reason=error.reason, headers=error.headers)
            except Overloaded as error:
                error.__traceback__ = None
                return _error(busy_status, str(error), headers={"Retry-After": str(error.retry_after)})
            except LookupError as error:
                return _error(404, str(error))
            except Exception:
                # The store failing (disk full, I/O error) or a bug: nothing was accepted. The
                # exception's text goes to the log only; it can name files and internals.
                _log.exception("request failed", extra={"model": model, "path": request.url.path})
                return _error(503, "the service could not complete the request; its log has the details",
                              headers={"Retry-After": "5"})
        return guarded

    async def read_body(request: Request, model: str) -> bytes:
        try:
            return await bounded_body(request, limits.max_body_bytes, body_timeout)
        except BodyRefused as refusal:
            message = (f"the body is larger than limits.max_body_bytes ({limits.max_body_bytes} bytes): "
                       "send smaller batches") if refusal.reason == "too_large" else refusal.message
            raise BadBatch(refusal.status, refusal.reason, message, headers=refusal.headers) from None

    def batch_id_of(request: Request) -> str | None:
        batch_id = request.headers.get("idempotency-key")
        if batch_id is not None and not IDENTIFIER.match(batch_id):
            raise BadBatch(400, "bad_batch_id", "Idempotency-Key must be 1-128 letters, digits, '-', '_', '.' or ':'")
        return batch_id

    @contextlib.asynccontextmanager
    async def writing(request: Request, model: str):
        """A write slot from before the body is read until the write is stored; when none is free the
        body is drained first, so that the 429 reaches a client still sending it."""
        try:
            with service.counting_refusals(model), service.write_slot():
                yield
        except Overloaded:
            await discard_body(request, limits.max_body_bytes, body_timeout)
            raise

    async def outputs(request: Request, model: str) -> Response:
        async with writing(request, model):
            batch_id = batch_id_of(request)
            body = await read_body(request, model)
            stored = await run_in_threadpool(service.ingest, model, body, request.headers.get("content-type", ""),
                                             batch_id, slot_taken=True)
        headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
        return JSONResponse({"accepted": stored.rows, "first_row": stored.first}, status_code=202, headers=headers)

    async def profiles(request: Request, model: str) -> Response:
        query = request.query_params
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        async with writing(request, model):
            if content_type != PROFILE_CONTENT_TYPE:
                raise BadBatch(415, "unsupported_media_type", f"a profile is sent as {PROFILE_CONTENT_TYPE} "
                                                              "(fleetscope.drift.profiles.Profile.to_bytes())")
            try:
                start, seconds = float(query.get("start", "")), float(query.get("seconds", "60"))
            except ValueError:
                raise BadBatch(400, "bad_interval", "start (Unix seconds) and seconds must be numbers") from None
            body = await read_body(request, model)
            rows, replayed = await run_in_threadpool(
                service.ingest_profile, model, body, query.get("replica", ""), start, seconds,
                query.get("segment", ""), slot_taken=True)
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse({"accepted": rows}, status_code=202, headers=headers)

    async def labels(request: Request, model: str) -> Response:
        async with writing(request, model):
            batch_id = batch_id_of(request)
            body = await read_body(request, model)
            result = await run_in_threadpool(service.ingest_labels, model, body,
                                             request.headers.get("content-type", ""), batch_id, slot_taken=True)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        return JSONResponse({outcome: result.counts.get(outcome, 0) for outcome in LABEL_OUTCOMES},
                            status_code=202, headers=headers)

    async def reference(request: Request, model: str) -> Response:
        query = request.query_params
        async with writing(request, model):
            body = await read_body(request, model)
            rows = await run_in_threadpool(
                service.put_reference, model, body, request.headers.get("content-type", ""),
                _names(query.get("numerical")), _names(query.get("categorical")), _names(query.get("segments")),
                slot_taken=True, mode=query.get("mode", "rows"))
        config = service.model(model).config
        return JSONResponse({"model": model, "rows": rows,
                             "columns": {name: kind.name.lower() for name, kind in config.columns.items()},
                             "segments": list(config.segments)})

    async def evaluate(request: Request, model: str) -> Response:
        return _json((await run_in_threadpool(service.evaluate, model)).to_json())

    async def drift(request: Request, model: str) -> Response:
        latest = service.model(model).latest
        if latest is None:
            return _error(404, f"model {model!r} has not been evaluated yet: POST /v1/models/{model}/evaluate")
        return _json(latest.to_json())

    async def report(request: Request, model: str) -> Response:
        lock = report_builds.setdefault(model, asyncio.Lock())  # model is known: the dict stays bounded
        try:
            async with asyncio.timeout(REPORT_WAIT_SECONDS):
                await lock.acquire()
        except TimeoutError:
            raise Overloaded(f"the report of {model!r} is still being built; retry shortly", retry_after=5) from None
        try:
            page = await run_in_threadpool(service.report, model)
        finally:
            lock.release()
        return HTMLResponse(page.html, headers={"Content-Security-Policy": page.content_security_policy,
                                                "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    async def models(request: Request) -> Response:
        if (denied := refused(request, write=False)) is not None:
            return denied
        return _json({name: {"columns": {column: kind.name.lower() for column, kind in config.columns.items()},
                             "segments": list(config.segments), "mode": config.mode,
                             "reference": "rolling" if config.rolling_reference else "fixed"}
                      for name, config in service.models().items()})

    async def metrics(request: Request) -> Response:
        if auth.metrics_require_token and (denied := refused(request, write=False)) is not None:
            return denied
        try:
            return Response(await run_in_threadpool(page.render), media_type=CONTENT_TYPE_LATEST)
        except TimeoutError:
            return _error(503, "every /metrics render is busy; retry shortly", headers={"Retry-After": "5"})

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    async def ready(request: Request) -> Response:
        if not await run_in_threadpool(service.ready):
            return PlainTextResponse("not ready: the store cannot be read\n", status_code=503)
        return PlainTextResponse("Ready\n")

    app = Starlette(routes=[
        Route("/v1/models/{model}/outputs", endpoint(outputs, True, False, 429), methods=["POST"]),
        Route("/v1/models/{model}/profiles", endpoint(profiles, True, False, 429), methods=["POST"]),
        Route("/v1/models/{model}/labels", endpoint(labels, True, False, 429), methods=["POST"]),
        Route("/v1/models/{model}/reference", endpoint(reference, True, False, 429), methods=["PUT"]),
        Route("/v1/models/{model}/evaluate", endpoint(evaluate, write=True), methods=["POST"]),
        Route("/v1/models/{model}/drift", endpoint(drift, write=False), methods=["GET"]),
        Route("/v1/models/{model}/report", endpoint(report, write=False), methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/-/healthy", healthy, methods=["GET"]),
        Route("/-/ready", ready, methods=["GET"]),
    ])
    return SecurityHeaders(app)


def _names(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _error(status: int, message: str, reason: str | None = None, headers: dict | None = None) -> Response:
    # ASCII JSON: a message that quotes the client's input may hold a lone surrogate, which UTF-8 cannot encode.
    # Messages quote input through log.quoted(); the cap is for any that does not.
    if len(message) > MAX_MESSAGE_CHARACTERS:
        message = message[:MAX_MESSAGE_CHARACTERS] + "..."
    body = {"error": message, **({"reason": reason} if reason else {})}
    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _json(document: dict) -> Response:
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
