"""A child process on a free loopback port: started, waited for with a bound, always stopped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path


class StartError(RuntimeError):
    pass


def free_port() -> int:
    """A port free on 127.0.0.1 right now. Callers retry on the rare race with another process."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StartError(f"{name} is not installed; run scripts/setup.sh (it installs Debian's prometheus "
                         "and prometheus-alertmanager packages)")
    return path


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_on_free_port(make: Callable[[int], ManagedProcess], timeout: float = 30.0,
                       attempts: int = 3) -> tuple[ManagedProcess, int]:
    """Starts make(port) on a free port, trying another when a different process took it first."""
    for attempt in range(attempts):
        port = free_port()
        process = make(port)
        try:
            process.start(timeout)
            return process, port
        except StartError as error:
            if "address already in use" not in str(error) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def fleetscope_server(command: Sequence[str], log_directory: Path, tls: bool = False,
                      python: str = sys.executable) -> tuple[ManagedProcess, str]:
    """`fleetscope COMMAND` (words and --flags) on a free loopback port, not yet started, and its
    address. Ready once /-/ready answers 200, or with TLS once the port accepts connections.
    python: the interpreter (another virtual environment's, to compare another version)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = [python, "-m", "fleetscope", *command, f"--web.listen-address={address}"]
    probe = (lambda: port_open(port)) if tls else (lambda: http_ok(f"http://{address}/-/ready"))
    name = "-".join(word for word in command if not word.startswith("-"))
    return ManagedProcess(argv, Path(log_directory) / f"{name}-{port}.log", probe), address


class ManagedProcess:
    """Runs argv with output to a log file; ready() polls `probe` until it is true or time runs out."""

    def __init__(self, argv: Sequence[str], log_path: Path, probe: Callable[[], bool]):
        self.argv = list(argv)
        self.log_path = log_path
        self._probe = probe
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StartError(f"{self.argv[0]} exited with {self._process.returncode}:\n{self.log_tail()}")
            if self._probe():
                return
            time.sleep(0.1)
        self.stop()
        raise StartError(f"{self.argv[0]} was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would end it: no shutdown code runs."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
