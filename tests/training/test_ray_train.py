"""The training SDK fed by a real Ray Train job (fleetscope.exporters.training.ray_train): a TorchTrainer with two
gloo workers on CPU on a Ray head the test starts, reporting each step with ray.train.report and a checkpoint
every CHECKPOINT_EVERY steps; rank 1 fails in step CRASH_AT + 1 of the first attempt and Ray Train
(FailureConfig(max_failures=1)) relaunches the worker group from the checkpoint at step LAST_CHECKPOINT. Each
worker's page, found through the file-SD target it writes, shows its exact steps, the saves, the restart, the work
redone as recompute, and phases that add up to the wall time since the job's start.

The driver runs in a subprocess, so the pytest process never imports Ray; each worker writes its own timeline
(time.time() around the parts) for the bounds the restart time must fall in."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetscope.exporters.catalog import training as spec
from fleetscope.localstack.ray import RayHead, ray_installed

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not ray_installed(), reason="Ray is not installed: pip install 'fleetscope[ray]'")]
REPO = Path(__file__).resolve().parent.parent.parent
JOB = "ray-goodput-test"
WORLD = 2
STEPS = 40
CHECKPOINT_EVERY = 10
CRASH_AT = 25  # the last step the first attempt completes
LAST_CHECKPOINT = CHECKPOINT_EVERY * (CRASH_AT // CHECKPOINT_EVERY)
TOLERANCE = 0.02  # of the wall time, as tests/training/test_real_training.py allows

DRIVER = """
import json, os, sys, tempfile, time
from pathlib import Path

import ray
import ray.train
from ray.train import Checkpoint, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from fleetscope.exporters.training.ray_train import TrainingMetricsCallback

address, job, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
steps, every, crash_at = map(int, sys.argv[4:7])


def train_loop(config):
    import torch
    import ray.train.torch

    rank = ray.train.get_context().get_world_rank()
    workdir = Path(config["workdir"])
    timeline = (workdir / f"timeline-rank{rank}.jsonl").open("a", buffering=1)
    restored = ray.train.get_checkpoint()
    timeline.write(json.dumps(["start", time.time(), restored is not None]) + "\\n")
    torch.manual_seed(0)
    model = ray.train.torch.prepare_model(torch.nn.Linear(8, 8))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    first = 1
    if restored is not None:
        with restored.as_directory() as folder:
            saved = torch.load(Path(folder) / f"rank{rank}.pt")
        model.module.load_state_dict(saved["model"])
        first = saved["step"] + 1
    for step in range(first, config["steps"] + 1):
        if restored is None and rank == 1 and step == config["crash_at"] + 1:
            timeline.write(json.dumps(["crash", time.time()]) + "\\n")
            raise RuntimeError("injected failure")
        loss = model(torch.randn(4, 8)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        timeline.write(json.dumps(["report", time.time(), step]) + "\\n")
        if step % config["every"] == 0:
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"model": model.module.state_dict(), "step": step}, Path(folder) / f"rank{rank}.pt")
                ray.train.report({"loss": loss.item(), "step": step},
                                 checkpoint=Checkpoint.from_directory(folder))
        else:
            ray.train.report({"loss": loss.item(), "step": step})
    # Held open (bounded) until the test has read both pages: Ray Train ends the workers when this returns.
    (workdir / f"done-rank{rank}").write_text(str(time.time()))
    deadline = time.monotonic() + 60
    while not (workdir / "scraped").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


