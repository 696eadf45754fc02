"""`fleetscope check`: is this node fit for work? Passive: it reads NVML, the kernel log and the host, changes
nothing and runs nothing on the GPUs, so it can run before every job (Slurm's HealthCheckProgram or prolog,
LBNL NHC, node-problem-detector's custom plugin). With --active it also runs work on the GPUs (active.py: DCGM's
diagnostics, or PyTorch's GEMM, copy and all-reduce measurements), for a node between jobs."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fleetscope import log
from fleetscope.exporters.health import active, checks, host_facts, kernel_log, policy, record, report
from fleetscope.exporters.health.dcgm_diag import LEVELS as DIAG_LEVELS
from fleetscope.exporters.health.gpu_facts import GpuReader
from fleetscope.exporters.health.model import DEGRADED, UNFIT, Result

DESCRIPTION = """Checks this node's GPUs, driver, fabric and limits against a policy and says whether it is fit
for work: a table (or JSON, or node-problem-detector's one line) with each failed check's reason and what to do.
Exit status: 0 fit, 1 unfit (or degraded, with --fail-on=degraded); with --output=npd, 2 when the check itself
could not run. Nothing is changed on the node unless --slurm-drain is given, and nothing runs on the GPUs unless
--active is given."""

_logger = log.get("fleetscope.exporters.health")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=Path, metavar="FILE",
                        help="YAML policy: expected GPUs, driver, links, limits, XID classes "
                             "(exporters/health/policy.py lists the keys); without it, the defaults")
    parser.add_argument("--output", choices=("table", "json", "npd"), default="table",
                        help="table for people, json for programs, npd for node-problem-detector's custom plugin "
                             "protocol (one line of at most 80 characters; exit 0 OK, 1 NonOK, 2 Unknown)")
    parser.add_argument("--all", dest="show_all", action="store_true", help="list passing checks in the table too")
    parser.add_argument("--fail-on", choices=(UNFIT, DEGRADED), default=UNFIT,
                        help="the verdict at which the exit status is 1")
    parser.add_argument("--kernel-log", type=Path, default=kernel_log.KMSG, metavar="PATH",
                        help="where to read XIDs since boot: /dev/kmsg, or a file of `dmesg` or journal output")
    parser.add_argument("--path.sysfs", dest="sysfs", type=Path, default=Path("/sys"), metavar="PATH",
                        help="sysfs mountpoint (RDMA ports, network interfaces)")
    parser.add_argument("--path.procfs", dest="procfs", type=Path, default=Path("/proc"), metavar="PATH",
                        help="procfs mountpoint (hugepages)")
    parser.add_argument("--hostname", default=os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0],
                        help="the node's name in the output and for scontrol (default: $SLURMD_NODENAME, else the "
                             "short host name)")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="also write the verdict and its time here, for the exporter's "
                             "--collector.health.check-record to serve")
    parser.add_argument("--slurm-drain", action="store_true",
                        help='when unfit, drain the node: scontrol update nodename=HOST state=drain '
                             'reason="fleetscope: <reasons>"')
    parser.add_argument("--slurm-drain.scontrol", dest="scontrol", default="scontrol", metavar="PATH",
                        help="the scontrol program --slurm-drain runs")
    parser.add_argument("--active", action="store_true",
                        help="also run the active checks, which take the GPUs for seconds to minutes (run them "
                             "between jobs): DCGM's diagnostics where dcgmi is installed, else with PyTorch a GEMM "
                             "burn and a host-to-device copy per GPU and an all-reduce across them, against the "
                             "policy's active figures")
    parser.add_argument("--active.engine", dest="active_engine", choices=active.ENGINES, default="auto",
                        help="auto: DCGM where --active.dcgmi is found, else PyTorch")
    parser.add_argument("--active.level", dest="active_level", type=int, choices=DIAG_LEVELS, default=1,
                        help="dcgmi diag -r LEVEL: 1 quick deployment checks (seconds), 2 medium (about two "
                             "minutes, runs load), 3 long (up to half an hour: memory, PCIe, stress)")
    parser.add_argument("--active.dcgmi", dest="active_dcgmi", default="dcgmi", metavar="PATH",
                        help="the dcgmi program")
    parser.set_defaults(stand_in=None)  # the host; `--simulate` (simulation/node.py) puts a StandIn here


def gather(args: argparse.Namespace, the_policy: policy.Policy) -> list[Result]:
    """Every result of this node: NVML (or the stand-in's), the kernel log, the host."""
    stand_in = args.stand_in
    library: Any
    if stand_in is not None:
        library = stand_in.nvml()
    else:
        import pynvml

        library = pynvml
    reader = GpuReader(library, args.hostname)
    try:
        gpus = reader.read()
    finally:
        reader.close()
    if stand_in is not None and stand_in.kernel_log is not None:
        xids = kernel_log.parse(stand_in.kernel_log(), "the simulated kernel log")
    else:
        xids = kernel_log.read(args.kernel_log)
    fabric = stand_in.fabric() if stand_in is not None else None
    try:
        infiniband = fabric.root / "class" / "infiniband" if fabric is not None else None
        host = host_facts.read(args.sysfs, args.procfs, infiniband=infiniband)
    finally:
        if fabric is not None:
            fabric.close()
    results = checks.node_results(gpus, host, the_policy)
    for gpu in gpus.gpus:
        results += checks.gpu_results(gpu, the_policy, xids)
    if getattr(args, "active", False):
        results += active.run(active.Options(engine=args.active_engine, level=args.active_level,
                                             dcgmi=args.active_dcgmi), the_policy)
    return results


def run(args: argparse.Namespace) -> int:
    the_policy = policy.load(args.policy)
    try:
        results = gather(args, the_policy)
    except Exception as error:  # noqa: BLE001 - node-problem-detector must get its Unknown, not a traceback
        if args.output != "npd":
            raise
        _logger.exception("the check could not run")
        sys.stdout.write(f"unknown: the check failed: {error}"[:report.NPD_MESSAGE_LENGTH] + "\n")
        return report.EXIT_UNKNOWN
    checked_at = time.time()
    if args.output == "json":
        sys.stdout.write(report.as_json(args.hostname, checked_at, results, args.fail_on))
    elif args.output == "npd":
        sys.stdout.write(report.npd(results))
    else:
        sys.stdout.write(report.table(args.hostname, results, args.show_all))
    if args.record is not None:
        record.write(args.record, checked_at, results, active=args.active)
    code = report.exit_code(results, args.fail_on)
    if args.slurm_drain and code != report.EXIT_OK:
        drain(args.scontrol, args.hostname, report.drain_reason(results))
    return code


def drain(scontrol: str, hostname: str, reason: str) -> None:
    command = [scontrol, "update", f"nodename={hostname}", "state=drain", f"reason={reason}"]
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise log.UserError(f"--slurm-drain: cannot run {scontrol}: {error}") from None
    if finished.returncode != 0:
        raise log.UserError(f"--slurm-drain: {scontrol} failed ({finished.returncode}): "
                            f"{(finished.stderr or finished.stdout).strip()[:400]}")
    _logger.warning("node drained", extra={"node": hostname, "reason": reason})
