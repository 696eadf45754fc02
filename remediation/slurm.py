"""Slurm: nodes drained and resumed with scontrol, their partitions and states read with sinfo."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict

from fleetscope.remediation.config import SlurmSettings
from fleetscope.remediation.nodes import REASON_PREFIX, BackendError, Group, NodeView

# One node, never a hostlist: a label value such as gpu[1-512] must not reach scontrol, which would expand it.
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# sinfo -N: one line per node and partition. The reason comes last: it is free text and may hold the separator.
_SINFO_FORMAT = "%N|%R|%T|%E"


class SlurmBackend:
    name = "slurm"

    def __init__(self, settings: SlurmSettings, env: dict[str, str] | None = None) -> None:
        self._settings = settings
        self._env = env  # None: this process's environment (SLURM_CONF where slurm.conf is elsewhere)

    def valid_name(self, node: str) -> bool:
        return bool(_NODE_NAME.match(node))

    def inspect(self, node: str) -> NodeView:
        output = self._run(self._settings.sinfo, "--noheader", "--all", "--Node", f"--format={_SINFO_FORMAT}")
        members: dict[str, set[str]] = defaultdict(set)
        drained: dict[str, set[str]] = defaultdict(set)
        state, reason, partitions = "", "", []
        for line in output.splitlines():
            parts = line.split("|", 3)
            if len(parts) != 4:
                continue
            name, partition, node_state, node_reason = parts
            members[partition].add(name)
            if "drain" in node_state:
                drained[partition].add(name)
            if name == node:
                state, reason = node_state, node_reason
                partitions.append(partition)
        if not partitions:
            return NodeView(node, exists=False)
        return NodeView(node, exists=True, drained="drain" in state, ours=reason.startswith(REASON_PREFIX),
                        groups=tuple(Group(f"partition {p}", frozenset(members[p]), frozenset(drained[p]))
                                     for p in partitions))

    def drain(self, node: str, reason: str) -> None:
        self._run(self._settings.scontrol, "update", f"nodename={node}", "state=drain", f"reason={reason}")

    def resume(self, node: str) -> None:
        self._run(self._settings.scontrol, "update", f"nodename={node}", "state=resume")

    def _run(self, program: str, *words: str) -> str:
        try:
            done = subprocess.run([program, *words], capture_output=True, text=True, env=self._env,
                                  timeout=self._settings.command_timeout, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"{program} {words[0]} did not finish within "
                               f"{self._settings.command_timeout:g}s") from None
        except OSError as error:
            raise BackendError(f"cannot run {program}: {error.strerror}") from None
        if done.returncode != 0:
            raise BackendError(f"{program} {words[0]} failed ({done.returncode}): {done.stderr.strip()[:500]}")
        return done.stdout
