"""The collectors the exporter knows, each with its --collector.<name> flags."""

from __future__ import annotations

import argparse
import math
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetscope import durations
from fleetscope.exporters.registry import Source
from fleetscope.exporters.scheduling import OnScrape, Polled


@dataclass(frozen=True)
class CollectorOption:
    name: str
    help: str
    enabled_by_default: bool
    add_flags: Callable[[argparse._ArgumentGroup], None]
    build: Callable[[argparse.Namespace], Sequence[Source]]


def _gpu_flags(group: argparse._ArgumentGroup) -> None:
    _poll_flag(group, "gpu", "15s", "NVML")
    group.add_argument("--collector.gpu.pod-resources-socket", dest="gpu_pod_resources_socket",
                       default="/var/lib/kubelet/pod-resources/kubelet.sock", metavar="PATH",
                       help="kubelet pod-resources socket; where it exists, GPU series carry the namespace, pod "
                            "and container the GPU is allocated to. Empty disables")
    group.add_argument("--collector.gpu.xid-events", dest="gpu_xid_events", action=argparse.BooleanOptionalAction,
                       default=True, help="count XID errors from NVML's event API")
    group.add_argument("--collector.gpu.hpc-job-mapping-dir", dest="gpu_hpc_job_mapping_dir", type=Path,
                       default=os.environ.get("DCGM_HPC_JOB_MAPPING_DIR") or None, metavar="PATH",
                       help="dcgm-exporter's HPC job-mapping directory (a file per GPU index listing its jobs, "
                            "written by a Slurm prolog): GPU series carry hpc_job. Without the flag, "
                            "$DCGM_HPC_JOB_MAPPING_DIR where it is set")
    group.add_argument("--collector.gpu.slurm-jobs", dest="gpu_slurm_jobs", action=argparse.BooleanOptionalAction,
                       default=True, help="label each GPU and process with the Slurm job of its processes (from "
                                          "their cgroup or SLURM_JOB_ID), where no mapping directory names it")
    group.add_argument("--collector.gpu.pod-uid", dest="gpu_pod_uid", action=argparse.BooleanOptionalAction,
                       default=False, help="add pod_uid, read from the GPU processes' cgroups, to process series "
                                           "and to a GPU whose processes are all in one pod (needs hostPID)")
    group.add_argument("--compat.dcgm", dest="compat_dcgm", action=argparse.BooleanOptionalAction, default=False,
                       help="also serve every GPU reading under dcgm-exporter's names, labels and units "
                            "(DCGM_FI_DEV_GPU_UTIL{UUID,modelName,Hostname,...}), from the same NVML reads, so "
                            "dashboards and autoscalers written for dcgm-exporter work unchanged")


def _gpu_sources(args: argparse.Namespace) -> Sequence[Source]:
    from fleetscope.exporters.attribution import HoldersSource, combine
    from fleetscope.exporters.attribution.processes import ProcessAttribution
    from fleetscope.exporters.attribution.slurm import JobMappingDirectory
    from fleetscope.exporters.gpu.collector import GpuCollector
    from fleetscope.exporters.kubernetes.podresources import PodResources

    if args.simulate:
        from fleetscope.exporters.gpu.simulation import simulated_nvml

        library: Any = simulated_nvml(gpus=args.simulate_gpus, seed=args.simulate_seed,
                                      scheduled_xids=args.simulate_xids)
    else:
        import pynvml

        library = pynvml
    holders: list[HoldersSource] = []
    if args.gpu_pod_resources_socket:
        holders.append(PodResources(args.gpu_pod_resources_socket).gpu_pods)
    if args.gpu_hpc_job_mapping_dir:
        holders.append(JobMappingDirectory(args.gpu_hpc_job_mapping_dir).holders)
    attribution = ProcessAttribution(slurm_jobs=args.gpu_slurm_jobs, pod_uid=args.gpu_pod_uid, proc=args.procfs)
    collector = GpuCollector(library, args.hostname, holders=combine(holders) if holders else dict,
                             xid_events=args.gpu_xid_events, compat_dcgm=args.compat_dcgm, attribution=attribution)
    return (scheduled(collector, args.gpu_poll_interval),)


