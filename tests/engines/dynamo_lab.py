"""The Dynamo lab (scripts/engines.sh dynamo): NVIDIA Dynamo's frontend (`python -m dynamo.frontend`, its own
virtual environment made by scripts/engines.sh) in front of its mocker engine (`python -m dynamo.mocker`, which
simulates a vLLM-style scheduler and KV cache with no model weights) on 127.0.0.1, driven by a scripted traffic
mix whose outcomes the client knows, the frontend's /metrics page recorded after every phase with that ground
truth beside it.

    record(folder, workdir) -> the phase names, each written as <folder>/<nn>-<phase>.prom and .json

No etcd and no NATS: discovery through files (--discovery-backend file, DYN_FILE_KV), requests over TCP, events
over ZMQ. The mocker reads only the model's config and tokenizer; the frontend wants a chat template in its
tokenizer_config.json ("prompt_formatter_from_mdc: chat_template field is required"), so the tiny model is
copied with one added.

Phases: successes, client errors (an unknown model: 404; a temperature out of range: 400), too long (prompts past
the mocker's max_model_len: the worker fails them and the frontend answers 500), cancelled (streams the client
leaves 0.3 s in: Dynamo counts some as successes, see dynamo_expectations.py), overload (more long requests at
once than the KV router lets onto a worker whose few KV blocks are busy: the frontend answers 529), prefix cache
(one long prompt sent four times, one after another: the KV router finds its full blocks cached on the worker).

Each phase's ground truth also says what the KV router (--router-mode kv) should count for the prefix cache: the
prompt tokens it routed and those it found cached on the worker it selected (prefix_cache_truth)."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from fleetscope.localstack.process import ManagedProcess, start_on_free_port
from tests.engines.traffic import Completion as Outcome
from tests.engines.traffic import at_once, completion_counts, completion_tokens, post_completion, write_phase

REPOSITORY = Path(__file__).resolve().parents[2]
ENGINES = REPOSITORY / ".engines"
PYTHON = ENGINES / "dynamo" / "bin" / "python"
MODEL = "tiny-llama"
MAX_MODEL_LEN, MAX_NUM_SEQS, KV_BLOCKS = 256, 2, 8  # the mocker's; 8 blocks of BLOCK_SIZE tokens
BLOCK_SIZE = 64  # the mocker's KV block: its vLLM-style default at 1.6.1, given so that the ground truth names it
PREFIX_PROMPT_WORDS, PREFIX_SENDS = 200, 4  # 3 full blocks and 8 tokens; with 8 generated, 4 of the 8 KV blocks
SPEEDUP_RATIO = 1.0  # the mocker's simulated step times as they are: about 6 ms a token here
STREAM_READ_SECONDS = 0.3  # how long the client reads a stream before it leaves
BUSY_THRESHOLD = 0.2  # the frontend's --active-decode-blocks-threshold: a worker past it is busy
STARTUP_SECONDS = 180
REQUEST_SECONDS = 60
PHASE_SETTLE_SECONDS = 30
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")





def version() -> str:
    out = subprocess.run([str(PYTHON), "-c", "from importlib.metadata import version; print(version('ai-dynamo'))"],
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


def make_model(folder: Path) -> Path:
    """The tiny Llama's config and tokenizer (no weights: the mocker loads none), with a chat template."""
    source = ENGINES / "models" / MODEL
    if not (source / "tokenizer.json").exists():
        subprocess.run([str(ENGINES / "vllm" / "bin" / "python"), str(Path(__file__).with_name("tiny_model.py")),
                        str(source)], check=True, timeout=300, capture_output=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    config = json.loads((source / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHAT_TEMPLATE}, indent=1))
    return folder


