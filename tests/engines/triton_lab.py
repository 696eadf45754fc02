"""The Triton lab: a real Triton Inference Server (the tritonserver that nvidia-pytriton bundles, on CPU, in its
own virtual environment made by scripts/engines.sh) serving tiny numpy models through its Python backend on
127.0.0.1, driven by a scripted traffic mix whose outcomes the client knows, its metrics page recorded after
every phase with that ground truth beside it.

    .engines/triton/bin/python tests/engines/triton_lab.py <fixtures> <workdir>
    # writes <fixtures>/triton-<version>/<nn>-<phase>.prom and .json, prints that folder

This file runs inside the engine's environment (pytriton, tritonclient), never fleetscope's: pytriton starts
tritonserver itself, and cancelling a queued request needs tritonclient's gRPC client.

Models: double (x * 2), fails (raises in the model), slow (sleeps; batches of one, a queue of one), deadline
(slow's function; a queue whose requests time out) and stream (decoupled: three responses per request).
Phases: successes, streams, client errors (an unknown input, a wrong datatype, an unknown model), backend
errors, overload (more requests at once than slow's queue holds), queue timeouts (requests that wait in
deadline's queue past its timeout), cancelled (requests queued behind a slow one, cancelled by the client over
gRPC)."""

from __future__ import annotations

import json
import os
import socket
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Run as a script in the engine's environment, this folder is on sys.path: traffic.py is the standard library only.
from traffic import at_once, emptied, write_phase

SLOW_SECONDS = 1.0
SLOW_QUEUE = 1  # slow's max_queue_size: one request running, one queued, the rest rejected
DEADLINE_SECONDS = 0.3  # deadline's queue timeout
STREAM_RESPONSES = 3
REQUEST_SECONDS = 30
PHASE_SETTLE_SECONDS = 30


