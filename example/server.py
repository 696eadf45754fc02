"""`fleetscope model-server`: the iris model behind an ASGI (Starlette) app, tracked by the SDK.

    POST /v1/models/iris/predict   {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}
                                   -> {"predictions": [{"request_id", "label", "confidence", "embedding"}, ...]}
    GET  /metrics                  the SDK's metrics (OpenMetrics with exemplars when asked for), and the server's
                                   own process (process_*, python_*, fleetscope_build_info)
    GET  /-/healthy, /-/ready

Predictions run in a pool of --workers threads; a request waits for a free one, and that
wait is its queue time. Each answer's rows (inputs and outputs) go to `outputs`, where a drift
client can take them. An answer's embedding is the model's 12 terms of its decision function
(example/model.py, IrisModel.embedding_of); the rows carry it where --drift.embedding-column
names a column.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import make_asgi_app
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from fleetscope import durations, log
from fleetscope.example.model import IrisModel
from fleetscope.exporters.inference import InferenceMetrics, registry_for, visible_gpus
from fleetscope.exporters.inference.asgi import STATE_KEY, InferenceMiddleware
from fleetscope.exporters.inference.gpus import GpuDeclarationError
from fleetscope.self_metrics import SelfCollector
from fleetscope.web.bodies import BodyRefused, bounded_body
from fleetscope.web.connections import ConnectionLimits, raise_open_file_limit
from fleetscope.web.headers import SecurityHeaders
from fleetscope.web.server import parse_listen_address

DESCRIPTION = "Serve a scikit-learn model (iris) instrumented with fleetscope's inference SDK."
MAX_BODY_BYTES = 1 << 20
Outputs = Callable[[str, list[dict[str, object]]], object]  # what it returns is not used


DEFAULT_LIMITS = ConnectionLimits()
# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
WORKERS = durations.bounded_int(1, 1024)
DRIFT_SHARDS = durations.bounded_int(1, 1024)  # as the drift service's --shard.count
SLOWDOWN_AFTER = durations.bounded_duration("0s", "1w")
SLOWDOWN_DELAY = durations.bounded_duration("0s", "1m")


def create_app(model: IrisModel, metrics: InferenceMetrics, workers: int = 4,
               outputs: Outputs | None = None, collectors: Sequence[Collector] = (),
               slowdown: Slowdown | None = None, limits: ConnectionLimits = DEFAULT_LIMITS,
               request_id_column: str | None = None, embedding_column: str | None = None) -> SecurityHeaders:
    """request_id_column: send each answer's request id to `outputs` in this column (a drift service whose model
    has a quality section joins labels by it); None sends none, as a model without one expects. embedding_column:
    likewise each answer's embedding (a list of numbers), for a model that declares that column `embedding`."""
    slots = asyncio.Semaphore(workers)
    started = time.monotonic()
    metrics.declare(model.name, "predict")

    async def predict(request: Request) -> JSONResponse:
        tracked = request.scope["state"][STATE_KEY]
        try:
            body = await bounded_body(request, MAX_BODY_BYTES, limits.body_timeout)
        except BodyRefused as refusal:
            return JSONResponse({"error": refusal.message}, status_code=refusal.status, headers=refusal.headers)
        try:
            document = json.loads(body)
            features = model.validate(document.get("instances") if isinstance(document, dict) else None)
        except RecursionError:
            return JSONResponse({"error": "the body nests too deeply"}, status_code=400)
        except ValueError as error:  # invalid JSON (JSONDecodeError), or the model's BadInput
            return JSONResponse({"error": str(error)}, status_code=400)
        async with slots:
            tracked.dequeued()
            predictions = await asyncio.to_thread(model.predict, features)
        # One output token per prediction (its label), so that per-token efficiency has a denominator.
        tracked.tokens(input=0, output=len(predictions))
        if slowdown is not None and time.monotonic() - started >= slowdown.after:
            await asyncio.sleep(slowdown.delay)
        # Each answer gets a request id: whoever learns the true class later reports it under that id
        # (POST /v1/models/{model}/labels on the drift service).
        request_ids = [uuid.uuid4().hex for _ in predictions]
        if outputs is not None:
            outputs(model.name, model.rows(features, predictions,
                                           (request_id_column, request_ids) if request_id_column else None,
                                           embedding_column))
        return JSONResponse({"model": model.name, "predictions": [
            {"request_id": request, "label": p.label, "confidence": p.confidence, "embedding": list(p.embedding)}
            for request, p in zip(request_ids, predictions, strict=True)]})

    async def healthy(request: Request) -> PlainTextResponse:
        return PlainTextResponse("OK\n")

    app = Starlette(routes=[
        Route(f"/v1/models/{model.name}/predict", predict, methods=["POST"]),
        Route("/-/healthy", healthy),
        Route("/-/ready", healthy),  # the model is trained before the server listens
        # A Route, not a Mount: a Mount answers /metrics with a redirect to /metrics/, which curl and promtool
        # do not follow.
        Route("/metrics", _AsgiEndpoint(make_asgi_app(registry_for(metrics, SelfCollector(), *collectors)))),
    ])
    predict_path = f"/v1/models/{model.name}/predict"
    return SecurityHeaders(InferenceMiddleware(app, metrics, route=lambda scope: (model.name, "predict")
                                               if scope["path"] == predict_path else None))


