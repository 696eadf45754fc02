"""The service's own routes: the models it holds, /metrics, and the health and readiness probes."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fleetscope.drift.service.http_api import Api, as_json, error
from fleetscope.drift.service.metrics import MetricsPage


def routes(api: Api) -> list[Route]:
    service = api.service
    page = MetricsPage(service)

    async def models(request: Request) -> Response:
        if (denied := api.refused(request, write=False)) is not None:
            return denied
        return as_json({name: {"columns": {column: kind.name.lower() for column, kind in config.columns.items()},
                               "segments": list(config.segments), "mode": config.mode,
                               "reference": "rolling" if config.rolling_reference else "fixed"}
                        for name, config in service.models().items()})

    async def metrics(request: Request) -> Response:
        if api.auth.metrics_require_token and (denied := api.refused(request, write=False)) is not None:
            return denied
        try:
            return Response(await run_in_threadpool(page.render), media_type=CONTENT_TYPE_LATEST)
        except TimeoutError:
            return error(503, "every /metrics render is busy; retry shortly", headers={"Retry-After": "5"})

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    async def ready(request: Request) -> Response:
        if not await run_in_threadpool(service.ready):
            return PlainTextResponse("not ready: the store cannot be read\n", status_code=503)
        return PlainTextResponse("Ready\n")

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/-/healthy", healthy, methods=["GET"]),
        Route("/-/ready", ready, methods=["GET"]),
    ]
