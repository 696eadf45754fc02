"""The example's models on Ray Serve: the iris model (example/model.py) as a deployment, and a text deployment
that streams tokens, each an application of its own on Serve's HTTP proxy.

    POST /iris     {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}  -> {"model", "predictions": [{"label", "confidence"}]}
                   400 with {"error"} for instances the model cannot take
    POST /tokens   {"prompt": "a few words", "max_tokens": 8, "prefill_seconds": 0.1, "token_seconds": 0.01}
                   -> text/plain, streamed after prefill_seconds (before any byte of the answer, as a model's
                   prefill): one token a line, the prompt's words in turn, one every token_seconds

Ray Serve's own metrics (serve_num_http_requests_total, serve_http_request_latency_ms, ...) reach the node's
metrics page; the `application` label names the model (fleetscope.alerts.engines.RAY_SERVE).

    python -m fleetscope.example.ray_serve --address 127.0.0.1:6379 --http-port 8000

deploys both to a running Ray cluster and returns; the applications keep running in the cluster (Serve's
controller is a detached actor) until `serve shutdown`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from collections.abc import AsyncIterator, Sequence

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from fleetscope.drift.client import DriftClient
from fleetscope.example.model import BadInput, IrisModel

MAX_BODY_BYTES = 1 << 20
MAX_TOKENS = 4096
MAX_TOKEN_SECONDS = 10.0


async def json_body(request: Request) -> object:
    """The request's JSON document; BadInput for a body too large or not JSON."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadInput(f"the body is {len(body)} bytes, more than {MAX_BODY_BYTES}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise BadInput(f"the body is not JSON: {error}") from None


class IrisServer:
    """The iris model behind Serve's HTTP proxy: one trained per replica at start. Given a drift service's URL,
    each replica profiles its own answers and sends one profile per interval, keyed by its Serve replica id
    (replica_drift_client); the service merges the replicas' profiles of an interval into one."""

    def __init__(self, seed: int = 0, drift_url: str | None = None, drift_interval: float = 60.0) -> None:
        self.model = IrisModel(seed)
        self.drift = None if drift_url is None else replica_drift_client(drift_url, self.model, drift_interval)

    def __del__(self) -> None:
        drift = getattr(self, "drift", None)  # None too where __init__ failed before setting it
        if drift is not None:
            drift.close()  # sends what the replica profiled before it goes

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            document = await json_body(request)
            features = self.model.validate(document.get("instances") if isinstance(document, dict) else None)
        except BadInput as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        predictions = await asyncio.to_thread(self.model.predict, features)
        if self.drift is not None:
            self.drift.send_many(self.model.rows(features, predictions))
        return JSONResponse({"model": self.model.name, "predictions": [
            {"label": p.label, "confidence": p.confidence} for p in predictions]})


def replica_drift_client(url: str, model: IrisModel, interval: float) -> DriftClient:
    """A drift client in profile mode for this Serve replica: the rows never leave the replica, its profile of
    each interval does, under the replica's own id (application, deployment and Serve's unique id)."""
    context = serve.get_replica_context()
    replica = f"{context.app_name}.{context.deployment}.{context.replica_id.unique_id}"
    return DriftClient(url, model.name, mode="profile", numerical=model.features, categorical=("label",),
                       interval=interval, replica=replica)


