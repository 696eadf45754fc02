"""What every fleetscope process serves about itself: its process (CPU, resident memory, file descriptors, start
time: process_*), its Python runtime (python_info, python_gc_*), both as prometheus_client's own collectors name
them, and fleetscope_build_info, so that one query finds every fleetscope process and its version."""

from __future__ import annotations

import functools
import json
import platform
from collections.abc import Iterator
from importlib import metadata

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from fleetscope import __version__
from fleetscope.catalog import Family, MetricSpec

BUILD_INFO = MetricSpec(
    "fleetscope_build_info", "gauge",
    "A metric with a constant '1' value labeled by the version of fleetscope, the commit it was installed from "
    "(where pip recorded one) and the Python it runs on.",
    ("version", "python_version"), optional_labels=("revision",),
)
# What prometheus_client's collectors serve, for the consumers (alerts, dashboards) that read them.
PROCESS_START_TIME = "process_start_time_seconds"
PROCESS_RESIDENT_MEMORY = "process_resident_memory_bytes"
PROCESS_CPU = "process_cpu_seconds_total"
PROCESS_OPEN_FDS = "process_open_fds"
PROCESS_MAX_FDS = "process_max_fds"


@functools.cache
def build_labels() -> dict[str, str]:
    labels = {"version": __version__, "python_version": platform.python_version()}
    revision = _revision()
    if revision:
        labels["revision"] = revision
    return labels


def _revision() -> str:
    """The commit pip installed from (`pip install git+https://...@<commit>` records it in direct_url.json)."""
    try:
        recorded = metadata.distribution("fleetscope").read_text("direct_url.json")
        return str(json.loads(recorded or "{}").get("vcs_info", {}).get("commit_id", ""))
    except (metadata.PackageNotFoundError, ValueError, AttributeError):
        return ""


def build_info() -> Metric:
    family = Family(BUILD_INFO)
    family.add(build_labels(), 1)
    return family.metric


class RuntimeCollector:
    """process_*, python_info and python_gc_* of this process, read at each collect(): a few reads of /proc/self,
    tens of microseconds."""

    def __init__(self) -> None:
        unused = CollectorRegistry(auto_describe=False)  # GCCollector registers itself; nothing reads this one
        self._collectors = (ProcessCollector(registry=None), PlatformCollector(registry=None), GCCollector(unused))

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


class SelfCollector(RuntimeCollector):
    """RuntimeCollector and fleetscope_build_info: register it on a process's own registry."""

    def collect(self) -> Iterator[Metric]:
        yield from super().collect()
        yield build_info()
