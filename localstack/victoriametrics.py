"""A real VictoriaMetrics (Debian's `victoria-metrics`) and vmalert on 127.0.0.1: the long-term store a
fleet's Prometheus servers remote_write to, and the global ruler evaluating the generated rules over it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetscope.localstack.process import ManagedProcess, http_ok, require_binary, start_on_free_port
from fleetscope.prometheus_api import QueryApi


class _Managed:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, binary: str, flags: Sequence[str], timeout: float) -> None:
        path = require_binary(binary)

        def make(port: int) -> ManagedProcess:
            return ManagedProcess([path, *flags, f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=WARN"],
                                  self.workdir / f"{binary}.log", lambda: http_ok(f"http://127.0.0.1:{port}/health"))

        self._process, self.port = start_on_free_port(make, timeout)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def log_tail(self, lines: int = 30) -> str:
        return self._process.log_tail(lines) if self._process else ""

    def __exit__(self, *exc: object) -> None:
        self.stop()


class VictoriaMetrics(_Managed, QueryApi):
    """The single-node server: remote_write at /api/v1/write, Prometheus' query API at /api/v1."""

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def start(self, timeout: float = 30.0) -> VictoriaMetrics:
        # Samples are visible to queries at once, not 30 s later as by default: the tests wait on them.
        self._start("victoria-metrics", [f"-storageDataPath={self.workdir / 'data'}", "-retentionPeriod=1d",
                                         "-search.latencyOffset=1s"], timeout)
        return self

    def __enter__(self) -> VictoriaMetrics:
        return self.start()


class VmAlert(_Managed):
    """vmalert evaluating rule files against a store (its query API), writing recorded series and alert
    states back to it, and sending alerts to Alertmanagers."""

    def __init__(self, workdir: Path, store: VictoriaMetrics, rule_files: Sequence[Path],
                 alertmanagers: Sequence[str] = (), evaluation_interval: str = "1s"):
        super().__init__(workdir)
        self.flags = [*(f"-rule={path}" for path in rule_files), f"-datasource.url={store.url}",
                      f"-remoteWrite.url={store.url}", f"-remoteRead.url={store.url}",
                      f"-evaluationInterval={evaluation_interval}",
                      *(f"-notifier.url=http://{address}" for address in alertmanagers)]

    def start(self, timeout: float = 30.0) -> VmAlert:
        self._start("vmalert", self.flags, timeout)
        return self

    def __enter__(self) -> VmAlert:
        return self.start()
