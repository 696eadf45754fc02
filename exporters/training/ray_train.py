"""Ray Train (V2, the default in Ray 2.60, which this is written against) jobs feed the training SDK with no change to
the training loop: one callback in the run's config, and every worker keeps a TrainingMetrics of its own.

    from fleetscope.exporters.training.ray_train import TrainingMetricsCallback
    trainer = TorchTrainer(train_loop, scaling_config=ScalingConfig(num_workers=8),
                           run_config=RunConfig(name="llama-8b", storage_path="/shared/runs",
                                                failure_config=FailureConfig(max_failures=3),
                                                callbacks=[TrainingMetricsCallback(file_sd_dir="/shared/sd")]))

What each worker books, and from which Ray Train event:
- the series' labels: `training_job` is the run's name (RunConfig.name), `rank` the worker's world rank,
  `hostname` its node's host name (cut to 128 characters), as a Slurm or torchrun rank's;
- a step per `ray.train.report` call (steps="report", the default): a step runs from the end of the previous
  report (the first from the worker's start, once its train context is set up) to the start of the next, so the
  loop's own set-up before its first report counts in the first step (as recompute after a restart). Ray Train's
  controller takes one report from each worker a poll (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, 2 s by default) and a
  worker's second report waits for it, so a loop of short steps reports every N steps; it then marks its steps
  itself with steps="explicit" and `with metrics().step(samples=...):` around each, one line;
- a checkpoint save for the time Ray Train takes to persist a reported checkpoint (a synchronous upload, the
  default; an asynchronous upload runs beside the loop and is not booked as the loop's time);
- a restart when Ray Train relaunches the worker group after a failure (FailureConfig(max_failures=...)): the
  new workers find the earlier ones' records in the state directory, book the downtime to `restart`, and learn
  the step of the checkpoint they restore from the ledger kept there, so that steps redone after it count as
  `recompute`.

The state directory defaults to `fleetscope/` in the run's own folder (storage_path/name) where that is a local or
mounted file system, the place Ray Train already requires every node to reach; pass state_dir= for another, or
where the storage is an object store (the run's restarts are then not seen).

Each worker serves its page (the SDK's serve) on a port the kernel picks, and Prometheus finds it by file-based
service discovery: with file_sd_dir, each worker writes `<file_sd_dir>/fleetscope-ray-train-<job>-rank<N>.json`
(one target, `<node IP>:<port>`; written whole by a rename) and removes it when it stops. A relaunched rank
rewrites its own file, so a worker that died without removing it is replaced, not doubled. Point
`file_sd_configs` at `<file_sd_dir>/*.json`.

The loop may take the worker's TrainingMetrics with `metrics()` to mark more: `metrics().data(loader)` for data
wait, `metrics().evaluation()`, or `metrics().checkpoint("load", step=...)` around its own restore.

This module imports Ray, and Ray Train's worker-side callback interfaces (ray.train.v2._internal.execution.callback,
DeveloperAPI: WorkerCallback and TrainContextCallback are the only hooks that run in the workers); the SDK package
itself (fleetscope.exporters.training) never imports it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray
from ray.train.v2._internal.execution.callback import TrainContextCallback, WorkerCallback
from ray.train.v2._internal.execution.context import TrainContext, get_train_context

from fleetscope import log
from fleetscope.exporters.training.prometheus import serve
from fleetscope.exporters.training.state import state_path
from fleetscope.exporters.training.tracking import Step, TrainingMetrics

_logger = log.get("fleetscope.exporters.training.ray_train")

MAX_LABEL_LENGTH = 128
STATE_FOLDER = "fleetscope"
STEP_SOURCES = ("report", "explicit")
LEDGER_ENTRIES = 64  # checkpoints a ledger remembers; a restore is from one of the last few

_current: _WorkerMetrics | None = None


def metrics() -> TrainingMetrics:
    """This worker's TrainingMetrics, to mark data wait, evaluation or a checkpoint load in the loop."""
    if _current is None:
        raise RuntimeError("no fleetscope training metrics in this process: call metrics() inside a Ray Train "
                           "training function whose RunConfig(callbacks=[...]) has a TrainingMetricsCallback")
    return _current.metrics