@dataclass
class Outcome:
    kind: str  # what the client meant: ok, stream, bad_input, bad_datatype, unknown_model, backend_error, ...
    model: str
    status: int  # the HTTP status; for gRPC 200 when answered, 0 when the client cancelled, else 500
    seconds: float = 0.0  # from sending to the last byte read, on the client
    responses: int = 0  # responses received (decoupled models answer several)
    error: str = ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.http_port, self.grpc_port, self.metrics_port = _free_port(), _free_port(), _free_port()
        self.triton = None

    def start(self) -> Lab:
        from pytriton.decorators import batch
        from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor, TimeoutAction
        from pytriton.triton import Triton, TritonConfig

        # The bundled Python-backend stub links libpython3.11.so.1.0 and finds the system's (Debian's 3.11.2)
        # before this interpreter's, whose standard library it then runs (RLock._recursion_count missing):
        # this interpreter's own libpython first.
        libdir = sysconfig.get_config_var("LIBDIR")
        os.environ["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH")) if p)

        @batch
        def double(x):
            return {"y": x * 2}

        @batch
        def fails(x):
            raise ValueError("the lab's failing model")

        @batch
        def slow(x):
            time.sleep(SLOW_SECONDS)
            return {"y": x}

        def stream(requests):
            for i in range(STREAM_RESPONSES):
                time.sleep(0.05)
                yield [{"y": request["x"] + i} for request in requests]

        config = TritonConfig(http_address="127.0.0.1", http_port=self.http_port, grpc_address="127.0.0.1",
                              grpc_port=self.grpc_port, metrics_address="127.0.0.1", metrics_port=self.metrics_port,
                              allow_metrics=True, allow_gpu_metrics=False, allow_cpu_metrics=False,
                              metrics_config=["histogram_latencies=true"], log_file=self.workdir / "triton.log")
        io = {"inputs": [Tensor(name="x", dtype=np.float32, shape=(-1,))],
              "outputs": [Tensor(name="y", dtype=np.float32, shape=(-1,))]}
        self.triton = Triton(config=config, workspace=self.workdir / "workspace")
        self.triton.bind("double", double, **io, config=ModelConfig(max_batch_size=4))
        self.triton.bind("fails", fails, **io, config=ModelConfig(max_batch_size=4))
        queue = QueuePolicy(max_queue_size=SLOW_QUEUE)
        self.triton.bind("slow", slow, **io, config=ModelConfig(
            max_batch_size=1, batcher=DynamicBatcher(default_queue_policy=queue)))
        # Requests that wait longer than DEADLINE_SECONDS in deadline's queue are rejected (timeout_action REJECT).
        expiry = QueuePolicy(timeout_action=TimeoutAction.REJECT,
                             default_timeout_microseconds=int(DEADLINE_SECONDS * 1e6))
        self.triton.bind("deadline", slow, **io, config=ModelConfig(
            max_batch_size=1, batcher=DynamicBatcher(default_queue_policy=expiry)))
        self.triton.bind("stream", stream, **io, config=ModelConfig(batching=False, decoupled=True))
        self.triton.run()
        return self

    def stop(self) -> None:
        if self.triton is not None:
            self.triton.stop()

    def version(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2", timeout=10) as response:
            return json.loads(response.read())["version"]

    def page(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def post(self, model: str, kind: str, name: str = "x", datatype: str = "FP32") -> Outcome:
        body = {"inputs": [{"name": name, "datatype": datatype, "shape": [1, 3], "data": [1, 2, 3]}]}
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/v2/models/{model}/infer",
                                         json.dumps(body).encode(), {"content-type": "application/json"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
                response.read()
                return Outcome(kind, model, response.status, time.monotonic() - started, responses=1)
        except urllib.error.HTTPError as error:
            message = json.loads(error.read() or b"{}").get("error", "")
            return Outcome(kind, model, error.code, time.monotonic() - started, error=message.splitlines()[0][:160])

    def grpc(self):
        import tritonclient.grpc as grpcclient

        return grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc_port}")

    def stream(self) -> Outcome:
        import tritonclient.grpc as grpcclient

        client, received, done = self.grpc(), [], threading.Event()

        def on_response(result, error) -> None:
            received.append(error)
            final = result is not None and result.get_response().parameters.get("triton_final_response")
            if error is not None or (final is not None and final.bool_param) or len(received) >= STREAM_RESPONSES:
                done.set()

        x = grpcclient.InferInput("x", [3], "FP32")
        x.set_data_from_numpy(np.array([1, 2, 3], dtype=np.float32))
        started = time.monotonic()
        client.start_stream(callback=on_response)
        try:
            client.async_stream_infer("stream", [x])
            done.wait(REQUEST_SECONDS)
        finally:
            client.stop_stream()
            client.close()
        errors = [e for e in received if e is not None]
        return Outcome("stream", "stream", 500 if errors or not received else 200, time.monotonic() - started,
                       responses=len(received) - len(errors), error=str(errors[0])[:160] if errors else "")


def _prompt_all(calls: list, gap: float = 0.02) -> list[Outcome]:
    return at_once(calls, gap, timeout=REQUEST_SECONDS * 2)


def _successes(lab: Lab) -> list[Outcome]:
    return [lab.post("double", "ok") for _ in range(6)]


def _streams(lab: Lab) -> list[Outcome]:
    return [lab.stream() for _ in range(3)]


def _client_errors(lab: Lab) -> list[Outcome]:
    return [lab.post("double", "bad_input", name="z"), lab.post("double", "bad_input", name="z"),
            lab.post("double", "bad_datatype", datatype="INT64"), lab.post("no-such-model", "unknown_model")]


def _backend_errors(lab: Lab) -> list[Outcome]:
    return [lab.post("fails", "backend_error") for _ in range(4)]


def _overload(lab: Lab) -> list[Outcome]:
    # Six at once against one running and SLOW_QUEUE queued: the rest are refused.
    return _prompt_all([lambda: lab.post("slow", "overload") for _ in range(6)])


def _queue_timeouts(lab: Lab) -> list[Outcome]:
    # Four at once: one runs for SLOW_SECONDS, the three behind it wait past DEADLINE_SECONDS and are rejected.
    return _prompt_all([lambda: lab.post("deadline", "queue_timeout") for _ in range(4)])


def _cancel_queued(client, x) -> list[Outcome]:
    """One slow request runs; a second waits in slow's queue behind it and is cancelled by the client (its gRPC
    call cancelled) while it waits."""
    answers: dict[str, tuple[float, object]] = {}
    finished = {"running": threading.Event(), "queued": threading.Event()}

    def answer(which: str):
        started = time.monotonic()

        def callback(result, error) -> None:  # tritonclient passes result= and error= by name
            answers[which] = (time.monotonic() - started, error)
            finished[which].set()
        return callback

    client.async_infer("slow", [x], answer("running"))
    time.sleep(0.2)
    call = client.async_infer("slow", [x], answer("queued"))
    time.sleep(0.2)
    call.cancel()
    for event in finished.values():
        event.wait(REQUEST_SECONDS)
    outcomes = []
    for which, kind in (("running", "ok"), ("queued", "cancelled")):
        seconds, error = answers.get(which, (REQUEST_SECONDS, "no answer"))
        text = "" if error is None else str(error)
        # gRPC's UNAVAILABLE is what HTTP answers 503 (a full queue, a queue timeout).
        status = 200 if error is None else 0 if "CANCELLED" in text else 503 if "UNAVAILABLE" in text else 500
        outcomes.append(Outcome(kind, "slow", status, seconds, responses=int(error is None), error=text[:160]))
    return outcomes


def _cancelled(lab: Lab) -> list[Outcome]:
    import tritonclient.grpc as grpcclient

    x = grpcclient.InferInput("x", [1, 3], "FP32")
    x.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32))
    client = lab.grpc()
    try:
        first = _cancel_queued(client, x)
        # A cancelled request leaves the queue when the scheduler next looks at it, after the running one.
        _settle(lab)
        return first + _cancel_queued(client, x)
    finally:
        client.close()


