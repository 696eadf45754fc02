"""The write routes: outputs, replicas' profiles, labels and the reference. Each takes a write slot before
reading its body (http_api.Api.writing) and answers 429 when the service has none free."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fleetscope.drift.columns import value_rules
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.http_api import Api, batch_id_of, names, replayed
from fleetscope.drift.service.outcomes import LABEL_OUTCOMES
from fleetscope.drift.service.replica_profiles import PROFILE_CONTENT_TYPE


def routes(api: Api) -> list[Route]:
    service = api.service

    async def outputs(request: Request, model: str) -> Response:
        async with api.writing(request, model):
            batch_id = batch_id_of(request)
            body = await api.read_body(request)
            stored = await run_in_threadpool(service.ingest, model, body, request.headers.get("content-type", ""),
                                             batch_id, slot_taken=True)
        return JSONResponse({"accepted": stored.rows, "first_row": stored.first}, status_code=202,
                            headers=replayed(stored.replayed))

    async def profiles(request: Request, model: str) -> Response:
        query = request.query_params
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        async with api.writing(request, model):
            if content_type != PROFILE_CONTENT_TYPE:
                raise BadBatch(415, "unsupported_media_type", f"a profile is sent as {PROFILE_CONTENT_TYPE} "
                                                              "(fleetscope.drift.profiles.Profile.to_bytes())")
            try:
                start, seconds = float(query.get("start", "")), float(query.get("seconds", "60"))
            except ValueError:
                raise BadBatch(400, "bad_interval", "start (Unix seconds) and seconds must be numbers") from None
            body = await api.read_body(request)
            rows, again = await run_in_threadpool(
                service.ingest_profile, model, body, query.get("replica", ""), start, seconds,
                query.get("segment", ""), slot_taken=True)
        return JSONResponse({"accepted": rows}, status_code=202, headers=replayed(again))

    async def labels(request: Request, model: str) -> Response:
        async with api.writing(request, model):
            batch_id = batch_id_of(request)
            body = await api.read_body(request)
            result = await run_in_threadpool(service.ingest_labels, model, body,
                                             request.headers.get("content-type", ""), batch_id, slot_taken=True)
        return JSONResponse({outcome: result.counts.get(outcome, 0) for outcome in LABEL_OUTCOMES},
                            status_code=202, headers=replayed(result.replayed))

    async def reference(request: Request, model: str) -> Response:
        query = request.query_params
        async with api.writing(request, model):
            body = await api.read_body(request)
            rows = await run_in_threadpool(
                service.put_reference, model, body, request.headers.get("content-type", ""),
                names(query.get("numerical")), names(query.get("categorical")), names(query.get("segments")),
                slot_taken=True, mode=query.get("mode", "rows"), embedding=names(query.get("embedding")),
                text=names(query.get("text")))
        config = service.model(model).config
        dimensions = value_rules(config.columns).dimensions
        return JSONResponse({"model": model, "rows": rows,
                             "columns": {name: kind.name.lower() for name, kind in config.columns.items()},
                             "segments": list(config.segments), **({"dimensions": dimensions} if dimensions else {})})

    return [
        Route("/v1/models/{model}/outputs", api.endpoint(outputs, True, False, 429), methods=["POST"]),
        Route("/v1/models/{model}/profiles", api.endpoint(profiles, True, False, 429), methods=["POST"]),
        Route("/v1/models/{model}/labels", api.endpoint(labels, True, False, 429), methods=["POST"]),
        Route("/v1/models/{model}/reference", api.endpoint(reference, True, False, 429), methods=["PUT"]),
    ]
