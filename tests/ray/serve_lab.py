"""The Ray Serve lab: a real Ray head (RayHead) running the example's Serve applications (example/ray_serve.py:
iris and tokens) and a test-only `failing` application, driven by scripted traffic whose outcomes the client
knows, the node's /metrics page recorded after every phase with that ground truth beside it, in the format of
the vLLM lab (tests/engines/vllm_lab.py) so that tests/engines/replay.py reads both.

    ServeLab(workdir).start() ... record(folder) -> the phase names, each <folder>/<nn>-<phase>.prom and .json

What Serve counts is the proxy's status, and that is not always what the client saw: a stream the client
closes, or that request_timeout_s cuts, after its first byte is counted as the 200 it had already answered.
Each request's truth says both: `status` (the client's, 0 when it closed the connection) and `counted_as`
(the proxy's, from Ray's python/ray/serve/_private/proxy.py and http_util.py get_http_response_status)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetscope.localstack.process import free_port
from fleetscope.localstack.ray import RayHead
from tests.engines.traffic import at_once, write_phase

REQUEST_TIMEOUT_S = 2.0  # Serve's http_options.request_timeout_s in the lab
TOKENS_MAX_ONGOING, TOKENS_MAX_QUEUED = 1, 1  # so that three of five requests at once are refused
# Workers report their metrics to the node's agent every metrics_report_interval_ms (10 s by default).
HEAD_ENV = {"RAY_metrics_report_interval_ms": "500"}
DEPLOY_SECONDS = 240
REQUEST_SECONDS = 30
SETTLE_SECONDS = 30
TEXT_FORMAT = "text/plain; version=0.0.4"
# The node's page holds every Ray metric of the node (700 KB a page); a fixture keeps Serve's request families.
RECORDED_FAMILIES = ("ray_serve_num_http_requests_total", "ray_serve_num_http_error_requests_total",
                     "ray_serve_num_deployment_http_error_requests_total", "ray_serve_http_request_latency_ms",
                     "ray_serve_num_ongoing_http_requests", "ray_serve_replica_processing_queries",
                     "ray_serve_deployment_queued_queries", "ray_serve_deployment_request_counter_total",
                     "ray_serve_deployment_error_counter_total")
IRIS_INSTANCE = [5.1, 3.5, 1.4, 0.2]

DRIVER = """
import sys
import ray
from ray import serve
from fleetscope.example.ray_serve import deploy


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class Failing:
    # An application error, as a bug raises it: Serve answers 500.
    async def __call__(self, request):
        raise RuntimeError("scripted application error")


ray.init(address=sys.argv[1], logging_level="ERROR")
deploy(int(sys.argv[2]), request_timeout_s=float(sys.argv[3]), token_max_ongoing=int(sys.argv[4]),
       token_max_queued=int(sys.argv[5]), more=[serve.RunTarget(Failing.bind(), name="failing",
                                                                route_prefix="/failing")])
