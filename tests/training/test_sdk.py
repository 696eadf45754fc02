"""The training SDK on a clock the test moves: every second in exactly one phase, restarts carried across processes
by the state file (the downtime booked to restart, redone steps to recompute), decorators, and a bounded page."""

from __future__ import annotations

import socket

import pytest
from prometheus_client.exposition import generate_latest

from fleetscope.exporters.catalog import training as spec
from fleetscope.exporters.training import TrainingMetrics, registry_for
from fleetscope.exporters.training.state import State, StateFile


class Clock:
    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def _metrics(clock: Clock, **options) -> TrainingMetrics:
    return TrainingMetrics(job="llama", rank=1, hostname="node-a", clock=clock, wall=clock, **options)


def _phases(metrics: TrainingMetrics) -> dict[str, float]:
    return dict(zip(spec.PHASES, metrics.snapshot().state.phases, strict=True))


def test_every_second_falls_in_one_phase():
    clock = Clock()
    metrics = _metrics(clock)
    clock.tick(5)  # imports, process group: initialization

    def loader():
        for batch in (1, 2):
            clock.tick(0.5)
            yield batch

    for batch in metrics.data(loader()):
        with metrics.step(samples=batch, tokens=10 * batch):
            clock.tick(2)
        clock.tick(0.25)  # between steps: the loop, still productive
    with metrics.checkpoint("save"):
        clock.tick(3)
    with metrics.evaluation():
        clock.tick(4)
    phases = _phases(metrics)
    assert phases["initialization"] == 5
    assert phases["productive"] == 2 * 2 + 2 * 0.25
    assert phases["data_wait"] == 1 and phases["checkpoint"] == 3 and phases["evaluation"] == 4
    assert sum(phases.values()) == clock.now - 1_000
    state = metrics.snapshot().state
    assert (state.steps, state.samples, state.tokens, state.last_checkpoint) == (2, 3, 30, clock.now - 4)


def test_the_loaders_time_is_data_wait():
    clock = Clock()
    metrics = _metrics(clock)

    def loader():
        for batch in range(3):
            clock.tick(1.5)
            yield batch

    for _ in metrics.data(loader()):
        with metrics.step():
            clock.tick(1)
    assert _phases(metrics)["data_wait"] == 4.5 and _phases(metrics)["productive"] == 3


def test_a_relaunch_books_its_downtime_to_restart_and_redone_steps_to_recompute(tmp_path):
    clock = Clock()
    metrics = _metrics(clock, state_dir=tmp_path)
    clock.tick(10)
    for step in range(1, 31):
        with metrics.step():
            clock.tick(1)
        if step == 20:
            with metrics.checkpoint("save"):
                clock.tick(2)
    # The process dies here (no close()); 7 seconds later the job is relaunched.
    clock.tick(7)
    again = _metrics(clock, state_dir=tmp_path)
    clock.tick(4)  # re-initialization
    with again.checkpoint("load") as restore:  # the step is learnt by reading the checkpoint
        clock.tick(1)
        restore.step = 20
    for _ in range(15):
        with again.step():
            clock.tick(1)
    again.close()
    phases = _phases(again)
    assert phases["restart"] == 7 + 4 and phases["checkpoint"] == 2 + 1
    assert phases["recompute"] == 10  # steps 21 to 30, done before the crash
    assert phases["productive"] == 30 + 5 and phases["initialization"] == 10
    assert sum(phases.values()) == clock.now - 1_000
    state = again.snapshot().state
    assert state.restarts == 1 and state.steps == 45 and state.high_water_step == 35


def test_after_close_the_page_stops_counting():
    clock = Clock()
    metrics = _metrics(clock)
    with metrics.step():
        clock.tick(1)
    metrics.close()
    clock.tick(100)
    assert sum(_phases(metrics).values()) == 1


def test_decorators_and_an_in_process_restart():
    clock = Clock()
    metrics = _metrics(clock)

    @metrics.step(samples=4)
    def train() -> str:
        clock.tick(2)
        return "done"

    @metrics.evaluation()
    def evaluate() -> None:
        clock.tick(3)

    assert train() == "done" and train() == "done"
    evaluate()
    metrics.restart()
    clock.tick(6)
    train()
    phases = _phases(metrics)
    assert phases["productive"] == 6 and phases["evaluation"] == 3 and phases["restart"] == 6
    assert metrics.snapshot().state.samples == 12 and metrics.snapshot().state.restarts == 1


def test_a_failed_step_is_not_counted():
    clock = Clock()
    metrics = _metrics(clock)
    with pytest.raises(RuntimeError), metrics.step():
        clock.tick(1)
        raise RuntimeError("out of memory")
    assert metrics.snapshot().state.steps == 0 and _phases(metrics)["productive"] == 1


def test_the_page_serves_the_catalog_and_is_bounded():
    clock = Clock()
    metrics = _metrics(clock)
    for _ in range(1000):
        with metrics.step(samples=1):
            clock.tick(0.25)
    with metrics.checkpoint("save"):
        clock.tick(2)
    page = generate_latest(registry_for(metrics)).decode()
    served = {line.split("{")[0] for line in page.splitlines() if line and not line.startswith("#")}
    names = {spec_.name + suffix for spec_ in spec.METRICS
             for suffix in (("_bucket", "_sum", "_count") if spec_.type == "histogram" else ("",))}
    assert served == names
    assert 'fleetscope_training_phase_seconds_total{hostname="node-a",phase="productive",rank="1",' \
           'training_job="llama"} 250.0' in page
    samples = [line for line in page.splitlines() if line and not line.startswith("#")]
    assert len(samples) < 80  # whatever the steps: fixed phases, operations and buckets


def test_a_torn_or_foreign_state_file_starts_afresh(tmp_path):
    path = tmp_path / "fleetscope-training-llama-rank1.state"
    path.write_bytes(b"not a record")
    clock = Clock()
    metrics = _metrics(clock, state_dir=tmp_path)
    assert metrics.snapshot().state.restarts == 0
    metrics.close()
    record = StateFile(path)
    assert isinstance(record.read(), State)
    record.close()


def test_an_unknown_checkpoint_operation_is_refused():
    with pytest.raises(ValueError, match="save, load"):
        _metrics(Clock()).checkpoint("upload")


def test_the_rank_is_labelled_with_its_node_as_the_exporter_names_it(monkeypatch):
    """The rules join ranks to their nodes' GPU and NCCL series on hostname; in a pod the host's name is the pod's."""
    monkeypatch.setenv("NODE_NAME", "gpu-node-17")
    assert TrainingMetrics(job="llama", rank=0).hostname == "gpu-node-17"
    assert TrainingMetrics(job="llama", rank=0, hostname="given").hostname == "given"
    monkeypatch.delenv("NODE_NAME")
    assert TrainingMetrics(job="llama", rank=0).hostname == socket.gethostname()
