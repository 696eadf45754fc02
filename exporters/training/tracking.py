"""Where a rank's time goes: a phase at every moment, switched by the context managers (also decorators) a plain
PyTorch loop wraps its parts in, summed per phase, with steps, samples, tokens and checkpoints counted beside.

Light (the standard library and fleetscope.exporters.catalog), and cheap on the step path: a step is two clock reads,
a lock taken twice, and with a state directory one pwrite of the rank's record.
"""

from __future__ import annotations

import bisect
import functools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, TypeVar

from fleetscope.exporters.catalog import training as spec
from fleetscope.exporters.training.state import State, StateFile, state_path

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_INDEX = {phase: index for index, phase in enumerate(spec.PHASES)}
PRODUCTIVE, DATA_WAIT, CHECKPOINT, EVALUATION, RESTART, INITIALIZATION, RECOMPUTE = (
    _INDEX[phase] for phase in ("productive", "data_wait", "checkpoint", "evaluation", "restart", "initialization",
                                "recompute"))


class Histogram:
    """Counts per bucket of the bounds the catalog declares (+Inf last), and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def copy(self) -> Histogram:
        other = Histogram(self.bounds)
        other.counts, other.total = list(self.counts), self.total
        return other


@dataclass(frozen=True)
class Snapshot:
    """What one scrape serves: the counters, with the current phase's time counted up to now."""

    job: str
    rank: int
    hostname: str
    state: State
    step_duration: Histogram
    checkpoint_duration: dict[str, Histogram]


