"""A real Ray head node on 127.0.0.1 (`ray start --head --block`): every port chosen free at run time, its
state under a short temporary folder, a bounded wait until the node's metrics page answers, and stop() ending
exactly the processes this head started, then removing the folder.

Never `ray stop`: it kills every Ray on the machine, other test workers' included. The head runs in its own
session, and Ray's daemons and workers stay in its process group, so stop() signals that group alone.

Ray itself is not imported here: the head is the `ray` command of the interpreter that runs this module, and
only a caller that drives the cluster (`ray.init(address=head.address)`) needs the package in its process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from fleetscope.localstack.process import StartError, free_port, http_ok, port_open


def ray_installed(python: str = sys.executable) -> bool:
    """Whether the interpreter has Ray (the `ray` extra: pip install 'fleetscope[ray]')."""
    return (Path(python).parent / "ray").exists() or shutil.which("ray") is not None


# What every head runs under, and what a driver must run under too, set before it imports Ray (Ray reads them at
# import), so that both agree on the node's address and on authentication.
DRIVER_ENVIRONMENT = {
    # Ray on Linux swaps 127.0.0.1 for the host's outward address (resolve_ip_for_localhost); this is its own
    # switch for the single-machine mode that keeps every advertised address on loopback.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # A token in ~/.ray/auth_token would otherwise turn token authentication on for this head and for any driver
    # that finds it; a throwaway loopback head needs neither.
    "RAY_AUTH_MODE": "disabled",
    # SIGTERM would otherwise drain the node for up to 30 s before it stops anything.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


class RayHead:
    """Use as a context manager, or call start() and stop().

    workdir keeps the head's log (ray-head.log); Ray's own state goes to a short folder under /tmp, because
    Ray's unix socket paths must stay under the kernel's 107-byte limit."""

    def __init__(self, workdir: Path, *, num_cpus: int = 2, dashboard: bool = False,
                 env: Mapping[str, str] | None = None) -> None:
        """env: more environment for the head's processes (Ray reads RAY_<setting> for each RayConfig setting),
        on top of this process's own."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.num_cpus = num_cpus
        self.dashboard = dashboard
        self.extra_env = dict(env or {})
        self.gcs_port = 0
        self.metrics_port = 0
        self.dashboard_port = 0
        # The autoscaler's and the dashboard's own metrics pages, on fixed defaults (44217, 44227) unless told.
        self.autoscaler_metrics_port = 0
        self.dashboard_metrics_port = 0
        self._temp_dir: Path | None = None
        self._session_dir: Path | None = None
        self._process: subprocess.Popen | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What the head runs under, and what a driver process (`ray.init(address=head.address)`) should run
        under too (DRIVER_ENVIRONMENT)."""
        return dict(DRIVER_ENVIRONMENT)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def dashboard_url(self) -> str:
        if not self.dashboard:
            raise RuntimeError("this head runs without the dashboard; RayHead(..., dashboard=True) starts it")
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def session_dir(self) -> Path:
        if self._session_dir is None:
            raise RuntimeError("session_dir exists once start() has returned")
        return self._session_dir

    @property
    def log_path(self) -> Path:
        return self.workdir / "ray-head.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 90.0) -> RayHead:
        if self._process is not None:
            raise RuntimeError("this RayHead is already started")
        self._temp_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="fsray"))
        try:
            self._launch()
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _ray_command(self) -> list[str]:
        beside = Path(sys.executable).parent / "ray"
        found = str(beside) if beside.exists() else shutil.which("ray")
        if found is None:
            raise StartError("Ray is not installed in this environment; install the ray extra: "
                             "pip install 'fleetscope[ray]'")
        return [found]

    def _launch(self) -> None:
        assert self._temp_dir is not None
        ports = {name: free_port() for name in (
            "port", "node-manager-port", "object-manager-port", "metrics-export-port",
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
            "ray-client-server-port", "dashboard-port")}
        self.gcs_port = ports["port"]
        self.metrics_port = ports["metrics-export-port"]
        self.dashboard_port = ports["dashboard-port"]
        argv = [*self._ray_command(), "start", "--head", "--block", "--disable-usage-stats",
                "--node-ip-address=127.0.0.1", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
                f"--temp-dir={self._temp_dir}", f"--include-dashboard={str(self.dashboard).lower()}",
                "--dashboard-host=127.0.0.1",
                # 0 and 0: each worker binds a port the kernel picks, never the shared default range
                # 10002-19999 that another head on this machine allocates from too.
                "--min-worker-port=0", "--max-worker-port=0",
                *(f"--{name}={port}" for name, port in ports.items())]
        environment = {**os.environ, **self.extra_env}
        environment.pop("RAY_ADDRESS", None)
        for variable in ("AUTOSCALER_METRIC_PORT", "DASHBOARD_METRIC_PORT"):
            environment.setdefault(variable, str(free_port()))
        self.autoscaler_metrics_port = int(environment["AUTOSCALER_METRIC_PORT"])
        self.dashboard_metrics_port = int(environment["DASHBOARD_METRIC_PORT"])
        environment.update(self.environment)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             env=environment, start_new_session=True)

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._process is not None and self._temp_dir is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StartError(f"ray start exited with {self._process.returncode}:\n{self.log_tail()}")
            session = self._temp_dir / "session_latest"
            if session.exists() and port_open(self.gcs_port) and http_ok(self.metrics_url, timeout=2.0) \
                    and (not self.dashboard or http_ok(f"{self.dashboard_url}/api/version", timeout=2.0)):
                self._session_dir = session.resolve()
                return
            time.sleep(0.25)
        raise StartError(f"the Ray head's metrics page ({self.metrics_url}) did not answer within "
                         f"{timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to the head's process group (its ray start, GCS, raylet, agents and workers), SIGKILL to what
        is left after `timeout`, then the temporary folder goes. Safe to call twice.

        The grace is short on purpose: a raylet that outlives its GCS can wait out its own shutdown timers for
        30 s, and a throwaway head keeps nothing a SIGKILL could lose."""
        process, self._process = self._process, None
        if process is not None:
            self._end_group(process, timeout)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    @staticmethod
    def _end_group(process: subprocess.Popen, timeout: float) -> None:
        group = process.pid  # start_new_session made the head its group's leader
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if process.poll() is not None and not _group_alive(group):
                    break
                time.sleep(0.1)
            else:
                continue
            break
        if process.poll() is None:
            process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> RayHead:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(group: int) -> bool:
    """Whether a live process is still in the group. /proc where there is one, because a zombie that nobody
    reaps (PID 1 in a container may not) still counts for kill(0) though it holds nothing."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            return True
    return False