class TrainingMetricsCallback(WorkerCallback, TrainContextCallback):
    """Put one in RunConfig(callbacks=[...]). Ray Train copies it into each worker; what it keeps there is made
    in the worker, so the object itself stays plain configuration.

    job: the training_job label (default: the run's name). steps: "report" (each ray.train.report ends a step)
    or "explicit" (the loop's `with metrics().step():` do). state_dir: where ranks' records and checkpoint ledgers
    live across restarts (default: the run's folder, see the module's notes). port and address: where each worker
    serves its page (0: a free port each; a fixed port is the first of a node's workers, local rank N serving on
    port + N). file_sd_dir: where each worker writes its Prometheus file-SD target.
    target_host: the host in that target (default: the node's IP address as Ray knows it)."""

    def __init__(self, *, job: str | None = None, steps: str = "report",
                 state_dir: str | os.PathLike[str] | None = None, port: int = 0, address: str = "0.0.0.0",
                 file_sd_dir: str | os.PathLike[str] | None = None, target_host: str | None = None):
        if steps not in STEP_SOURCES:
            raise ValueError(f"steps must be one of {', '.join(STEP_SOURCES)}, not {steps!r}: 'report' counts each "
                             "ray.train.report as a step, 'explicit' leaves it to `with metrics().step():`")
        if job is not None and not job.strip():
            raise ValueError("job must name the training job (or be left out to use the Ray Train run's name)")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (a free one) or 1-65535, not {port}")
        self.job = job
        self.steps = steps
        self.state_dir = None if state_dir is None else str(state_dir)
        self.port = port
        self.address = address
        self.file_sd_dir = None if file_sd_dir is None else str(file_sd_dir)
        self.target_host = target_host
        self._worker: _WorkerMetrics | None = None

    # --- WorkerCallback: in each worker ---------------------------------------------------------------------

    def after_init_train_context(self) -> None:
        global _current
        context = get_train_context()
        job = (self.job or context.get_experiment_name())[:MAX_LABEL_LENGTH]
        state_dir = self.state_dir or _run_folder(context)
        target_host = self.target_host or ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self._worker = _WorkerMetrics(
            job=job, rank=context.get_world_rank(), hostname=socket.gethostname()[:MAX_LABEL_LENGTH],
            report_steps=self.steps == "report",
            state_dir=state_dir, restored=_checkpoint_path(context),
            port=self.port and self.port + context.get_local_rank(), address=self.address,
            file_sd_dir=self.file_sd_dir, target_host=target_host)
        _current = self._worker

    def before_worker_shutdown(self) -> None:
        global _current
        worker, self._worker = self._worker, None
        if worker is None:
            return
        runner = get_train_context().execution_context.training_thread_runner
        worker.stop(finished=not runner.is_running() and runner.get_error() is None)
        if _current is worker:
            _current = None

    # --- TrainContextCallback: around ray.train.report, on the training thread --------------------------------

    @contextmanager
    def on_report(self) -> Iterator[None]:
        if self._worker is None:
            yield
            return
        with self._worker.report():
            yield

    @contextmanager
    def on_checkpoint_transfer(self) -> Iterator[None]:
        if self._worker is None:
            yield
            return
        with self._worker.checkpoint_transfer():
            yield


class _NotCompleted(Exception):
    """Ends a step without counting it: the time after a run's last report is no step."""


class _WorkerMetrics:
    """One worker's metrics for one incarnation of the worker group: its page, its target file, its open step."""

    def __init__(self, *, job: str, rank: int, hostname: str, report_steps: bool, state_dir: str | None,
                 restored: str | None, port: int, address: str, file_sd_dir: str | None, target_host: str):
        try:
            self.metrics = TrainingMetrics(job=job, rank=rank, hostname=hostname, state_dir=state_dir)
        except OSError as error:  # the job trains on; only its restarts go unseen
            _logger.error("cannot keep the rank's record in the state directory: restarts will not be booked; "
                          "pass TrainingMetricsCallback(state_dir=...) a writable folder on shared storage",
                          extra={"state_dir": state_dir, "error": str(error)})
            self.metrics = TrainingMetrics(job=job, rank=rank, hostname=hostname)
            state_dir = None
        self._ledger = CheckpointLedger(ledger_path(state_dir, job, rank)) if state_dir else None
        if restored is not None and self._ledger is not None:
            step = self._ledger.step_of(restored)
            if step is None:
                _logger.warning("the checkpoint this run restores is not in the ledger (a checkpoint from another "
                                "run?): steps after it are not told apart from new ones",
                                extra={"checkpoint": restored, "ledger": str(self._ledger.path)})
            else:
                self.metrics.step_number = step
        self._report_thread: int | None = None
        self._async_upload_logged = False
        self._checkpoint = restored
        self.port = 0
        self._server: object | None = None
        self._target_file: Path | None = None
        try:
            self._server, _ = serve(self.metrics, port, address)
            self.port = self._server.server_port  # type: ignore[attr-defined]
            if file_sd_dir:
                self._target_file = _write_target(Path(file_sd_dir), job, rank, f"{_host(target_host)}:{self.port}")
        except OSError as error:  # a page or target file that cannot be made never stops the training
            _logger.error("cannot serve this worker's training metrics: give each worker a free port "
                          "(TrainingMetricsCallback(port=0)) and a writable file_sd_dir",
                          extra={"training_job": job, "rank": rank, "port": port, "error": str(error)})
        else:
            _logger.info("serving training metrics", extra={"training_job": job, "rank": rank, "port": self.port})
        self._report_steps = report_steps
        self._step: Step | None = self._begin_step() if report_steps else None

    def _begin_step(self) -> Step:
        step = self.metrics.step()
        step.__enter__()
        return step

    @contextmanager
    def report(self) -> Iterator[None]:
        if self._step is not None:
            self._step.__exit__(None, None, None)
            self._step = None
        self._report_thread = threading.get_ident()
        try:
            yield
        finally:
            self._report_thread = None
        self._note_checkpoint()
        if self._report_steps:
            self._step = self._begin_step()

    @contextmanager
    def checkpoint_transfer(self) -> Iterator[None]:
        if self._report_thread != threading.get_ident():
            if not self._async_upload_logged:
                _logger.info("checkpoints upload asynchronously, beside the loop: their time is not booked as "
                             "checkpoint time", extra={"training_job": self.metrics.job})
                self._async_upload_logged = True
            yield
            return
        with self.metrics.checkpoint("save"):
            yield

    def _note_checkpoint(self) -> None:
        """A report that carried a checkpoint leaves it as the train context's latest: the ledger records which
        step it holds, for the restore after a failure."""
        path = _checkpoint_path(get_train_context())
        if path is not None and path != self._checkpoint:
            self._checkpoint = path
            if self._ledger is not None:
                self._ledger.record(path, self.metrics.step_number)

    def stop(self, finished: bool) -> None:
        """After a clean end the open step (the time since the last report) is dropped and the rank's record
        closed; after a failure the record stays as the last step left it, as a crash would leave it, so that
        the relaunch books the time since to restart."""
        if finished:
            if self._step is not None:
                self._step.__exit__(_NotCompleted, _NotCompleted(), None)
                self._step = None
            self.metrics.close()
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
        if self._target_file is not None:
            self._target_file.unlink(missing_ok=True)