class TrainingMetrics:
    """One rank's training telemetry. Create it first thing in the process (its creation is the job's start, or
    with `state_dir` holding an earlier incarnation's record, the end of a restart's downtime):

        metrics = TrainingMetrics(job="llama-8b", state_dir="/checkpoints/run-7")
        serve(metrics, port=9500)
        with metrics.checkpoint("load") as restore:   # or checkpoint("load", step=...) when the step is known
            state = torch.load(path)
            restore.step = state["step"]
        for batch in metrics.data(loader):
            with metrics.step(samples=len(batch)):
                ...

    rank defaults to the RANK environment variable (torchrun's), hostname to NODE_NAME, then the host's name, as the
    node exporter's --collector.hostname does: the rules join a rank to its node's GPUs and NCCL series on it, and in
    a Kubernetes pod the host's name is the pod's, so give the pod NODE_NAME from the downward API (spec.nodeName),
    as the exporter's DaemonSet has it. Without state_dir the counters start at zero in
    each process and a relaunch is not seen as a restart; with it, they carry on, the downtime counts as restart
    time and steps redone after restoring an older checkpoint count as recompute (the work lost).
    """

    def __init__(self, job: str, rank: int | None = None, hostname: str | None = None,
                 state_dir: str | os.PathLike[str] | None = None, job_start: float | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.job = job
        self.rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        self.hostname = hostname or os.environ.get("NODE_NAME") or socket.gethostname()
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._file = StateFile(state_path(state_dir, job, self.rank)) if state_dir is not None else None
        now_wall = wall()
        earlier = self._file.read() if self._file else None
        if earlier is not None:
            self._state = earlier
            self._state.restarts += 1
            self._state.phases[RESTART] += max(0.0, now_wall - earlier.last_update)
            self._phase = RESTART
        else:
            self._state = State(job_start=now_wall if job_start is None else job_start, last_update=now_wall)
            if job_start is not None:
                self._state.phases[INITIALIZATION] += max(0.0, now_wall - job_start)
            self._phase = INITIALIZATION
        self._since = clock()
        self._started = False  # a step has run since the start or the last restart
        self._closed = False
        self.step_number = 0  # steps in the model's state: set by a checkpoint load, one more after each step
        self._step_duration = Histogram(spec.STEP_BUCKETS)
        self._checkpoint_duration = {operation: Histogram(spec.CHECKPOINT_BUCKETS)
                                     for operation in spec.CHECKPOINT_OPERATIONS}
        self._persist()

    # --- the loop's parts -------------------------------------------------------------------------------------

    def step(self, samples: int = 0, tokens: int = 0) -> Step:
        """A training step: `with metrics.step(samples=32):`, or `@metrics.step(tokens=4096)` on the step
        function. Steps redoing work an earlier incarnation had done count as recompute, not productive."""
        return Step(self, samples, tokens)

    def data_wait(self) -> Phase:
        """Waiting for the next batch: `with metrics.data_wait(): batch = next(it)`."""
        return Phase(self, DATA_WAIT)

    def data(self, batches: Iterable[T]) -> Iterator[T]:
        """The batches of a loader, the time spent getting each counted as data wait."""
        iterator = iter(batches)
        while True:
            previous = self._switch(DATA_WAIT)
            try:
                batch = next(iterator)
            except StopIteration:
                self._switch(previous)
                return
            self._switch(previous)
            yield batch

    def evaluation(self) -> Phase:
        """An evaluation pass: `with metrics.evaluation():`, or a decorator."""
        return Phase(self, EVALUATION)

    def checkpoint(self, operation: str = "save", step: int | None = None) -> Checkpoint:
        """Saving ("save") or restoring ("load") a checkpoint. A load's `step` is the step the checkpoint holds:
        steps after it up to the highest an earlier incarnation reached count as recompute."""
        if operation not in spec.CHECKPOINT_OPERATIONS:
            raise ValueError(f"operation {operation!r} is not one of {', '.join(spec.CHECKPOINT_OPERATIONS)}")
        return Checkpoint(self, operation, step)

    def restart(self) -> None:
        """Marks a restart within the process (an elastic agent's, an in-process retry): the time until the next
        step counts as restart."""
        with self._lock:
            self._state.restarts += 1
        self._started = False
        self._switch(RESTART)

    def close(self) -> None:
        """Marks the job's (this rank's) end: counts the current phase up to now and writes the record."""
        if self._closed:
            return
        self._switch(self._phase)
        self._persist()
        self._closed = True
        if self._file:
            self._file.close()

    def __enter__(self) -> TrainingMetrics:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # --- what a scrape reads ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            state = State(**{**self._state.__dict__, "phases": list(self._state.phases)})
            if not self._closed:
                state.phases[self._phase] += now - self._since
            return Snapshot(self.job, self.rank, self.hostname, state, self._step_duration.copy(),
                            {op: histogram.copy() for op, histogram in self._checkpoint_duration.items()})

    # --- inside -----------------------------------------------------------------------------------------------

    def _ambient(self) -> int:
        """The phase between the marked parts: productive once steps run (recompute while redoing lost work),
        initialization or restart before the first."""
        if not self._started:
            return self._phase if self._phase in (INITIALIZATION, RESTART) else INITIALIZATION
        return RECOMPUTE if self.step_number < self._state.high_water_step else PRODUCTIVE

    def _switch(self, phase: int) -> int:
        now = self._clock()
        with self._lock:
            if self._closed:
                return self._phase
            previous = self._phase
            self._state.phases[previous] += now - self._since
            self._since = now
            self._phase = phase
        return previous

    def _persist(self) -> None:
        if self._file and not self._closed:
            with self._lock:
                self._state.last_update = self._wall()
                self._file.write(self._state)

    def _step_started(self) -> float:
        self._started = True
        self._switch(RECOMPUTE if self.step_number < self._state.high_water_step else PRODUCTIVE)
        return self._clock()

    def _step_finished(self, started: float, samples: int, tokens: int, completed: bool) -> None:
        now = self._clock()
        if completed:
            self.step_number += 1
            with self._lock:
                state = self._state
                state.steps += 1
                state.samples += samples
                state.tokens += tokens
                state.high_water_step = max(state.high_water_step, self.step_number)
                state.last_step = self._wall()
                self._step_duration.observe(now - started)
        self._switch(self._ambient())
        self._persist()

    def _phase_finished(self, previous: int) -> None:
        self._switch(self._ambient() if previous in (PRODUCTIVE, RECOMPUTE) else previous)
        self._persist()

    def _checkpoint_finished(self, operation: str, started: float, step: int | None) -> None:
        duration = self._clock() - started
        with self._lock:
            self._checkpoint_duration[operation].observe(duration)
            if operation == "save":
                self._state.last_checkpoint = self._wall()
        if operation == "load" and step is not None:
            self.step_number = step


class _Region:
    """A context manager that is also a decorator (a fresh region per call)."""

    def __enter__(self) -> object:
        raise NotImplementedError

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        raise NotImplementedError

    def _fresh(self) -> _Region:
        raise NotImplementedError

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._fresh():
                return function(*args, **kwargs)
        return wrapper


class Step(_Region):
    __slots__ = ("_metrics", "samples", "tokens", "_started")

    def __init__(self, metrics: TrainingMetrics, samples: int, tokens: int):
        self._metrics, self.samples, self.tokens = metrics, samples, tokens
        self._started = 0.0

    def _fresh(self) -> Step:
        return Step(self._metrics, self.samples, self.tokens)

    def __enter__(self) -> None:
        self._started = self._metrics._step_started()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._metrics._step_finished(self._started, self.samples, self.tokens, kind is None)


class Phase(_Region):
    __slots__ = ("_metrics", "_phase", "_previous")

    def __init__(self, metrics: TrainingMetrics, phase: int):
        self._metrics, self._phase, self._previous = metrics, phase, phase

    def _fresh(self) -> Phase:
        return Phase(self._metrics, self._phase)

    def __enter__(self) -> Phase:
        self._previous = self._metrics._switch(self._phase)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._metrics._phase_finished(self._previous)


class Checkpoint(Phase):
    __slots__ = ("operation", "step", "_started")

    def __init__(self, metrics: TrainingMetrics, operation: str, step: int | None):
        super().__init__(metrics, CHECKPOINT)
        self.operation, self.step, self._started = operation, step, 0.0

    def _fresh(self) -> Checkpoint:
        return Checkpoint(self._metrics, self.operation, self.step)

    def __enter__(self) -> Checkpoint:
        """The checkpoint, whose `step` a load may set inside the block once it has read the checkpoint."""
        super().__enter__()
        self._started = self._metrics._clock()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self._metrics._checkpoint_finished(self.operation, self._started, self.step)
        super().__exit__(kind, error, traceback)

