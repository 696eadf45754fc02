"""A real Slurm cluster on loopback (Debian's slurm-wlm and munge): munged, slurmctld and one slurmd, with
state, spool, logs and the munge key under a temporary folder, ports chosen free at run time, bounded waits,
and every process stopped and the folder removed by stop().

It runs as root (SlurmUser=root) without cgroups (proctrack/linuxproc, task/none), so it works in a container.
Besides the node slurmd serves, the partition lists `ghosts`: nodes no slurmd answers for, so that a test has
a partition of several nodes while only one daemon runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fleetscope.localstack.process import ManagedProcess, StartError, free_port, port_open

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "scontrol", "sinfo")


def missing_binaries() -> list[str]:
    """The Slurm and munge programs this machine lacks (scripts/setup.sh installs slurm-wlm and munge)."""
    return [name for name in BINARIES if shutil.which(name) is None and not Path("/usr/sbin", name).exists()]


def _binary(name: str) -> str:
    found = shutil.which(name) or (str(Path("/usr/sbin", name)) if Path("/usr/sbin", name).exists() else None)
    if found is None:
        raise StartError(f"{name} is not installed; run scripts/setup.sh (it installs Debian's slurm-wlm and munge)")
    return found


class SlurmCluster:
    """start() brings up munged, slurmctld and slurmd; `env` is what scontrol and sinfo need to reach them."""

    def __init__(self, node: str = "gpu-node-1", ghosts: Sequence[str] = ("gpu-node-2", "gpu-node-3", "gpu-node-4"),
                 partition: str = "gpu") -> None:
        self.node, self.ghosts, self.partition = node, tuple(ghosts), partition
        self.controller = socket.gethostname().split(".")[0]  # slurmctld only runs on the host its config names
        self.directory = Path(tempfile.mkdtemp(prefix="fleetscope-slurm-"))
        self.config_path = self.directory / "slurm.conf"
        self.munge_socket = self.directory / "munge" / "munge.socket"
        self._processes: list[ManagedProcess] = []

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.config_path)}

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        try:
            self._start_munge(timeout)
            controller_port, node_port, ghost_port = free_port(), free_port(), free_port()
            self.config_path.write_text(self._config(controller_port, node_port, ghost_port))
            self._run("slurmctld", [_binary("slurmctld"), "-D", "-f", str(self.config_path)],
                      lambda: port_open(controller_port) and self._answers(), timeout)
            self._run("slurmd", [_binary("slurmd"), "-D", "-f", str(self.config_path), "-N", self.node],
                      lambda: self._node_state() not in ("", "UNKNOWN", "DOWN"), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def scontrol(self, *words: str, timeout: float = 15.0) -> str:
        done = subprocess.run([_binary("scontrol"), *words], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"scontrol {' '.join(words)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def node_fields(self, node: str) -> dict[str, str]:
        """`scontrol show node` as fields: State (IDLE+DRAIN), Reason, Partitions, ..."""
        text = self.scontrol("show", "node", node)
        fields: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("Reason="):  # the one field whose value may hold spaces: the rest of its line
                fields["Reason"] = line.removeprefix("Reason=")
                continue
            for word in line.split():
                key, equals, value = word.partition("=")
                if equals:  # OS=Linux 6.1 #1 SMP ...: the words after the first belong to OS, and are left out
                    fields[key] = value
        return fields

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"--- {process.log_path.name}\n{process.log_tail(lines)}" for process in self._processes)

    def _start_munge(self, timeout: float) -> None:
        munge = self.munge_socket.parent
        munge.mkdir(mode=0o700)
        key = munge / "munge.key"
        subprocess.run([_binary("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True,
                       timeout=timeout)
        key.chmod(0o600)
        # --force: as root, and under a temporary folder whose parents munged would otherwise call insecure.
        self._run("munged", [_binary("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                             f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
                             f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"],
                  self.munge_socket.exists, timeout)

    def _config(self, controller_port: int, node_port: int, ghost_port: int) -> str:
        state, spool = self.directory / "state", self.directory / "spool"
        state.mkdir()
        spool.mkdir()
        nodes = ",".join((self.node, *self.ghosts))
        lines = [
            "ClusterName=fleetscope",
            f"SlurmctldHost={self.controller}(127.0.0.1)",
            f"SlurmctldPort={controller_port}",
            f"SlurmdPort={node_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "CredType=cred/munge",
            f"StateSaveLocation={state}",
            f"SlurmdSpoolDir={spool}",
            f"SlurmctldPidFile={self.directory / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.directory / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.directory / 'slurmctld.log'}",
            f"SlurmdLogFile={self.directory / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/linear",
            "MpiDefault=none",
            "ReturnToService=2",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs=1 RealMemory=100 State=UNKNOWN",
        ]
        if self.ghosts:
            # No slurmd listens on their port: the controller sees them as not responding, never as ours.
            lines.append(f"NodeName={','.join(self.ghosts)} NodeAddr=127.0.0.1 Port={ghost_port} CPUs=1 "
                         "RealMemory=100 State=UNKNOWN")
        lines.append(f"PartitionName={self.partition} Nodes={nodes} Default=YES MaxTime=INFINITE State=UP")
        return "\n".join(lines) + "\n"

    def _run(self, name: str, argv: list[str], ready, timeout: float) -> None:
        process = ManagedProcess(argv, self.directory / f"{name}.out", ready)
        self._processes.append(process)
        process.start(timeout)

    def _answers(self) -> bool:
        try:
            self.scontrol("ping", timeout=5)
            return True
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def _node_state(self) -> str:
        try:
            return self.node_fields(self.node).get("State", "").split("+")[0].rstrip("*")
        except (RuntimeError, subprocess.TimeoutExpired):
            return ""


def wait_for_state(cluster: SlurmCluster, node: str, predicate, timeout: float = 30.0) -> dict[str, str]:
    """The node's fields once predicate(fields) holds; TimeoutError with the last fields otherwise."""
    deadline = time.monotonic() + timeout
    fields: dict[str, str] = {}
    while time.monotonic() < deadline:
        fields = cluster.node_fields(node)
        if predicate(fields):
            return fields
        time.sleep(0.2)
    raise TimeoutError(f"node {node} did not reach the expected state within {timeout:.0f}s: {fields}")
