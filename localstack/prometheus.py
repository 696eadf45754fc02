"""A real Prometheus on 127.0.0.1 scraping given targets, queried through fleetscope.prometheus_api."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from fleetscope.localstack.process import ManagedProcess, http_ok, require_binary, start_on_free_port
from fleetscope.prometheus_api import QueryApi


class Prometheus(QueryApi):
    """Use as a context manager, or call start() and stop().

    scrape_configs are Prometheus scrape_config mappings; targets() builds a simple one. As a cluster's
    Prometheus in a fleet: external_labels (its `cluster`), remote_write to a global store, and with
    agent=True, agent mode (scrape and forward only: no local storage, rules or queries).
    """

    def __init__(self, workdir: Path, scrape_configs: Sequence[dict], scrape_interval: str = "1s",
                 rule_files: Sequence[Path] = (), alertmanagers: Sequence[str] = (),
                 evaluation_interval: str = "1s", external_labels: Mapping[str, str] | None = None,
                 remote_write: Sequence[dict] = (), agent: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.agent = agent
        self.config: dict[str, Any] = {"global": {"scrape_interval": scrape_interval}}
        if not agent:
            self.config["global"]["evaluation_interval"] = evaluation_interval
        if external_labels:
            self.config["global"]["external_labels"] = dict(external_labels)
        self.config["scrape_configs"] = list(scrape_configs)
        if remote_write:
            self.config["remote_write"] = list(remote_write)
        if rule_files:
            self.config["rule_files"] = [str(path) for path in rule_files]
        if alertmanagers:
            self.config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
        self.port = 0
        self._process: ManagedProcess | None = None

    @staticmethod
    def targets(job: str, addresses: Sequence[str], **options: Any) -> dict:
        return {"job_name": job, "static_configs": [{"targets": list(addresses)}], **options}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> Prometheus:
        binary = require_binary("prometheus")
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

        def make(port: int) -> ManagedProcess:
            storage = ([f"--storage.agent.path={self.workdir / 'agent'}", "--enable-feature=agent"] if self.agent
                       else [f"--storage.tsdb.path={self.workdir / 'data'}"])
            return ManagedProcess(
                [binary, f"--config.file={config_path}", *storage,
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                self.workdir / "prometheus.log", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"))

        self._process, self.port = start_on_free_port(make, timeout, attempts)
        return self

    def reload(self, timeout: float = 30.0, **sections: Any) -> None:
        """Replace top-level sections of the running server's configuration (None removes one: e.g.
        reload(scrape_configs=[], rule_files=None) stops it scraping and evaluating) and wait until it has
        loaded them; SIGHUP, so it needs no --web.enable-lifecycle. A configuration it refuses raises
        TimeoutError with its log, and the one it runs stays in place."""
        pid = self._process.pid if self._process is not None and self._process.running else None
        if pid is None:
            raise RuntimeError("reload() needs a running Prometheus")
        config = dict(self.config)
        for key, value in sections.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        path = self.workdir / "prometheus.yml"
        before = self._last_reload()
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        time.sleep(max(0.0, before + 1.05 - time.time()))  # the reload time is kept in whole seconds
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._last_reload() <= before:
            if time.monotonic() > deadline:
                path.write_text(yaml.safe_dump(self.config, sort_keys=False))
                log = (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]
                raise TimeoutError(f"Prometheus did not load its new configuration in {timeout:.0f} s:\n{log}")
            time.sleep(0.2)
        self.config = config

    def _last_reload(self) -> float:
        """When the configuration was last loaded successfully, from the server's own metrics."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            page = response.read().decode()
        found = re.search(r"^prometheus_config_last_reload_success_timestamp_seconds (\S+)$", page, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def active_targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]