class Server:
    def __init__(self, model: Path, workdir: Path):
        self.model, self.workdir = model, workdir
        self.mocker: ManagedProcess | None = None
        self.frontend: ManagedProcess | None = None
        self.port = 0
        self.settings = {"DYN_FILE_KV": str(workdir / "kv"), "TMPDIR": str(workdir), "HF_HUB_OFFLINE": "1",
                         "TRANSFORMERS_OFFLINE": "1", "DYN_LOG": "info"}
        self.planes = ["--discovery-backend", "file", "--request-plane", "tcp", "--event-plane", "zmq"]
        self.sent: list[tuple[list[str], Outcome]] = []  # every completion's prompt (its words) and outcome

    def _env(self) -> list[str]:
        return ["env", *(f"{k}={v}" for k, v in self.settings.items()), "nice"]

    def start(self) -> Server:
        mocker = [str(PYTHON), "-m", "dynamo.mocker", "--model-path", str(self.model), "--model-name", MODEL,
                  "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", str(MAX_NUM_SEQS),
                  "--num-gpu-blocks-override", str(KV_BLOCKS), "--block-size", str(BLOCK_SIZE),
                  "--speedup-ratio", str(SPEEDUP_RATIO), *self.planes]
        registered = self.workdir / "kv"
        self.mocker = ManagedProcess([*self._env(), *mocker], self.workdir / "mocker.log",
                                     lambda: any(registered.rglob("*")) if registered.exists() else False)
        self.mocker.start(timeout=STARTUP_SECONDS)

        def make(port: int) -> ManagedProcess:
            argv = [str(PYTHON), "-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port", str(port),
                    "--router-mode", "kv", "--active-decode-blocks-threshold", str(BUSY_THRESHOLD), *self.planes]
            return ManagedProcess([*self._env(), *argv], self.workdir / "frontend.log",
                                  lambda: MODEL in _get(f"http://127.0.0.1:{port}/v1/models"))

        self.frontend, self.port = start_on_free_port(make, timeout=STARTUP_SECONDS, attempts=2)
        return self

    def stop(self) -> None:
        for process in (self.frontend, self.mocker):
            if process is not None:
                process.stop(timeout=30)

    def page(self) -> str:
        return _get(f"http://127.0.0.1:{self.port}/metrics")

    def post(self, body: dict, kind: str) -> Outcome:
        outcome = post_completion(self.port, body, kind, REQUEST_SECONDS)
        self.sent.append((body["prompt"].split(), outcome))
        return outcome

    def cancel_after_first_chunk(self, body: dict) -> Outcome:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_SECONDS)
        connection.request("POST", "/v1/completions", json.dumps({**body, "stream": True}),
                           {"content-type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:  # refused before the stream began (529 when the router finds no idle worker)
            response.read()
            connection.close()
            outcome = Outcome("cancelled", response.status, seconds=time.monotonic() - started)
        else:
            assert response.fp.readline(), "the stream ended before its first chunk"
            while time.monotonic() - started < STREAM_READ_SECONDS:
                response.fp.readline()
            connection.sock.shutdown(2)
            connection.close()
            outcome = Outcome("cancelled", 0, seconds=time.monotonic() - started)
        self.sent.append((body["prompt"].split(), outcome))
        return outcome


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()
    except OSError:
        return ""


def _prompt(words: int, vocabulary: tuple[str, ...] = ("gpu", "fleet", "token", "model")) -> str:
    # Each of the tiny tokenizer's words is one token (tests/engines/tiny_model.py; checked in prefix_cache_truth).
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(words))


def _completion(server: Server, tokens: int = 8, kind: str = "success") -> Outcome:
    return server.post({"model": MODEL, "prompt": _prompt(6), "max_tokens": tokens, "ignore_eos": True}, kind)


def _successes(server: Server) -> list[Outcome]:
    return [_completion(server) for _ in range(6)]


def _client_errors(server: Server) -> list[Outcome]:
    unknown = [server.post({"model": "no-such-model", "prompt": _prompt(4), "max_tokens": 8}, "unknown_model")
               for _ in range(2)]
    bad = [server.post({"model": MODEL, "prompt": _prompt(4), "max_tokens": 8, "temperature": -1.0},
                       "bad_parameter") for _ in range(3)]
    return unknown + bad


def _too_long(server: Server) -> list[Outcome]:
    return [server.post({"model": MODEL, "prompt": _prompt(MAX_MODEL_LEN + 40), "max_tokens": 8}, "too_long")
            for _ in range(2)]


def _cancelled(server: Server) -> list[Outcome]:
    # One at a time, each after the worker has let go of the last one's blocks: a stream the client left keeps
    # its blocks until the worker hears of it, and the router would refuse the next as overload. The router hears
    # of it later than the frontend's gauges show: with no pause after them, 3 of 4 lab runs had one refused (529).
    body = {"model": MODEL, "prompt": _prompt(6), "max_tokens": MAX_MODEL_LEN - 16, "ignore_eos": True}
    outcomes = []
    for _ in range(3):
        _settle(server)
        outcomes.append(server.cancel_after_first_chunk(body))
    return outcomes


def _overload(server: Server) -> list[Outcome]:
    # Ten at once: the router lets a request onto the worker while its active KV blocks are under the threshold
    # (1.6 of 8) and refuses the rest with 529.
    return at_once([lambda: _completion(server, 200, "overload") for _ in range(10)], gap=0.02,
                   timeout=REQUEST_SECONDS * 2)


def _prefix_cache(server: Server) -> list[Outcome]:
    # One at a time, each on an idle worker, in words no other phase sends, so that only this phase's own sends can
    # be found cached. The router may refuse one (529) sent right after the last one ended, the worker still busy as
    # it last heard (1 of 4 in a lab run with no pause after the frontend's gauges; none in 3 runs with the pause):
    # one refused is sent again, until PREFIX_SENDS were answered. It is routed nowhere; the ground truth leaves it out.
    body = {"model": MODEL, "prompt": _prompt(PREFIX_PROMPT_WORDS, ("serve", "batch", "queue", "cache")),
            "max_tokens": 8, "ignore_eos": True}
    outcomes: list[Outcome] = []
    while sum(o.status == 200 for o in outcomes) < PREFIX_SENDS and len(outcomes) < 2 * PREFIX_SENDS:
        _settle(server)
        outcomes.append(server.post(body, "success"))
    return outcomes


PHASES = (("successes", _successes), ("client-errors", _client_errors), ("too-long", _too_long),
          ("cancelled", _cancelled), ("overload", _overload), ("prefix-cache", _prefix_cache))
# What reaches the KV router's counters: a request it routed to the worker, which answered it (200), failed it
# (500) or streamed it until the client left (0). A 400 or 404 is refused before routing, a 529 by the router.
ROUTED = (200, 500, 0)


def _full_blocks_shared(prompt: list[str], earlier: list[str]) -> int:
    shared = next((i for i, (a, b) in enumerate(zip(prompt, earlier, strict=False)) if a != b),
                  min(len(prompt), len(earlier)))
    return shared // BLOCK_SIZE


def prefix_cache_truth(sent: list[tuple[list[str], Outcome]], before: list[list[str]]) -> dict[str, int]:
    """What the KV router should count for `sent` (a phase's prompts, as words, and outcomes) on a worker that
    already holds the blocks of the prompts in `before` (those it served earlier; this adds the phase's own):
    every routed prompt's tokens, and of them the full blocks it shares from its start with a prompt the worker
    served before it. The router counts whole blocks (a prompt's last partial block is never a hit) from the
    worker's KV events; a prompt the worker fails (500: past max_model_len) is never scheduled, so it stores
    nothing. A block holding generated tokens is never counted: the client's prompts are not the mocker's output.
    Nothing is evicted: the lab's prompts that share blocks fit the worker's KV blocks with room to spare."""
    routed = cached = 0
    for words, outcome in sent:
        if outcome.prompt_tokens is not None and outcome.prompt_tokens != len(words):
            raise ValueError(f"{len(words)} words counted as {outcome.prompt_tokens} tokens: not one a word")
        if outcome.status not in ROUTED:
            continue
        routed += len(words)
        cached += max((_full_blocks_shared(words, earlier) for earlier in before), default=0) * BLOCK_SIZE
        if outcome.status != 500:
            before.append(words)
    return {"block_size": BLOCK_SIZE, "routed_tokens": routed, "cached_tokens": cached}


def _settle(server: Server, pause: float = 2) -> None:
    """Waits (bounded) until the frontend holds nothing in flight or queued and the worker no KV blocks, so the
    page holds the whole phase and the next phase starts on an idle worker."""
    deadline = time.monotonic() + PHASE_SETTLE_SECONDS
    while time.monotonic() < deadline:
        busy = [line for line in server.page().splitlines()
                if line.startswith(("dynamo_frontend_inflight_requests{", "dynamo_frontend_queued_requests{",
                                    "dynamo_frontend_worker_active_decode_blocks{"))
                and float(line.rsplit(" ", 1)[1]) > 0]
        if not busy:
            time.sleep(pause)  # a closed stream is counted once the frontend notices it
            return
        time.sleep(0.5)
    raise TimeoutError(f"Dynamo still busy {PHASE_SETTLE_SECONDS}s after a phase")


def record(folder: Path, workdir: Path) -> list[str]:
    engine_version = version()
    model = make_model(workdir / "model")
    server = Server(model, workdir).start()
    written, served = [], []
    try:
        for index, (phase, drive) in enumerate(PHASES, start=1):
            first = len(server.sent)
            outcomes = drive(server)
            _settle(server)
            truth = {
                "engine": "dynamo", "version": engine_version, "phase": phase, "model": MODEL,
                "server": {"max_model_len": MAX_MODEL_LEN, "max_num_seqs": MAX_NUM_SEQS, "kv_blocks": KV_BLOCKS,
                           "busy_threshold": BUSY_THRESHOLD, "speedup_ratio": SPEEDUP_RATIO,
                           "worker": "dynamo.mocker"},
                "counts": completion_counts(outcomes, rejected=(429, 503, 529)),  # 529: every worker busy
                "tokens": completion_tokens(outcomes),
                "prefix_cache": prefix_cache_truth(server.sent[first:], served),
                "requests": [asdict(o) for o in outcomes],
            }
            written.append(write_phase(folder, index, phase, server.page(), truth))
    finally:
        server.stop()
    return written

