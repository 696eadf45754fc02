"""The evaluation routes: evaluate now, the latest evaluation, and Evidently's report of it."""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from fleetscope.drift.service.http_api import Api, as_json, error
from fleetscope.drift.service.reports import REPORT_WAIT_SECONDS
from fleetscope.drift.service.writes import Overloaded


def routes(api: Api) -> list[Route]:
    service = api.service
    report_builds: dict[str, asyncio.Lock] = {}  # per model: one build at a time, waiters hold no thread

    async def evaluate(request: Request, model: str) -> Response:
        return as_json((await run_in_threadpool(service.evaluate, model)).to_json())

    async def drift(request: Request, model: str) -> Response:
        latest = service.model(model).latest
        if latest is None:
            return error(404, f"model {model!r} has not been evaluated yet: POST /v1/models/{model}/evaluate")
        return as_json(latest.to_json())

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

    return [
        Route("/v1/models/{model}/evaluate", api.endpoint(evaluate, write=True), methods=["POST"]),
        Route("/v1/models/{model}/drift", api.endpoint(drift, write=False), methods=["GET"]),
        Route("/v1/models/{model}/report", api.endpoint(report, write=False), methods=["GET"]),
    ]
