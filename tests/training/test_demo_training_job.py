"""The demo's training job (example/training.py) without the demo: its ranks' pages, read as Prometheus reads them,
show the fault as a restart, restart time and steps redone since the last checkpoint; the relaunch serves on the same
addresses; stop() leaves no thread, page or open state file behind; bad settings are refused by name."""

from __future__ import annotations

import math
import os
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetscope.example.training import Pace, TrainingJob
from fleetscope.exporters.catalog import training as spec
from fleetscope.localstack.process import StartError, port_open

# A demo's pace shrunk tenfold: 40 ms steps, a checkpoint every 10 steps; FAULT_AFTER lands about 15 steps in, half
# way between two checkpoints, so that a few steps are redone even where a loaded machine slows the loop.
FAST = Pace(step=0.04, data_wait=0.001, checkpoint_every=10, checkpoint_save=0.01, evaluation_every=7, evaluation=0.01,
            initialization=0.05, relaunch=0.3, reinitialization=0.1, checkpoint_load=0.05)
FAULT_AFTER = FAST.initialization + 15 * (FAST.step + FAST.data_wait) + FAST.checkpoint_save + 2 * FAST.evaluation
HOSTS = ["gpu-node-1", "gpu-node-2"]


def _page(address: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {labels: value}} of one rank's page."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(page: dict, name: str, **labels: str) -> float:
    [value] = [v for key, v in page[name].items() if labels.items() <= dict(key).items()]
    return value


def _phases(page: dict) -> dict[str, float]:
    return {phase: _value(page, spec.PHASE_SECONDS.name, phase=phase) for phase in spec.PHASES}


def _wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except OSError:  # the page is down between the crash and the relaunch
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g}s")


def _job_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("training-")]


def test_the_fault_shows_on_every_rank_as_a_restart_and_steps_redone(tmp_path):
    events: list[str] = []
    job = TrainingJob(tmp_path, HOSTS, name="demo-job", fault_after=FAULT_AFTER, pace=FAST,
                      announce=events.append).start()
    try:
        addresses = job.addresses
        assert len(addresses) == 2 and all(port_open(int(a.rsplit(":", 1)[1])) for a in addresses)
        before = _page(addresses[0])
        assert _value(before, spec.RESTARTS.name) == 0
        assert _phases(before)["restart"] == 0 and _phases(before)["recompute"] == 0

        def recovered():  # past the redone steps, on both ranks
            pages = [_page(address) for address in addresses]
            done = all(_value(p, spec.RESTARTS.name) == 1 and _phases(p)["recompute"] > 0
                       and _phases(p)["productive"] > _phases(before)["productive"] + 0.2 for p in pages)
            return done and pages

        pages = _wait_for(recovered)
        assert job.addresses == addresses  # the relaunch serves where Prometheus scrapes
        for rank, (page, host) in enumerate(zip(pages, HOSTS, strict=True)):
            labels = dict(next(iter(page[spec.RESTARTS.name])))
            assert labels == {"training_job": "demo-job", "rank": str(rank), "hostname": host}
            phases = _phases(page)
            # down for `relaunch` seconds, then re-initialized: restart time; then the checkpoint load
            assert phases["restart"] >= FAST.relaunch + FAST.reinitialization
            assert _value(page, f"{spec.CHECKPOINT_DURATION.name}_count", operation="load") == 1
            # the steps between the last checkpoint and the crash, redone
            assert phases["recompute"] < FAST.checkpoint_every * (FAST.step + FAST.data_wait) + 0.5
            assert phases["initialization"] >= FAST.initialization
        crashed, relaunched = events
        reached = int(crashed.split("crashed at step ")[1].split(":")[0])
        restored = int(relaunched.split("restoring step ")[1].split(" ")[0])
        assert restored == reached // FAST.checkpoint_every * FAST.checkpoint_every > 0 and reached > restored, events
        assert job.restarts == 1 and job.errors == []
    finally:
        job.stop()
    assert _job_threads() == []
    assert not [a for a in addresses if port_open(int(a.rsplit(":", 1)[1]))], "a page outlived the job"


def test_every_second_of_a_rank_is_booked_across_the_crash(tmp_path):
    started = time.time()
    job = TrainingJob(tmp_path, HOSTS[:1], fault_after=0.3, pace=FAST).start()
    try:
        _wait_for(lambda: _value(_page(job.addresses[0]), spec.RESTARTS.name) == 1
                  and _phases(_page(job.addresses[0]))["productive"] > 0.5)
    finally:
        job.stop()
    ended = time.time()
    # The record the last process wrote on its way out (the SDK's state file), read as a relaunch would.
    from fleetscope.exporters.training.state import StateFile, state_path

    record = StateFile(state_path(tmp_path / "state", "llm-pretrain", 0))
    try:
        state = record.read()
    finally:
        record.close()
    assert state is not None and state.restarts == 1
    assert state.job_start >= started and math.isclose(sum(state.phases), state.last_update - state.job_start,
                                                       abs_tol=0.05)
    assert state.last_update <= ended