PHASES = (("successes", _successes), ("streams", _streams), ("client-errors", _client_errors),
          ("backend-errors", _backend_errors), ("overload", _overload), ("queue-timeouts", _queue_timeouts),
          ("cancelled", _cancelled))


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    """What the client saw, by outcome. Triton refuses with 503 in two ways, told apart by its message: a full
    queue ("Exceeds maximum queue size", before the request is queued) and a queue timeout ("Request timeout
    expired", after it waited); client errors are the other 4xx."""
    tally = {"sent": len(outcomes), "ok": 0, "client_error": 0, "server_error": 0, "queue_full": 0,
             "queue_timeout": 0, "cancelled": 0}
    for o in outcomes:
        if o.status == 200:
            tally["ok"] += 1
        elif o.status == 0:
            tally["cancelled"] += 1
        elif o.status == 503 and "maximum queue size" in o.error:
            tally["queue_full"] += 1
        elif o.status == 503 and "timeout expired" in o.error:
            tally["queue_timeout"] += 1
        elif 400 <= o.status < 500:
            tally["client_error"] += 1
        else:
            tally["server_error"] += 1
    return tally


def _settle(lab: Lab) -> None:
    """Waits (bounded) until no request is pending, so that the page after a phase holds all of it."""
    deadline = time.monotonic() + PHASE_SETTLE_SECONDS
    while time.monotonic() < deadline:
        busy = [line for line in lab.page().splitlines()
                if line.startswith("nv_inference_pending_request_count{") and float(line.rsplit(" ", 1)[1]) > 0]
        if not busy:
            time.sleep(1.5)  # margin for the last answers' statistics, reported after the answer is sent
            return
        time.sleep(0.5)
    raise TimeoutError(f"Triton still busy {PHASE_SETTLE_SECONDS}s after a phase")


def record(fixtures: Path, workdir: Path) -> Path:
    """Runs every phase and writes them into fixtures/triton-<tritonserver version>/ (emptied first)."""
    lab = Lab(workdir).start()
    try:
        version = lab.version()
        folder = emptied(fixtures / f"triton-{version}")
        for index, (phase, drive) in enumerate(PHASES, start=1):
            outcomes = drive(lab)
            _settle(lab)
            truth = {
                "engine": "triton", "version": version, "phase": phase,
                "server": {"slow_seconds": SLOW_SECONDS, "slow_max_queue_size": SLOW_QUEUE,
                           "deadline_queue_timeout_seconds": DEADLINE_SECONDS,
                           "stream_responses": STREAM_RESPONSES, "metrics_config": "histogram_latencies=true",
                           "pytriton": _pytriton_version()},
                "counts": counts(outcomes),
                "requests": [asdict(o) for o in outcomes],
            }
            write_phase(folder, index, phase, lab.page(), truth)
    finally:
        lab.stop()
    return folder


def _pytriton_version() -> str:
    from importlib.metadata import version

    return version("nvidia-pytriton")


if __name__ == "__main__":
    target, scratch = Path(sys.argv[1]), Path(sys.argv[2])
    print(record(target, scratch))
