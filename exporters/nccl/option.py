"""The nccl collector's --collector.nccl flags and its builder: the Inspector files, debug logs and RAS."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path

from fleetscope import durations
from fleetscope.exporters.option import Closing, CollectorOption, poll_flag, scheduled
from fleetscope.exporters.registry import Source

# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
MAX_COMMUNICATORS = durations.bounded_int(1, 100_000)
RAS_HANG_AFTER = durations.bounded_duration("0s", "1d")
NCCL_IDLE_TIMEOUT = durations.bounded_duration("1m", "1w")
MAX_RAS_TIMEOUT_FACTOR = 1000.0  # a STATUS report could then take 10,001 s: a factor beyond is a typo


def _flags(group: argparse._ArgumentGroup) -> None:
    # Files can grow by megabytes a second: a shorter default than the scrape interval keeps each read small.
    poll_flag(group, "nccl", "5s", "the Inspector files, debug logs and RAS")
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
                       default="localhost:28028", metavar="HOST:PORT",
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


def _sources(args: argparse.Namespace) -> Sequence[Source]:
    from fleetscope.exporters.nccl import ras
    from fleetscope.exporters.nccl.collector import NcclCollector

    directory, debug_logs, job = args.nccl_inspector_dir, args.nccl_debug_log, None
    if args.stand_in:
        job = args.stand_in.nccl()
        directory, debug_logs = job.root, str(job.debug_log)
    nccl = NcclCollector(directory, args.hostname, args.nccl_max_communicators, args.nccl_idle_timeout,
                         before_read=job.advance if job else None, debug_logs=debug_logs)
    collector: NcclCollector | Closing = nccl
    if job is not None:
        collector = Closing(collector, job)
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


OPTION = CollectorOption("nccl", "NCCL collectives from the NCCL Inspector plugin", True, _flags, _sources)