def test_without_a_fault_the_job_never_restarts_and_a_new_job_forgets_an_earlier_run(tmp_path):
    job = TrainingJob(tmp_path, HOSTS, fault_after=0.2, pace=FAST).start()
    try:
        _wait_for(lambda: _value(_page(job.addresses[0]), spec.RESTARTS.name) == 1)
    finally:
        job.stop()
    again = TrainingJob(tmp_path, HOSTS, fault_after=None, pace=FAST).start()  # same directory, a new job
    try:
        page = _wait_for(lambda: (p := _page(again.addresses[1])) and _value(p, spec.STEPS.name) >= 20 and p)
        assert _value(page, spec.RESTARTS.name) == 0 and _phases(page)["restart"] == 0
        assert _phases(page)["recompute"] == 0 and again.restarts == 0
    finally:
        again.stop()
    assert _job_threads() == []


def test_stop_before_the_relaunch_leaves_nothing_running(tmp_path):
    slow = Pace(**{**FAST.__dict__, "relaunch": 30.0})
    events: list[str] = []
    job = TrainingJob(tmp_path, HOSTS, fault_after=0.1, pace=slow, announce=events.append).start()
    _wait_for(lambda: events)
    began = time.monotonic()
    job.stop()
    assert time.monotonic() - began < 5 and _job_threads() == [] and job.restarts == 0


def test_a_relaunch_whose_port_is_taken_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr("fleetscope.example.training.BIND_ATTEMPTS_SECONDS", 0.5)
    job = TrainingJob(tmp_path, HOSTS[:1], fault_after=0.2, pace=FAST).start()
    port = int(job.addresses[0].rsplit(":", 1)[1])
    import socket

    squatter = None
    try:
        deadline = time.monotonic() + 10
        while squatter is None and time.monotonic() < deadline:  # take the port in the moment the page is down
            candidate = socket.socket()
            try:
                candidate.bind(("127.0.0.1", port))
                candidate.listen()
                squatter = candidate
            except OSError:
                candidate.close()
                time.sleep(0.01)
        assert squatter is not None
        _wait_for(lambda: job.errors, timeout=10)
        assert "rank 0: could not serve its page on 127.0.0.1:" in job.errors[0]
    finally:
        job.stop()
        if squatter is not None:
            squatter.close()
    assert _job_threads() == []


@pytest.mark.parametrize(("field", "value"), [
    ("step", -0.5), ("step", math.nan), ("data_wait", math.inf), ("checkpoint_save", "0.2"), ("evaluation", True),
    ("relaunch", 1e9), ("checkpoint_every", 0), ("evaluation_every", 2.5), ("samples", True), ("sequence", 10**7),
])
def test_a_pace_out_of_bounds_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=rf"pace\.{field} must be"):
        Pace(**{field: value})


@pytest.mark.parametrize(("options", "message"), [
    ({"hostnames": []}, "1 to 64 hostnames"), ({"hostnames": "gpu-node-1"}, "1 to 64 hostnames"),
    ({"hostnames": ["gpu-node-1", ""]}, "1 to 64 hostnames"), ({"hostnames": [f"n{i}" for i in range(65)]}, "1 to 64"),
    ({"hostnames": [7]}, "1 to 64 hostnames"), ({"name": ""}, "name must be"), ({"name": "x" * 101}, "name must be"),
    ({"fault_after": -1.0}, "fault_after must be"), ({"fault_after": math.nan}, "fault_after must be"),
    ({"fault_after": "20s"}, "fault_after must be"), ({"fault_after": 1e12}, "fault_after must be"),
])
def test_bad_settings_are_refused_by_name(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        TrainingJob(**{"directory": tmp_path, "hostnames": HOSTS, **options})
    assert not os.listdir(tmp_path)  # refused before it touched anything


def test_a_job_whose_pages_cannot_be_served_does_not_start(tmp_path, monkeypatch):
    monkeypatch.setattr("fleetscope.example.training.BIND_ATTEMPTS_SECONDS", 0.3)
    job = TrainingJob(tmp_path, HOSTS, pace=FAST, address="192.0.2.1")  # TEST-NET-1: no interface has it
    with pytest.raises(StartError, match=r"did not start within .*could not serve its page on 192\.0\.2\.1:0"):
        job.start()
    assert _job_threads() == []
