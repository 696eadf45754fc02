"""Giving memory back after large bodies (fleetscope.web.memory): safe to ask for as often as writes
finish, rate-limited, a no-op where glibc or Arrow is absent, and applied by the drift service.
How much memory comes back is measured by benchmarks/memory_after_burst.py, not asserted here."""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleetscope.web import memory
from tests.drift import hostile
from tests.drift.support import MODEL_CONFIG, call, outputs

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "benchmarks"


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_asking_often_runs_the_steps_once_per_interval_and_once_more_after():
    ran = []
    give_back = memory.GiveBack([lambda: ran.append(time.monotonic())], interval=3600, delay=0)
    for _ in range(1000):
        give_back()
    assert wait_for(lambda: len(ran) == 1)
    for _ in range(1000):  # while it rests: nothing runs now, one round is owed
        give_back()
    assert len(ran) == 1 and give_back.pending


def test_a_request_after_the_rest_runs_the_steps_again_and_a_failing_step_does_not_stop_the_others(caplog):
    ran = []

    def failing() -> None:
        raise OSError("no memory to give")

    give_back = memory.GiveBack([failing, lambda: ran.append(1)], interval=0, delay=0)
    give_back()
    assert wait_for(lambda: len(ran) == 1)
    give_back()
    assert wait_for(lambda: len(ran) == 2)
    assert "giving memory back failed" in caplog.text


def test_the_steps_are_safe_to_call_repeatedly():
    for _ in range(3):
        assert memory.collect_cycles() >= 0
        assert memory.trim_malloc() == (platform.libc_ver()[0] == "glibc")
        memory.release_arrow_pool()
    threads = [threading.Thread(target=memory.trim_malloc) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def test_without_glibc_or_pyarrow_every_step_is_a_no_op(monkeypatch):
    monkeypatch.setattr(memory, "_libc", lambda: None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.cap_arenas() is None
    assert memory.trim_malloc() is False
    assert memory.release_arrow_pool() is False
    monkeypatch.setattr(memory, "_give_back", None)
    monkeypatch.setattr(gc, "freeze", lambda: None)  # this test process's objects stay collectable
    settings = memory.configure()
    assert settings["malloc_arena_max"] == "glibc default" and settings["malloc_trim"] is False
    assert settings["arrow_pool"] == "not loaded"
    memory.give_back()


def test_an_arena_cap_from_the_environment_is_left_to_glibc(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.cap_arenas() is None


def test_give_back_is_a_no_op_until_a_service_configures_it(monkeypatch):
    monkeypatch.setattr(memory, "_give_back", None)
    for _ in range(100):
        memory.give_back()
    assert memory._give_back is None


def test_the_drift_service_applies_its_allocator_settings_and_serves_through_a_burst(fleetscope_process, tmp_path):
    config = tmp_path / "drift.yaml"
    config.write_text(MODEL_CONFIG)
    address = fleetscope_process("drift serve", f"--config.file={config}",
                                 f"--storage.path={tmp_path / 'store.sqlite'}", "--log.format=json")
    service = fleetscope_process.processes[-1]
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(200, seed=1))[0] == 200
    rows = outputs(20_000, seed=2)
    over_long = [*rows[:-1], {**rows[-1], "label": "x" * 300}]
    bodies = [(json.dumps(rows).encode(), "application/json", 202),
              (hostile.arrow_stream(hostile.iris_table(20_000, seed=3)), hostile.ARROW_STREAM, 202),
              (json.dumps(over_long).encode(), "application/json", 400),
              (hostile.with_declared_rows(hostile.arrow_stream(hostile.iris_table()), 2 ** 40), hostile.ARROW_STREAM,
               413)]
    answers: list[tuple[int, int]] = []

    def client(index: int) -> None:
        for body, content_type, expected in bodies[index:] + bodies[:index]:
            answers.append((call(address, "POST", "/v1/models/iris/outputs", body, content_type)[0], expected))

    clients = [threading.Thread(target=client, args=(index,)) for index in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(120)
    assert len(answers) == 16 and all(status in (expected, 429) for status, expected in answers), answers
    assert call(address, "POST", "/v1/models/iris/outputs", outputs(10, seed=4))[0] == 202
    assert call(address, "GET", "/-/ready")[0] == 200 and service.running
    logged = [json.loads(line) for line in service.log_path.read_text().splitlines() if line.startswith("{")]
    settings = next(line for line in logged if line["msg"] == "allocator settings")
    assert settings["give_back_interval_seconds"] == memory.INTERVAL_SECONDS
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert settings["malloc_trim"] is True
        assert settings["malloc_arena_max"] == os.environ.get("MALLOC_ARENA_MAX", memory.ARENA_MAX)
    assert settings["arrow_pool"] in ("mimalloc", "jemalloc", "system")
    assert not [line for line in logged if line["level"] == "error"]


def test_the_model_server_applies_them_too(fleetscope_process):
    address = fleetscope_process("model-server", "--log.format=json")
    service = fleetscope_process.processes[-1]
    assert call(address, "POST", "/v1/models/iris/predict", {"instances": [[5.1, 3.5, 1.4, 0.2]]})[0] == 200
    logged = [json.loads(line) for line in service.log_path.read_text().splitlines() if line.startswith("{")]
    assert any(line["msg"] == "allocator settings" and line["gc_frozen_objects"] > 0 for line in logged)


@pytest.mark.parametrize("flag", [[], ["--baseline"]], ids=["as shipped", "baseline"])
def test_the_benchmark_runs(tmp_path, flag):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "memory_after_burst.py"), "--seconds", "2",
                             "--clients", "2", "--settle", "2", *flag, "--json", str(tmp_path / "out.json")],
                            capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    row = json.loads((tmp_path / "out.json").read_text())
    assert row["alive"] and row["rss_idle_mib"] > 0 and row["accepted_bodies"] > 0
    assert row["give_back"] == (not flag) and ("malloc_trim" in row["allocator_log"]) == (not flag)