class CheckpointLedger:
    """Which step each checkpoint a rank reported holds: a small JSON list of [path, step], newest last,
    rewritten whole (by a rename) after each checkpoint."""

    def __init__(self, path: Path):
        self.path = path
        self._entries: list[tuple[str, int]] = self._read()

    def _read(self) -> list[tuple[str, int]]:
        try:
            entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            _logger.warning("unreadable checkpoint ledger, starting a new one",
                            extra={"ledger": str(self.path), "error": str(error)})
            return []
        if not isinstance(entries, list):
            return []
        return [(entry[0], entry[1]) for entry in entries
                if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], int)]

    def step_of(self, checkpoint: str) -> int | None:
        for path, step in reversed(self._entries):
            if path == checkpoint:
                return step
        return None

    def record(self, checkpoint: str, step: int) -> None:
        self._entries = [entry for entry in self._entries if entry[0] != checkpoint][-(LEDGER_ENTRIES - 1):]
        self._entries.append((checkpoint, step))
        try:
            _replace(self.path, json.dumps([list(entry) for entry in self._entries]))
        except OSError as error:  # the report goes on; a restore from this checkpoint is then not told apart
            _logger.warning("cannot write the checkpoint ledger", extra={"ledger": str(self.path), "error": str(error)})


def ledger_path(state_dir: str | os.PathLike[str], job: str, rank: int) -> Path:
    record = state_path(state_dir, job, rank)
    return record.with_name(record.name.removesuffix(".state") + ".checkpoints.json")


def target_path(file_sd_dir: str | os.PathLike[str], job: str, rank: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job)[:100]
    return Path(file_sd_dir) / f"fleetscope-ray-train-{safe}-rank{rank}.json"


def _write_target(file_sd_dir: Path, job: str, rank: int, target: str) -> Path:
    path = target_path(file_sd_dir, job, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, json.dumps([{"targets": [target], "labels": {}}]))
    return path


def _replace(path: Path, text: str) -> None:
    """Writes the file whole: a reader (Prometheus' file SD, a relaunched rank) sees the old or the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _checkpoint_path(context: TrainContext) -> str | None:
    checkpoint = context.checkpoint  # what get_checkpoint() returns; reading one reference needs no lock
    return None if checkpoint is None else str(checkpoint.path)


def _run_folder(context: TrainContext) -> str | None:
    """The run's folder on storage every worker reaches, where it is a file system this process can open."""
    storage = context.storage_context
    if type(storage.storage_filesystem).__name__ != "LocalFileSystem":
        _logger.warning("the run's storage is not a file system: pass TrainingMetricsCallback(state_dir=...) on "
                        "shared storage for restarts to be booked", extra={"storage": storage.storage_fs_path})
        return None
    return str(Path(storage.experiment_fs_path) / STATE_FOLDER)