class _AsgiEndpoint:
    """An ASGI app as a Route's endpoint: Starlette calls a plain function endpoint with a Request, and
    prometheus_client's app is a plain function."""

    def __init__(self, app: Callable) -> None:
        self._app = app

    async def __call__(self, scope, receive, send) -> None:
        await self._app(scope, receive, send)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web.listen-address", dest="listen_address", default="127.0.0.1:8000",
                        help="address to serve predictions and /metrics on")
    parser.add_argument("--workers", type=WORKERS, default=4, metavar="N",
                        help=f"predictions run at once; others queue ({WORKERS.range})")
    parser.add_argument("--engine", default="sklearn", help="the engine label of the metrics")
    parser.add_argument("--drift.url", dest="drift_url",
                        help="drift service to send each prediction's inputs and outputs to (e.g. http://127.0.0.1:9840)")
    parser.add_argument("--drift.shards", dest="drift_shards", type=DRIFT_SHARDS, default=1, metavar="N",
                        help="drift service instances the models are spread over; --drift.url then holds {shard}, "
                             f"e.g. http://fleetscope-drift-{{shard}}.fleetscope-drift:9840 ({DRIFT_SHARDS.range})")
    parser.add_argument("--drift.request-id-column", dest="drift_request_id_column", metavar="NAME",
                        help="send each answer's request id to the drift service in this column, for a model "
                             "whose quality section names it (quality.request_id); by default none is sent")
    parser.add_argument("--drift.embedding-column", dest="drift_embedding_column", metavar="NAME",
                        help="send each answer's embedding (the 12 terms of the model's decision function, a list "
                             "of numbers) to the drift service in this column, for a model that declares it "
                             "`embedding`; by default none is sent")
    parser.add_argument("--drift.token-file", dest="drift_token_file", type=Path,
                        help="file holding a write token for the drift service")
    parser.add_argument("--gpus", default=None, metavar="UUID,...",
                        help="GPU UUIDs the server uses, served as fleetscope_inference_gpu_info for the "
                             "serving-efficiency rules off Kubernetes (default: from CUDA_VISIBLE_DEVICES / "
                             "NVIDIA_VISIBLE_DEVICES)")
    parser.add_argument("--gpus.hostname", dest="gpus_hostname", default=None, metavar="NAME",
                        help="the host of those GPUs, as the GPU exporter's --collector.hostname names it "
                             "(default: $NODE_NAME, else the host name)")
    parser.add_argument("--simulate.slowdown", dest="slowdown", type=_slowdown, metavar="AFTER:DELAY",
                        help="from AFTER (a duration from start-up) on, every prediction takes DELAY longer, as on a "
                             f"degraded GPU; e.g. 90s:3s (AFTER {SLOWDOWN_AFTER.range}, DELAY {SLOWDOWN_DELAY.range})")


@dataclass(frozen=True)
class Slowdown:
    after: float  # seconds from start-up
    delay: float  # seconds added to every prediction


def _slowdown(text: str) -> Slowdown:
    after, _, delay = text.partition(":")
    try:
        slowdown = Slowdown(durations.parse(after), durations.parse(delay))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not AFTER:DELAY, e.g. 90s:3s") from None
    for part, bounds, value in (("AFTER", SLOWDOWN_AFTER, after), ("DELAY", SLOWDOWN_DELAY, delay)):
        try:
            bounds(value)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {part} {error}") from None
    return slowdown


def _gpus(listed: str | None) -> tuple[str, ...]:
    if listed is not None:
        return tuple(uuid.strip() for uuid in listed.split(",") if uuid.strip())
    try:
        return visible_gpus()
    except GpuDeclarationError as error:
        raise log.UserError(f"{error}; or give --gpus") from None


def run(args: argparse.Namespace) -> int:
    from fleetscope.web import memory
    from fleetscope.web.asgi import serve

    if args.workers < 1:
        raise log.UserError(f"--workers must be at least 1, not {args.workers}")
    host, port = parse_listen_address(args.listen_address)
    model, client = IrisModel(), None
    _check_drift_columns(model, args.drift_request_id_column, args.drift_embedding_column)
    if args.drift_url:
        from fleetscope.drift.client import DriftClient

        token = _read_token(args.drift_token_file) if args.drift_token_file else None
        try:
            client = DriftClient(args.drift_url, model.name, token=token, shards=args.drift_shards)
        except ValueError as error:
            raise log.UserError(f"--drift.url: {error}") from None
    limits = ConnectionLimits()
    metrics = InferenceMetrics(engine=args.engine, gpus=_gpus(args.gpus), hostname=args.gpus_hostname)
    app = create_app(model, metrics, workers=args.workers, limits=limits,
                     outputs=(lambda _, rows: client.send_many(rows)) if client else None,
                     collectors=(client,) if client else (), slowdown=args.slowdown,
                     request_id_column=args.drift_request_id_column,
                     embedding_column=args.drift_embedding_column)
    log.get("fleetscope.model_server").info("allocator settings", extra=memory.configure())
    log.get("fleetscope.model_server").info("serving the iris model", extra={"address": args.listen_address})
    raise_open_file_limit(limits)
    serve(app, host or "0.0.0.0", port, limits)
    if client is not None:
        client.close()
    return 0


def _check_drift_columns(model: IrisModel, request_id: str | None, embedding: str | None) -> None:
    """The columns the flags name must be new ones: a row holds one value by each name."""
    taken = {*model.features, "label", "confidence"}
    for flag, column in (("--drift.request-id-column", request_id), ("--drift.embedding-column", embedding)):
        if column is not None and column in taken:
            raise log.UserError(f"{flag}: {column!r} is already a column of the rows ({', '.join(sorted(taken))})")
        if column is not None:
            taken.add(column)


def _read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as error:
        raise log.UserError(f"cannot read --drift.token-file {path}: {error}") from None
