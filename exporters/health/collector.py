"""The exporter's health collector: `fleetscope check`'s passive checks, run at every poll on what NVML and the host
answer, served as a verdict per check (fleetscope_gpu_health_state, fleetscope_node_health_state), with the time
and verdict of the last `fleetscope check --record` run, and of the last one with --active, whose active checks'
verdicts (check="active_gemm", ...) it serves beside the passive ones until the next active run replaces them.

It reads NVML in a session of its own (cheap calls, once per poll, never per scrape) and leaves XIDs to the GPU
collector's event counts, which the rules judge by the monitoring config's XID policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import health as m
from fleetscope.exporters.health import checks, record
from fleetscope.exporters.health.gpu_facts import GpuReader
from fleetscope.exporters.health.host_facts import HostFacts
from fleetscope.exporters.health.model import LEVELS
from fleetscope.exporters.health.policy import Policy


class HealthCollector:
    name = "health"

    def __init__(self, library: Any, hostname: str, policy: Policy, host: Callable[[], HostFacts] | None = None,
                 check_record: Path | None = None):
        """host: reads the host's facts at each poll (None: only what NVML answers is checked)."""
        self._reader = GpuReader(library, hostname)
        self._hostname = hostname
        self._policy = policy
        self._host = host
        self._record = check_record

    def collect(self) -> list[Metric]:
        out = FamilySet()
        facts = self._reader.read()
        node = {"hostname": self._hostname}
        for result in checks.node_results(facts, self._host() if self._host else None, self._policy):
            if result.status in LEVELS:
                out.add(m.NODE_HEALTH, {**node, "check": result.check}, LEVELS[result.status])
        gpu_labels = {}
        for gpu in facts.gpus:
            labels = gpu_labels[gpu.index] = {label: gpu.labels.get(label, "") for label in m.GPU_LABELS}
            for result in checks.gpu_results(gpu, self._policy, None):
                if result.status in LEVELS:
                    out.add(m.GPU_HEALTH, {**labels, "check": result.check}, LEVELS[result.status])
        last = record.read(self._record) if self._record is not None else None
        if last is not None:
            out.add(m.LAST_CHECK_TIME, node, last.time)
            out.add(m.LAST_CHECK_STATE, node, last.level)
        if last is not None and last.active is not None:
            out.add(m.LAST_ACTIVE_CHECK_TIME, node, last.active.time)
            out.add(m.LAST_ACTIVE_CHECK_STATE, node, last.active.level)
            for check, index, level in last.active.results:
                if index is None:
                    out.add(m.NODE_HEALTH, {**node, "check": check}, level)
                else:  # a GPU NVML no longer lists keeps its index, so its failed burn is not forgotten
                    labels = gpu_labels.get(index) or {label: "" for label in m.GPU_LABELS} | {
                        "gpu": str(index), "hostname": self._hostname}
                    out.add(m.GPU_HEALTH, {**labels, "check": check}, level)
        return out.metrics()

    def close(self) -> None:
        self._reader.close()
