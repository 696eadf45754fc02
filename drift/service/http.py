"""The drift service's HTTP API (Starlette), over a DriftService.

Writes (PUT reference, POST outputs, POST evaluate) need a write token and reads a read
token when auth is configured; a request refused for auth, size or load writes nothing.
"""

from __future__ import annotations

import hmac
import json
import math

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fleetscope import log
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.metrics import registry_for
from fleetscope.drift.service.service import DriftService, Overloaded
from fleetscope.web.bodies import bounded_body

_log = log.get("fleetscope.drift")


def create_app(service: DriftService) -> Starlette:
    auth, limits = service.config.auth, service.limits
    registry = registry_for(service)

    def refused(request: Request, write: bool) -> Response | None:
        if not auth.enabled:
            return None
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        allowed = auth.write_tokens if write else auth.read_tokens
        if token and any(hmac.compare_digest(token, known) for known in allowed):
            return None
        service.reject(request.path_params.get("model"), "unauthorized", None)
        message = "a write token is required" if write and token in auth.read_tokens else \
            "missing or unknown bearer token"
        return _error(401, message, headers={"WWW-Authenticate": 'Bearer realm="fleetscope-drift"'})

    async def body_of(request: Request, model: str) -> bytes | Response:
        body = await bounded_body(request, limits.max_body_bytes)
        if body is None:
            service.reject(model, "too_large", None)
            return _error(413, f"the body is larger than limits.max_body_bytes ({limits.max_body_bytes} bytes): "
                               "send smaller batches")
        return body

    def endpoint(handler, write: bool, known_model: bool = True, busy_status: int = 503):
        """Auth, the model check and the mapping of refusals to statuses, around one handler.

        busy_status: 429 where the client sent too much at once (writes), 503 where the
        service itself is busy (evaluations and reports)."""
        async def guarded(request: Request) -> Response:
            model = request.path_params.get("model")
            if (denied := refused(request, write)) is not None:
                return denied
            if known_model and model not in service.models():
                return _error(404, f"model {model!r} is not known: declare it in the config or PUT its "
                                   "reference first")
            try:
                return await handler(request, model)
            except BadBatch as error:
                return _error(error.status, error.message, reason=error.reason)
            except Overloaded as error:
                return _error(busy_status, str(error), headers={"Retry-After": str(error.retry_after)})
            except LookupError as error:
                return _error(404, str(error))
            except Exception as error:
                if not write:
                    raise
                # the store failing (disk full, I/O error): nothing was accepted
                _log.exception("storing failed", extra={"model": model})
                return _error(503, f"the store could not take the data: {error}", headers={"Retry-After": "5"})
        return guarded

    async def read_body(request: Request, model: str) -> bytes:
        body = await bounded_body(request, limits.max_body_bytes)
        if body is None:
            service.reject(model if model in service.models() else "_unknown", "too_large", None)
            raise BadBatch(413, "too_large", f"the body is larger than limits.max_body_bytes "
                                             f"({limits.max_body_bytes} bytes): send smaller batches")
        return body

    async def outputs(request: Request, model: str) -> Response:
        body = await read_body(request, model)
        stored = await run_in_threadpool(service.ingest, model, body, request.headers.get("content-type", ""))
        return JSONResponse({"accepted": stored.rows, "first_row": stored.first}, status_code=202)

    async def reference(request: Request, model: str) -> Response:
        body = await read_body(request, model)
        query = request.query_params
        rows = await run_in_threadpool(
            service.put_reference, model, body, request.headers.get("content-type", ""),
            _names(query.get("numerical")), _names(query.get("categorical")), _names(query.get("segments")))
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
        return HTMLResponse(await run_in_threadpool(service.report, model))

    async def models(request: Request) -> Response:
        if (denied := refused(request, write=False)) is not None:
            return denied
        return _json({name: {"columns": {column: kind.name.lower() for column, kind in config.columns.items()},
                             "segments": list(config.segments),
                             "reference": "rolling" if config.rolling_reference else "fixed"}
                      for name, config in service.models().items()})

    async def metrics(request: Request) -> Response:
        if auth.metrics_require_token and (denied := refused(request, write=False)) is not None:
            return denied
        return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    return Starlette(routes=[
        Route("/v1/models/{model}/outputs", endpoint(outputs, True, False, 429), methods=["POST"]),
        Route("/v1/models/{model}/reference", endpoint(reference, True, False, 429), methods=["PUT"]),
        Route("/v1/models/{model}/evaluate", endpoint(evaluate, write=True), methods=["POST"]),
        Route("/v1/models/{model}/drift", endpoint(drift, write=False), methods=["GET"]),
        Route("/v1/models/{model}/report", endpoint(report, write=False), methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/-/healthy", healthy, methods=["GET"]),
        Route("/-/ready", healthy, methods=["GET"]),
    ])


def _names(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _error(status: int, message: str, reason: str | None = None, headers: dict | None = None) -> Response:
    body = {"error": message, **({"reason": reason} if reason else {})}
    return JSONResponse(body, status_code=status, headers=headers)


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