def scheduled(collector, interval: float, longest_collection: float = 10.0) -> Source:
    """The collector read in the background every `interval` seconds, or at every scrape for 0.

    Polled is the default for every collector: a scrape then renders only what changed since the
    last poll (see exporters/server.py), so the page costs less than a bare prometheus_client page
    of the same series, and a slow file system or driver never delays it. A result is served
    while younger than three intervals, and never expires before one collection of
    `longest_collection` seconds could finish."""
    if interval == 0:
        return OnScrape(collector)
    polled = Polled(collector, interval, max_age=max(3 * interval, interval + longest_collection))
    polled.start(wait=False)  # the exporter listens at once; /-/ready waits for the first collection
    return polled


# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
POLL_INTERVAL = durations.bounded_duration("100ms", "1h", zero="reads at every scrape")
MAX_COMMUNICATORS = durations.bounded_int(1, 100_000)
RAS_HANG_AFTER = durations.bounded_duration("0s", "1d")
NCCL_IDLE_TIMEOUT = durations.bounded_duration("1m", "1w")
MAX_RAS_TIMEOUT_FACTOR = 1000.0  # a STATUS report could then take 10,001 s: a factor beyond is a typo


def _poll_flag(group: argparse._ArgumentGroup, collector: str, default: str, reads: str) -> None:
    group.add_argument(f"--collector.{collector}.poll-interval", dest=f"{collector}_poll_interval",
                       type=POLL_INTERVAL, default=durations.parse(default), metavar="DURATION",
                       help=f"read {reads} in the background this often and serve the latest reading; set it to "
                            f"your scrape interval ({POLL_INTERVAL.low} to {POLL_INTERVAL.high}). 0s reads at every "
                            "scrape instead")


def _fabric_flags(group: argparse._ArgumentGroup) -> None:
    _poll_flag(group, "fabric", "15s", "the ports' sysfs counters")


def _fabric_sources(args: argparse.Namespace) -> Sequence[Source]:
    from fleetscope.exporters.fabric.collector import FabricCollector

    if args.simulate:
        from fleetscope.exporters.fabric.simulation import SimulatedFabric

        fabric = SimulatedFabric(seed=args.simulate_seed)
        fabric_collector = FabricCollector(fabric.root, args.hostname, before_read=fabric.advance)
        collector: FabricCollector | _Closing = _Closing(fabric_collector, fabric)
    else:
        collector = FabricCollector(args.sysfs, args.hostname)
    return (scheduled(collector, args.fabric_poll_interval),)


class _Closing:
    """A collector that also closes something it depends on."""

    def __init__(self, collector, resource):
        self.name = collector.name
        self._collector, self._resource = collector, resource

    def collect(self):
        return self._collector.collect()

    def close(self) -> None:
        self._collector.close()
        self._resource.close()


def _nccl_flags(group: argparse._ArgumentGroup) -> None:
    # Files can grow by megabytes a second: a shorter default than the scrape interval keeps each read small.
    _poll_flag(group, "nccl", "5s", "the Inspector files, debug logs and RAS")
    group.add_argument("--collector.nccl.inspector-dir", dest="nccl_inspector_dir", type=Path,
                       default=Path("/var/lib/fleetscope/nccl-inspector"), metavar="PATH",
                       help="where jobs write NCCL Inspector JSON output (their NCCL_INSPECTOR_DUMP_DIR), or a "
                            "directory of one such directory per job")
    group.add_argument("--collector.nccl.max-communicators", dest="nccl_max_communicators", type=MAX_COMMUNICATORS,
                       default=64, metavar="N",
                       help="communicators tracked at once; records of more are counted as rejected "
                            f"({MAX_COMMUNICATORS.range})")
    group.add_argument("--collector.nccl.debug-log", dest="nccl_debug_log", default="", metavar="GLOB",
                       help="NCCL_DEBUG=INFO log files to read transports, algorithms, channels and warnings from "
                            "(e.g. /var/log/nccl/*.log, written with NCCL_DEBUG_FILE=/var/log/nccl/%%h.%%p.log)")
    group.add_argument("--collector.nccl.ras-address", dest="nccl_ras_address", type=_address,
                       default=_address("localhost:28028"), metavar="HOST:PORT",
                       help="NCCL RAS service to query for hangs (NCCL_RAS_ADDR of the jobs); empty disables")
    group.add_argument("--collector.nccl.ras-timeout-factor", dest="nccl_ras_timeout_factor", type=_timeout_factor,
                       default=os.environ.get("NCCL_RAS_TIMEOUT_FACTOR") or "1", metavar="FACTOR",
                       help="the jobs' NCCL_RAS_TIMEOUT_FACTOR: a STATUS report may take 1s + 10s times this, "
                            f"above 0 and up to {MAX_RAS_TIMEOUT_FACTOR:g} (default: $NCCL_RAS_TIMEOUT_FACTOR, else 1)")
    group.add_argument("--collector.nccl.ras-hang-after", dest="nccl_ras_hang_after", type=RAS_HANG_AFTER,
                       default=durations.parse("1m"), metavar="DURATION",
                       help="call a communicator hung when its ranks disagree and its counts have not moved this long "
                            f"({RAS_HANG_AFTER.range})")
    group.add_argument("--collector.nccl.idle-timeout", dest="nccl_idle_timeout", type=NCCL_IDLE_TIMEOUT,
                       default=durations.parse("15m"), metavar="DURATION",
                       help="forget communicators and files with no new records for this long "
                            f"({NCCL_IDLE_TIMEOUT.range})")


