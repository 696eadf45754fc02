"""The demo's training job: one rank per simulated GPU node, each instrumented with the real training SDK
(fleetscope.exporters.training) and serving its own page, as each rank's process of a real job does. Steps, data
waits, checkpoints and evaluations are sleeps at a demo's pace (a step every half second).

A fault (the demo's XID 79 on the first node's GPU) crashes every rank: the rank whose GPU fell off the bus fails its
next CUDA call, the others the collective it never joins, and each process exits through the SDK's `with` (which
writes its record). After `relaunch` seconds with no process and no page the job comes back in place, as torchrun's
elastic agent restarts its workers on the nodes it holds: each rank re-initializes, restores its last checkpoint and
redoes the steps since. The SDK's state directory is what carries the counters across: the relaunch counts as a
restart, the downtime and re-initialization as `restart` time, the steps redone as `recompute`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from fleetscope import log
from fleetscope.exporters.training import TrainingMetrics, serve
from fleetscope.localstack.process import StartError

LOG = log.get("fleetscope.example.training")
MAX_SECONDS = 3600.0  # any one part of the pace, or the fault's delay in hours: past it a value is a typo
MAX_COUNT = 1_000_000
MAX_RANKS = 64
BIND_ATTEMPTS_SECONDS = 5.0  # a relaunched rank waits this long for its page's port, as a restarted process would


@dataclass(frozen=True)
class Pace:
    """Seconds each part of the loop takes, and how often the occasional ones come. The defaults keep about 95% of
    a healthy rank's time productive (half a second of each 0.51 s step, 0.2 s to checkpoint every 20 steps, 0.5 s to
    evaluate every 100), so that a crash costs visibly more than the job's overheads."""
    step: float = 0.5
    data_wait: float = 0.01
    checkpoint_every: int = 20  # steps
    checkpoint_save: float = 0.2
    evaluation_every: int = 100  # steps
    evaluation: float = 0.5
    initialization: float = 1.0  # the first start to the first step: the model built, the process group joined
    relaunch: float = 1.0  # a crash to the relaunched processes: nothing runs, no page answers
    reinitialization: float = 5.0  # the relaunched process to its checkpoint load: imports, process group, model
    checkpoint_load: float = 1.0
    samples: int = 32  # a rank's batch
    sequence: int = 2048  # tokens a sample

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
                    raise ValueError(f"pace.{field.name} must be a whole number from 1 to {MAX_COUNT}, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 <= value <= MAX_SECONDS:
                raise ValueError(f"pace.{field.name} must be seconds from 0 to {MAX_SECONDS:g}, not {value!r}")


class Crashed(RuntimeError):
    """What a rank's next CUDA call or collective raises once the fault has hit."""


class Stopped(Exception):
    """The job was stopped: each rank ends as a job stopped by its scheduler does, through the SDK's `with`."""


class _Incarnation:
    """One launch of the job's processes, ended by the fault or by stop()."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.crashed = False
        self._pages = threading.Condition()
        self._served = 0
        self._failed = False

    def served(self, failed: bool = False) -> None:
        """A rank's page answers (or, failed, never will)."""
        with self._pages:
            self._served += not failed
            self._failed |= failed
            self._pages.notify_all()

    def wait_served(self, ranks: int, timeout: float) -> bool:
        with self._pages:
            return self._pages.wait_for(lambda: self._failed or self._served == ranks, timeout) and not self._failed

    def wait(self, seconds: float) -> None:
        """The part of the loop taking `seconds`, cut short by the end of the incarnation."""
        if self.ended.wait(seconds):
            raise Crashed("the GPU fell off the bus") if self.crashed else Stopped()


class TrainingJob:
    """A data-parallel training job, rank r on hostnames[r], crashing once `fault_after` seconds after start()
    (never, if None). Its pages are on `address`; `addresses` lists them once start() returns."""

    def __init__(self, directory: Path, hostnames: Sequence[str], name: str = "llm-pretrain",
                 fault_after: float | None = None, pace: Pace | None = None, address: str = "127.0.0.1",
                 announce: Callable[[str], None] | None = None):
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ValueError(f"the training job's name must be 1 to 100 characters, not {name!r}")
        hosts = [] if isinstance(hostnames, str) else list(hostnames)  # a bare name would be one rank a letter
        if not 1 <= len(hosts) <= MAX_RANKS or not all(isinstance(host, str) and host for host in hosts):
            raise ValueError(f"a training job needs 1 to {MAX_RANKS} hostnames, one per rank, not {hostnames!r}")
        if fault_after is not None and (isinstance(fault_after, bool) or not isinstance(fault_after, (int, float))
                                        or not math.isfinite(fault_after) or not 0 <= fault_after <= 24 * MAX_SECONDS):
            raise ValueError(f"fault_after must be None or seconds from 0 to {24 * MAX_SECONDS:g}, not {fault_after!r}")
        self.name, self.hostnames, self.fault_after = name, hosts, fault_after
        self.pace = pace or Pace()
        self.address = address
        self._announce = announce or (lambda text: None)
        self.directory = Path(directory)
        self._state_dir = self.directory / "state"
        self._ports = [0] * len(hosts)  # chosen by the first launch, kept by the relaunch as Prometheus targets them
        self._steps = [0] * len(hosts)  # each rank's step_number, for what is announced
        self._errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._incarnation = _Incarnation()
        self._threads: list[threading.Thread] = []
        self._supervisor: threading.Thread | None = None
        self.restarts = 0  # relaunches

    @property
    def addresses(self) -> list[str]:
        return [f"{self.address}:{port}" for port in self._ports]

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def start(self, timeout: float = 10.0) -> TrainingJob:
        """Launches the ranks; returns once every page answers. A new job: an earlier run's state and checkpoints in
        the directory are removed, or the launch would count as a restart of it."""
        for stale in (self._state_dir, self.directory / "checkpoints"):
            shutil.rmtree(stale, ignore_errors=True)
        (self.directory / "checkpoints").mkdir(parents=True)
        started = time.monotonic()
        first = self._launch()
        self._supervisor = threading.Thread(target=self._supervise, args=(first, started), name="training-job",
                                            daemon=True)
        if not first.wait_served(len(self.hostnames), timeout):
            self.stop()
            raise StartError(f"the training job's ranks did not start within {timeout:g}s: "
                             f"{'; '.join(self.errors) or 'no page answered'}") from None
        self._supervisor.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ends every rank (each writes its record on the way out) and closes their pages."""
        self._stop.set()
        if self._supervisor is not None and self._supervisor.is_alive():
            self._supervisor.join(timeout)  # it ends the incarnation it launched last
        else:
            self._end(self._incarnation, timeout)
        alive = [thread.name for thread in [self._supervisor, *self._threads] if thread and thread.is_alive()]
        if alive:
            LOG.warning("training job threads did not stop", extra={"threads": alive})

    # --- the scheduler's side ---------------------------------------------------------------------------------

    def _launch(self) -> _Incarnation:
        incarnation = self._incarnation = _Incarnation()
        self._threads = [threading.Thread(target=self._rank, args=(rank, incarnation), daemon=True,
                                          name=f"training-rank-{rank}") for rank in range(len(self.hostnames))]
        for thread in self._threads:
            thread.start()
        return incarnation

    def _supervise(self, incarnation: _Incarnation, started: float) -> None:
        crash_at = math.inf if self.fault_after is None else started + self.fault_after
        try:
            while not self._stop.wait(min(max(0.0, crash_at - time.monotonic()), MAX_SECONDS)):
                if time.monotonic() < crash_at:
                    continue
                crash_at = math.inf  # one fault a run
                incarnation.crashed = True
                self._end(incarnation, BIND_ATTEMPTS_SECONDS + 5.0)
                reached = max(self._steps)
                self._announce(f"training job {self.name} crashed at step {reached}: every rank's process exited; "
                               f"relaunching in place in {self.pace.relaunch:g}s")
                if self._stop.wait(self.pace.relaunch):
                    return
                self.restarts += 1
                incarnation = self._launch()
                restored = min(self._checkpoint_step(rank) or 0 for rank in range(len(self.hostnames)))
                self._announce(f"training job {self.name} relaunched: restoring step {restored} from its last "
                               f"checkpoint and redoing {max(0, reached - restored)} steps")
        finally:
            self._end(incarnation, BIND_ATTEMPTS_SECONDS + 5.0)

    def _end(self, incarnation: _Incarnation, timeout: float) -> None:
        incarnation.ended.set()
        for thread in self._threads:
            thread.join(timeout)

    # --- one rank's process -----------------------------------------------------------------------------------

    def _rank(self, rank: int, incarnation: _Incarnation) -> None:
        try:
            with TrainingMetrics(self.name, rank=rank, hostname=self.hostnames[rank],
                                 state_dir=self._state_dir) as metrics:
                server = self._serve(metrics, rank, incarnation)
                try:
                    incarnation.served()
                    self._train(metrics, rank, incarnation)
                finally:
                    server.shutdown()
                    server.server_close()
        except (Crashed, Stopped):
            pass  # the process exits; its page goes with it
        except Exception as error:  # a rank that cannot run says why rather than vanish
            with self._lock:
                self._errors.append(f"rank {rank}: {error}")
            LOG.error("training rank failed", extra={"rank": rank, "error": str(error)})
            incarnation.served(failed=True)

    def _serve(self, metrics: TrainingMetrics, rank: int, incarnation: _Incarnation) -> WSGIServer:
        """The rank's page: the first launch takes a free port, a relaunch the same one (its target's)."""
        deadline = time.monotonic() + BIND_ATTEMPTS_SECONDS
        while True:
            try:
                server, _ = serve(metrics, self._ports[rank], self.address)
                break
            except OSError as error:
                if time.monotonic() >= deadline:
                    raise OSError(f"could not serve its page on {self.address}:{self._ports[rank]}: {error}") \
                        from error
                incarnation.wait(0.2)
        assert isinstance(server, WSGIServer)  # prometheus_client's server, typed object by serve()
        self._ports[rank] = server.server_port
        return server

    def _train(self, metrics: TrainingMetrics, rank: int, incarnation: _Incarnation) -> None:
        pace = self.pace
        restored = self._checkpoint_step(rank)
        incarnation.wait(pace.initialization if restored is None else pace.reinitialization)
        if restored is not None:
            with metrics.checkpoint("load", step=restored):
                incarnation.wait(pace.checkpoint_load)
        for _ in metrics.data(self._batches(incarnation)):
            with metrics.step(samples=pace.samples, tokens=pace.samples * pace.sequence):
                incarnation.wait(pace.step)
            step = self._steps[rank] = metrics.step_number
            if step % pace.checkpoint_every == 0:
                with metrics.checkpoint("save"):
                    incarnation.wait(pace.checkpoint_save)
                    self._save_checkpoint(rank, step)
            if step % pace.evaluation_every == 0:
                with metrics.evaluation():
                    incarnation.wait(pace.evaluation)

    def _batches(self, incarnation: _Incarnation) -> Iterator[int]:
        while True:
            incarnation.wait(self.pace.data_wait)
            yield self.pace.samples

    def _checkpoint_path(self, rank: int) -> Path:
        return self.directory / "checkpoints" / f"rank{rank}.json"

    def _save_checkpoint(self, rank: int, step: int) -> None:
        path = self._checkpoint_path(rank)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"step": step}))
        os.replace(partial, path)  # a crash mid-save leaves the previous checkpoint, as torch.save to a temp does

    def _checkpoint_step(self, rank: int) -> int | None:
        """The step rank's last checkpoint holds: 0 (a restart from scratch) if it saved none, None on a first
        start."""
        if self.restarts == 0:
            return None
        try:
            return int(json.loads(self._checkpoint_path(rank).read_text())["step"])
        except FileNotFoundError:
            return 0