# Ray Train's controller takes one report a poll, every 2 s by default: a test reporting every step polls faster.
ray.init(address=address, logging_level="ERROR",
         runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.05", "OMP_NUM_THREADS": "1"}})
trainer = TorchTrainer(
    train_loop,
    train_loop_config={"workdir": str(workdir), "steps": steps, "every": every, "crash_at": crash_at},
    scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
    run_config=RunConfig(name=job, storage_path=str(workdir / "storage"),
                         failure_config=FailureConfig(max_failures=1),
                         callbacks=[TrainingMetricsCallback(file_sd_dir=workdir / "sd", target_host="127.0.0.1")]),
)
fitted = time.time()
(workdir / "fit-started").write_text(str(fitted))
result = trainer.fit()
print(json.dumps({"error": repr(result.error) if result.error else None}))
"""


def _timeline(workdir: Path, rank: int) -> list[list]:
    return [json.loads(line) for line in (workdir / f"timeline-rank{rank}.jsonl").read_text().splitlines()]


def _scrape(url: str) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        page = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(page) for sample in family.samples}


def _value(page: dict, name: str, **labels: str) -> float:
    matches = [value for (sample, sample_labels), value in page.items()
               if sample == name and set(labels.items()) <= sample_labels]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_a_ray_train_job_with_a_failure_feeds_each_ranks_steps_checkpoints_and_restart(tmp_path):
    workdir = tmp_path
    began = time.time()
    head = RayHead(workdir / "head", num_cpus=3)
    driver: subprocess.Popen | None = None
    driver_log = workdir / "driver.log"
    pages: dict[int, dict] = {}
    scraped: dict[int, float] = {}
    try:
        head.start()
        environment = {**os.environ, **head.environment, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER, head.address, JOB, str(workdir), str(STEPS), str(CHECKPOINT_EVERY),
             str(CRASH_AT)], env=environment, stdin=subprocess.DEVNULL, stdout=driver_log.open("wb"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while not all((workdir / f"done-rank{rank}").exists() for rank in range(WORLD)):
            assert driver.poll() is None, driver_log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "the Ray Train job did not finish its steps in time"
            time.sleep(0.1)
        print("Ray head up and both workers past their last step after", round(time.time() - began, 1), "s")
        targets = {}
        for rank in range(WORLD):
            sd = json.loads((workdir / "sd" / f"fleetscope-ray-train-{JOB}-rank{rank}.json").read_text())
            assert len(sd) == 1 and len(sd[0]["targets"]) == 1, sd
            targets[rank] = sd[0]["targets"][0]
        for rank, target in targets.items():
            before = time.time()
            pages[rank] = _scrape(f"http://{target}/metrics")
            scraped[rank] = (before + time.time()) / 2
        (workdir / "scraped").write_text("")
        driver.wait(timeout=90)
        output = driver_log.read_text(errors="replace")
        assert driver.returncode == 0 and '"error": null' in output, output[-4000:]
        # Each worker removed its target when Ray Train ended it.
        assert not list((workdir / "sd").glob("*.json"))
    finally:
        (workdir / "scraped").write_text("")
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait(timeout=30)
        head.stop()

    fit_started = float((workdir / "fit-started").read_text())
    redone = CRASH_AT - LAST_CHECKPOINT
    for rank, page in pages.items():
        labels = {"training_job": JOB, "rank": str(rank)}
        timeline = _timeline(workdir, rank)
        # Attributed like a Slurm rank: the run's name, the world rank, the node's host name.
        hostnames = {dict(key[1])["hostname"] for key in page if key[0] == spec.STEPS.name}
        assert hostnames == {socket.gethostname()[:128]}, hostnames
        # Every report a step: the first attempt's CRASH_AT, then the second's from the checkpoint to the end.
        assert _value(page, spec.STEPS.name, **labels) == CRASH_AT + STEPS - LAST_CHECKPOINT
        assert _value(page, spec.STEP_DURATION.name + "_count", **labels) == STEPS - LAST_CHECKPOINT
        assert _value(page, spec.RESTARTS.name, **labels) == 1
        # The second attempt's saves (histograms start afresh in each process), each timed.
        saves = _value(page, spec.CHECKPOINT_DURATION.name + "_count", operation="save", **labels)
        assert saves == STEPS // CHECKPOINT_EVERY - CRASH_AT // CHECKPOINT_EVERY
        assert _value(page, spec.CHECKPOINT_DURATION.name + "_sum", operation="save", **labels) > 0
        assert _value(page, spec.LAST_CHECKPOINT.name, **labels) >= fit_started
        phases = {phase: _value(page, spec.PHASE_SECONDS.name, phase=phase, **labels) for phase in spec.PHASES}
        print("rank", rank, {phase: round(seconds, 3) for phase, seconds in phases.items()})
        job_start = _value(page, spec.JOB_START.name, **labels)
        wall = scraped[rank] - job_start
        assert fit_started <= job_start <= min(event[1] for event in timeline if event[0] == "start"), job_start
        assert abs(sum(phases.values()) - wall) <= TOLERANCE * wall, (phases, wall)
        # The restart: from the rank's last step before the failure (its last record) to the relaunched worker's
        # start, which comes before the training function's.
        last_step = next(event[1] for event in timeline if event[0] == "report" and event[2] == CRASH_AT)
        failure = next(event[1] for event in _timeline(workdir, 1) if event[0] == "crash")
        relaunched = next(event[1] for event in timeline if event[0] == "start" and event[2])
        assert failure - last_step <= phases["restart"] <= relaunched - last_step, (phases, last_step, relaunched)
        # The steps redone after the restore: recompute, at least as long as the first attempt took for them.
        first_attempt = [event for event in timeline if event[0] == "report" and event[1] < failure]
        redone_time = first_attempt[CRASH_AT - 1][1] - first_attempt[LAST_CHECKPOINT - 1][1]
        assert redone > 0 and phases["recompute"] >= 0.5 * redone_time, (phases, redone_time)
        assert phases["productive"] > 0 and phases["checkpoint"] > 0, phases


# --- the parts that need no cluster -------------------------------------------------------------------------------


def test_the_ledger_finds_a_checkpoints_step_keeps_the_newest_and_survives_a_torn_file(tmp_path):
    from fleetscope.exporters.training.ray_train import LEDGER_ENTRIES, CheckpointLedger, ledger_path

    path = ledger_path(tmp_path, JOB, 1)
    assert path.parent == tmp_path and path.name.endswith("-rank1.checkpoints.json")
    ledger = CheckpointLedger(path)
    assert ledger.step_of("/runs/a/checkpoint_1") is None
    for step in range(1, LEDGER_ENTRIES + 11):
        ledger.record(f"/runs/a/checkpoint_{step}", 10 * step)
    ledger.record("/runs/a/checkpoint_3", 999)  # the same folder reported again: the newest step wins
    again = CheckpointLedger(path)  # as a relaunched worker reads it
    assert again.step_of("/runs/a/checkpoint_3") == 999 and again.step_of(f"/runs/a/checkpoint_{LEDGER_ENTRIES}") \
        == 10 * LEDGER_ENTRIES
    assert again.step_of("/runs/a/checkpoint_1") is None  # forgotten: only the newest LEDGER_ENTRIES are kept
    assert len(json.loads(path.read_text())) == LEDGER_ENTRIES
    path.write_text('[["/runs/a/checkpoint_5", 50], ["truncat')
    assert CheckpointLedger(path).step_of("/runs/a/checkpoint_5") is None  # unreadable: a fresh ledger
    path.write_text('[["/runs/a/checkpoint_5", 50], ["/runs/a/x", "not a step"], 7]')
    assert CheckpointLedger(path).step_of("/runs/a/checkpoint_5") == 50  # what is well formed is kept


def test_the_callback_refuses_bad_settings_and_metrics_outside_a_worker_says_what_is_missing():
    from fleetscope.exporters.training.ray_train import TrainingMetricsCallback, metrics

    with pytest.raises(ValueError, match="report, explicit"):
        TrainingMetricsCallback(steps="epoch")
    with pytest.raises(ValueError, match="port"):
        TrainingMetricsCallback(port=70000)
    with pytest.raises(ValueError, match="job"):
        TrainingMetricsCallback(job="  ")
    with pytest.raises(RuntimeError, match="TrainingMetricsCallback"):
        metrics()
    callback = TrainingMetricsCallback(file_sd_dir=Path("/tmp/sd"))
    assert callback.file_sd_dir == "/tmp/sd" and callback.steps == "report"


def test_a_worker_whose_port_is_taken_or_state_folder_unwritable_trains_on_without_them(tmp_path, caplog):
    import socket as sockets

    from fleetscope.exporters.training.ray_train import _WorkerMetrics

    blocker = sockets.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    unwritable = tmp_path / "a-file"
    unwritable.write_text("")
    try:
        worker = _WorkerMetrics(job=JOB, rank=0, hostname="node-a", report_steps=True,
                                state_dir=str(unwritable / "state"), restored=None,
                                port=blocker.getsockname()[1], address="127.0.0.1",
                                file_sd_dir=str(tmp_path / "sd"), target_host="127.0.0.1")
    finally:
        blocker.close()
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "restarts will not be booked" in messages and "cannot serve" in messages, messages
    assert not (tmp_path / "sd").exists()  # no page, so no target
    worker.stop(finished=True)  # the open step dropped, the record closed: no step was reported
    assert worker.metrics.snapshot().state.steps == 0