def _nccl_sources(args: argparse.Namespace) -> Sequence[Source]:
    from fleetscope.exporters.nccl import ras
    from fleetscope.exporters.nccl.collector import NcclCollector

    directory, debug_logs, job = args.nccl_inspector_dir, args.nccl_debug_log, None
    if args.simulate:
        from fleetscope.exporters.nccl.simulation import SimulatedJob

        job = SimulatedJob(seed=args.simulate_seed)
        directory, debug_logs = job.root, str(job.debug_log)
    nccl = NcclCollector(directory, args.hostname, args.nccl_max_communicators, args.nccl_idle_timeout,
                         before_read=job.advance if job else None, debug_logs=debug_logs)
    collector: NcclCollector | _Closing = nccl
    if job is not None:
        collector = _Closing(collector, job)
    sources = [scheduled(collector, args.nccl_poll_interval)]
    if args.nccl_ras_address is not None:
        factor = args.nccl_ras_timeout_factor
        querier = ras.RasCollector(args.nccl_ras_address, args.hostname, args.nccl_ras_hang_after, factor)
        sources.append(scheduled(querier, args.nccl_poll_interval, longest_collection=ras.report_timeout(factor)))
    return sources


def _timeout_factor(text: str) -> float:
    """A positive, finite NCCL_RAS_TIMEOUT_FACTOR, as NCCL accepts it (src/ras/ras_param.cc), up to
    MAX_RAS_TIMEOUT_FACTOR."""
    try:
        factor = float(text)
    except ValueError:
        factor = math.nan
    if not math.isfinite(factor) or not 0 < factor <= MAX_RAS_TIMEOUT_FACTOR:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number up to {MAX_RAS_TIMEOUT_FACTOR:g}")
    return factor


def _address(text: str) -> tuple[str, int] | None:
    """HOST:PORT for a flag; empty means none."""
    if not text:
        return None
    from fleetscope.log import UserError
    from fleetscope.web.server import parse_listen_address

    try:
        host, port = parse_listen_address(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return host or "localhost", port


def add_common_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--path.sysfs", dest="sysfs", type=Path, default=Path("/sys"), metavar="PATH",
                       help="sysfs mountpoint (in a container, where the host's /sys is mounted)")
    group.add_argument("--path.procfs", dest="procfs", type=Path, default=Path("/proc"), metavar="PATH",
                       help="procfs mountpoint, where GPU processes' names, cgroups and Slurm jobs are read")
    group.add_argument("--collector.hostname", dest="hostname",
                       default=os.environ.get("NODE_NAME") or socket.gethostname(),
                       help="value of the hostname label on every series (default: $NODE_NAME, as the Kubernetes "
                            "downward API sets it, else the host name)")


AVAILABLE: tuple[CollectorOption, ...] = (
    CollectorOption("gpu", "NVIDIA GPUs through NVML", True, _gpu_flags, _gpu_sources),
    CollectorOption("fabric", "InfiniBand and RoCE ports from sysfs", True, _fabric_flags, _fabric_sources),
    CollectorOption("nccl", "NCCL collectives from the NCCL Inspector plugin", True, _nccl_flags, _nccl_sources),
)