print("deployed", flush=True)
"""


@dataclass
class Outcome:
    kind: str  # what the client meant: iris, tokens, bad_input, failing, timeout, disconnect, disconnect_mid_stream
    application: str
    status: int  # what the client got; 0 where it closed the connection itself
    counted_as: int  # the status Serve's proxy records
    seconds: float = 0.0  # from sending to the last byte read (or to closing), on the client
    tokens: int | None = None  # lines of a /tokens stream the client read


class ServeLab:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.head = RayHead(self.workdir / "head", num_cpus=2, env=HEAD_ENV)
        self.port = 0

    def start(self) -> ServeLab:
        self.head.start()
        try:
            self.port = free_port()
            done = subprocess.run(
                [sys.executable, "-c", DRIVER, self.head.address, str(self.port), str(REQUEST_TIMEOUT_S),
                 str(TOKENS_MAX_ONGOING), str(TOKENS_MAX_QUEUED)],
                env={**os.environ, **self.head.environment}, capture_output=True, text=True, timeout=DEPLOY_SECONDS,
                check=False)
            if done.returncode != 0 or "deployed" not in done.stdout:
                raise RuntimeError(f"deploying the Serve applications failed ({done.returncode}):\n"
                                   f"{done.stderr[-3000:]}\n{self.head.log_tail()}")
        except BaseException:
            self.head.stop()
            raise
        return self

    def stop(self) -> None:
        self.head.stop()

    def __enter__(self) -> ServeLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def page(self) -> str:
        request = urllib.request.Request(self.head.metrics_url, headers={"Accept": TEXT_FORMAT})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_SECONDS)

    def post(self, kind: str, application: str, body: dict) -> Outcome:
        started = time.monotonic()
        connection = self._connection()
        try:
            connection.request("POST", f"/{application}", json.dumps(body), {"content-type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        tokens = len(answer.decode().splitlines()) if application == "tokens" and response.status == 200 else None
        return Outcome(kind, application, response.status, response.status, time.monotonic() - started, tokens)

    def disconnect(self, body: dict, after_first_token: bool, wait: float = 0.3) -> Outcome:
        """Sends a /tokens request and closes the connection: after `wait` seconds, before any byte of the
        answer (Serve counts 499), or after reading the first token (Serve counts the 200 it already sent)."""
        started = time.monotonic()
        connection = self._connection()
        connection.request("POST", "/tokens", json.dumps(body), {"content-type": "application/json"})
        if after_first_token:
            response = connection.getresponse()
            first = response.fp.readline()  # the first chunk's size line: the stream has begun
            assert response.status == 200 and first, (response.status, first)
        else:
            time.sleep(wait)
        assert connection.sock is not None
        connection.sock.shutdown(2)
        connection.close()
        return Outcome("disconnect_mid_stream" if after_first_token else "disconnect", "tokens", 0,
                       200 if after_first_token else 499, time.monotonic() - started)


def _together(calls: list, gap: float = 0.02) -> list[Outcome]:
    return at_once(calls, gap, timeout=REQUEST_SECONDS * 2)


def _iris(lab: ServeLab) -> Outcome:
    return lab.post("iris", "iris", {"instances": [IRIS_INSTANCE]})


def _tokens(lab: ServeLab, count: int = 4, token_seconds: float = 0.0) -> Outcome:
    return lab.post("tokens", "tokens", {"prompt": "gpu fleet token", "max_tokens": count,
                                         "token_seconds": token_seconds})


def _successes(lab: ServeLab) -> list[Outcome]:
    return [_iris(lab) for _ in range(6)] + [_tokens(lab) for _ in range(4)]


def _client_errors(lab: ServeLab) -> list[Outcome]:
    bad_iris = [lab.post("bad_input", "iris", {"instances": [[1.0, 2.0]]}) for _ in range(3)]
    bad_tokens = [lab.post("bad_input", "tokens", {"prompt": "", "max_tokens": 4}) for _ in range(2)]
    return bad_iris + bad_tokens


def _application_errors(lab: ServeLab) -> list[Outcome]:
    return [lab.post("failing", "failing", {}) for _ in range(3)]


def _timeouts(lab: ServeLab) -> list[Outcome]:
    # A prefill longer than request_timeout_s: Serve gives up before the answer starts and answers 408.
    # Two at once: one runs, one waits in the queue, and the timeout counts for both from their arrival.
    body = {"prompt": "slow", "max_tokens": 2, "prefill_seconds": REQUEST_TIMEOUT_S + 1.5}
    return _together([lambda: lab.post("timeout", "tokens", body) for _ in range(2)])


def _disconnects(lab: ServeLab) -> list[Outcome]:
    before = [lab.disconnect({"prompt": "gone", "max_tokens": 2, "prefill_seconds": 1.5}, after_first_token=False)
              for _ in range(2)]
    mid_stream = lab.disconnect({"prompt": "gone", "max_tokens": 20, "token_seconds": 0.05}, after_first_token=True)
    return [*before, mid_stream]


def _overload(lab: ServeLab) -> list[Outcome]:
    # Five at once against one running and one queued: the other three are refused with 503 (backpressure).
    outcomes = _together([lambda: _tokens(lab, 5, 0.1) for _ in range(5)])
    for outcome in outcomes:
        outcome.kind = "overload"
    return outcomes


PHASES = (("successes", _successes), ("client-errors", _client_errors), ("application-errors", _application_errors),
          ("timeouts", _timeouts), ("disconnects", _disconnects), ("overload", _overload))
COUNTED = {200: "ok", 400: "client_error", 500: "server_error", 408: "timeout", 499: "cancelled", 503: "rejected"}


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    """What Serve's proxy counted, by outcome: each request once."""
    tally = {"sent": len(outcomes), **dict.fromkeys(COUNTED.values(), 0)}
    for outcome in outcomes:
        tally[COUNTED[outcome.counted_as]] += 1
    return tally


def _page_total(page: str, family: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(family + "{"))


def settle(lab: ServeLab, expected_requests: int) -> str:
    """The page once it holds every request sent so far and nothing runs or waits (bounded): workers report
    to the node's agent on an interval, so a page read at once may lag the traffic."""
    deadline = time.monotonic() + SETTLE_SECONDS
    page = ""
    while time.monotonic() < deadline:
        page = lab.page()
        if _page_total(page, "ray_serve_num_http_requests_total") == expected_requests \
                and _page_total(page, "ray_serve_replica_processing_queries") == 0 \
                and _page_total(page, "ray_serve_deployment_queued_queries") == 0:
            time.sleep(0.6)  # one more report, so that every series of the last requests is on the page
            return lab.page()
        time.sleep(0.25)
    raise TimeoutError(f"Serve's page did not show {expected_requests} requests, idle, within {SETTLE_SECONDS}s; "
                       f"it shows {_page_total(page, 'ray_serve_num_http_requests_total')}")


def serve_families(page: str) -> str:
    """The page's RECORDED_FAMILIES, each with its HELP and TYPE lines, in the page's order."""
    kept, keep = [], False
    for line in page.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            keep = line.split()[2] in RECORDED_FAMILIES
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def version() -> str:
    done = subprocess.run([sys.executable, "-c", "import ray; print(ray.__version__)"], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


def record(lab: ServeLab, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    ray_version, written, total = version(), [], 0
    for index, (phase, drive) in enumerate(PHASES, start=1):
        outcomes = drive(lab)
        total += len(outcomes)
        page = settle(lab, total)
        truth = {
            "engine": "ray-serve", "version": ray_version, "phase": phase,
            "server": {"request_timeout_s": REQUEST_TIMEOUT_S, "tokens_max_ongoing_requests": TOKENS_MAX_ONGOING,
                       "tokens_max_queued_requests": TOKENS_MAX_QUEUED},
            "counts": counts(outcomes),
            "requests": [asdict(outcome) for outcome in outcomes],
        }
        written.append(write_phase(folder, index, phase, serve_families(page), truth))
    return written
