"""A real Alertmanager on 127.0.0.1 with a given configuration, clustering off."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from fleetscope.localstack.process import ManagedProcess, http_ok, require_binary, start_on_free_port

# Debian installs Alertmanager under this name; upstream's tarball calls it alertmanager.
BINARIES = ("prometheus-alertmanager", "alertmanager")


class Alertmanager:
    """Use as a context manager, or call start() and stop()."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 30.0) -> Alertmanager:
        binary = _binary()
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

        def make(port: int) -> ManagedProcess:
            return ManagedProcess(
                [binary, f"--config.file={config_path}", f"--storage.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                self.workdir / "alertmanager.log", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"))

        self._process, self.port = start_on_free_port(make, timeout)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def log_tail(self, lines: int = 30) -> str:
        return self._process.log_tail(lines) if self._process else ""

    def post_alerts(self, alerts: list[dict]) -> None:
        """Alerts as Prometheus sends them: [{"labels": {...}, "annotations": {...}}]."""
        request = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{key}={value}" for key, value in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{query}", timeout=10) as response:
            return json.load(response)

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _binary() -> str:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return require_binary(BINARIES[0])  # raises, saying how to install it