def _seconds(document: dict, field: str) -> float:
    seconds = document.get(field, 0.0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or not 0 <= seconds <= MAX_TOKEN_SECONDS:
        raise BadInput(f"{field} must be a number from 0 to {MAX_TOKEN_SECONDS}")
    return float(seconds)


def _token_request(document: object) -> tuple[list[str], int, float, float]:
    """(words, max_tokens, prefill_seconds, token_seconds) of a /tokens body; BadInput naming the field that
    is wrong."""
    if not isinstance(document, dict):
        raise BadInput('expected {"prompt": "...", "max_tokens": N, "prefill_seconds": S, "token_seconds": S}')
    prompt = document.get("prompt")
    if not isinstance(prompt, str) or not prompt.split():
        raise BadInput("prompt must be a string with at least one word")
    max_tokens = document.get("max_tokens", 16)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS:
        raise BadInput(f"max_tokens must be an integer from 1 to {MAX_TOKENS}")
    return prompt.split(), max_tokens, _seconds(document, "prefill_seconds"), _seconds(document, "token_seconds")


class TokenStreamServer:
    """A stand-in for a language model's streaming endpoint: it emits the prompt's words in turn as tokens,
    one a line, at a steady pace, so that a client knows in advance what and how long it will be sent."""

    async def __call__(self, request: Request) -> StreamingResponse | JSONResponse:
        try:
            words, max_tokens, prefill, seconds = _token_request(await json_body(request))
        except BadInput as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        if prefill:
            await asyncio.sleep(prefill)
        return StreamingResponse(self.tokens(words, max_tokens, seconds), media_type="text/plain")

    @staticmethod
    async def tokens(words: Sequence[str], count: int, seconds: float) -> AsyncIterator[str]:
        for index in range(count):
            if seconds:
                await asyncio.sleep(seconds)
            yield words[index % len(words)] + "\n"


# serve.deployment() and then the class, not the decorator: Ray types the bare decorator as returning the class.
IrisDeployment = serve.deployment(name="IrisDeployment")(IrisServer)
TokenStream = serve.deployment(name="TokenStream")(TokenStreamServer)


def deploy(http_port: int, *, request_timeout_s: float | None = None, iris_replicas: int = 1,
           token_max_ongoing: int = 5, token_max_queued: int = -1, replica_cpus: float = 0.25,
           more: Sequence[serve.RunTarget] = ()) -> None:
    """Starts Serve on 127.0.0.1:http_port in the cluster this process is connected to, and runs both
    applications, iris at /iris and tokens at /tokens, with `more` beside them, all at once; returns once all
    run. token_max_queued -1: Serve's default, no bound. replica_cpus: each replica's CPU reservation (Serve's
    default, 1, leaves a small machine without room)."""
    serve.start(http_options={"host": "127.0.0.1", "port": http_port, "request_timeout_s": request_timeout_s})
    actor = {"num_cpus": replica_cpus}
    iris = IrisDeployment.options(num_replicas=iris_replicas, ray_actor_options=actor).bind()
    tokens = TokenStream.options(max_ongoing_requests=token_max_ongoing, max_queued_requests=token_max_queued,
                                 ray_actor_options=actor).bind()
    serve.run_many([serve.RunTarget(iris, name="iris", route_prefix="/iris"),
                    serve.RunTarget(tokens, name="tokens", route_prefix="/tokens"), *more])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetscope.example.ray_serve", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", required=True, help="the Ray cluster's GCS address, host:port")
    parser.add_argument("--http-port", type=int, default=8000, help="the port of Serve's HTTP proxy (127.0.0.1)")
    parser.add_argument("--request-timeout", type=float, default=None,
                        help="Serve's end-to-end HTTP timeout in seconds (request_timeout_s); none by default")
    parser.add_argument("--iris-replicas", type=int, default=1)
    parser.add_argument("--tokens-max-ongoing", type=int, default=5,
                        help="max_ongoing_requests of each tokens replica")
    parser.add_argument("--tokens-max-queued", type=int, default=-1,
                        help="max_queued_requests of the tokens deployment; past it Serve answers 503 (-1: no bound)")
    args = parser.parse_args(argv)
    import ray

    ray.init(address=args.address, logging_level=logging.ERROR)
    deploy(args.http_port, request_timeout_s=args.request_timeout, iris_replicas=args.iris_replicas,
           token_max_ongoing=args.tokens_max_ongoing, token_max_queued=args.tokens_max_queued)
    print(json.dumps({"iris": f"http://127.0.0.1:{args.http_port}/iris",
                      "tokens": f"http://127.0.0.1:{args.http_port}/tokens"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
