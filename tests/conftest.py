from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fleetscope.exporters.gpu.collector import GpuCollector
from fleetscope.localstack.process import ManagedProcess, fleetscope_server
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.simulation.nvml import FakeNvml, load_recording
from tests.support.exposition import render

REPO = Path(__file__).resolve().parent.parent
# NannyML (a test dependency: estimated model quality is compared with it) reports usage over the network unless
# told not to; the tests run offline.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")


@pytest.fixture
def recording() -> dict:
    return load_recording()


@pytest.fixture
def fake(recording) -> FakeNvml:
    return FakeNvml(recording)


@pytest.fixture
def make_collector():
    made = []

    def make(library, **options) -> GpuCollector:
        options.setdefault("xid_events", False)
        collector = GpuCollector(library, "node-a", **options)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()


@pytest.fixture
def page_of():
    """Renders a collector's output as the text exposition format."""
    return lambda collector: render(collector.collect())


@pytest.fixture
def prometheus(tmp_path):
    """Starts real Prometheus servers on loopback; all are stopped at the end of the test."""
    started: list[Prometheus] = []

    def start(scrape_configs, **options) -> Prometheus:
        server = Prometheus(tmp_path / f"prometheus-{len(started)}", scrape_configs, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fleetscope_process(tmp_path):
    """Runs a `fleetscope COMMAND` server (COMMAND may be two words) as a real process on a free loopback port."""
    started: list[ManagedProcess] = []

    def start(command: str, *flags: str, scheme: str = "http") -> str:
        process, address = fleetscope_server([*command.split(), *flags], tmp_path, tls=scheme != "http")
        started.append(process)
        process.start(timeout=60)
        return address

    start.processes = started
    yield start
    for process in started:
        process.stop()


@pytest.fixture
def drift_service(fleetscope_process, tmp_path):
    """Starts `fleetscope drift serve` with a model config (by default the tests' iris model); returns its address."""
    from tests.drift.support import MODEL_CONFIG

    def start(config: str = MODEL_CONFIG, scheme: str = "http") -> str:
        path = tmp_path / "drift.yaml"
        path.write_text(config)
        return fleetscope_process("drift serve", f"--config.file={path}", f"--storage.path={tmp_path / 'store.sqlite'}",
                                  scheme=scheme)

    start.processes = fleetscope_process.processes
    return start


@pytest.fixture
def exporter_process(fleetscope_process):
    """Runs `fleetscope exporter` as a real process on a free loopback port."""
    def start(*flags: str, scheme: str = "http") -> str:
        return fleetscope_process("exporter", *flags, scheme=scheme)

    start.processes = fleetscope_process.processes
    return start


def promtool_check_metrics(page: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "metrics"], input=page.encode(), capture_output=True, timeout=60)


@pytest.fixture(scope="session", autouse=True)
def _no_proxy():
    # Loopback traffic must never go through a proxy set in the environment.
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
