"""`fleetscope simulate-fleet`: many simulated nodes in one process, one scrape target each, for trying the
fleet path (several Prometheus, remote_write, a global ruler) and measuring its cost as the fleet grows."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from fleetscope import durations, log
from fleetscope.simulation.fleet import Fault, SimulatedFleet
from fleetscope.simulation.node import GPU_COUNT

DESCRIPTION = ("Serve many simulated nodes (GPUs, fabric, an NCCL job each, as `fleetscope exporter --simulate` "
               "serves one) under one address at /CLUSTER/HOST/metrics, and write a Prometheus file_sd target "
               "file per cluster.")
_logger = log.get("fleetscope.exporters")
# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
NODES = durations.bounded_int(1, 5000)
REFRESH_INTERVAL = durations.bounded_duration("1s", "1h")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clusters", type=_names, default=["cluster-1"], metavar="NAME,...",
                        help="names of the simulated clusters")
    parser.add_argument("--nodes", dest="nodes_per_cluster", type=NODES, default=10, metavar="N",
                        help=f"nodes in each cluster ({NODES.range})")
    parser.add_argument("--gpus", type=GPU_COUNT, default=8, metavar="N", help=f"GPUs on each node ({GPU_COUNT.range})")
    parser.add_argument("--refresh-interval", type=REFRESH_INTERVAL, default=15.0, metavar="DURATION",
                        help="how often each node's readings move on (set it to the scrape interval; "
                             f"{REFRESH_INTERVAL.range})")
    parser.add_argument("--web.listen-address", dest="listen_address", default="127.0.0.1:9836",
                        help="address serving every node's page")
    parser.add_argument("--targets-dir", type=Path, default=Path("fleet-targets"), metavar="DIR",
                        help="where to write <cluster>.json, file_sd targets for each cluster's Prometheus")
    parser.add_argument("--fault", dest="faults", type=_fault, action="append", default=[],
                        metavar="CLUSTER/HOST:AFTER:xid:GPU:CODE|CLUSTER/HOST:AFTER:link-flap:DEVICE[:SECONDS]",
                        help="schedule a fault on one node, AFTER seconds from start-up; repeatable")


def run(args: argparse.Namespace) -> int:
    try:
        fleet = SimulatedFleet(args.clusters, args.nodes_per_cluster, args.gpus, args.refresh_interval, args.faults,
                               args.listen_address)
    except ValueError as error:
        raise log.UserError(str(error)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    with fleet:
        paths = fleet.write_targets(args.targets_dir)
        _logger.info("serving", extra={"address": fleet.address, "nodes": len(fleet.nodes),
                                       "targets": ",".join(str(path) for path in paths)})
        stop.wait()
    return 0


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(name and name.replace("-", "").replace("_", "").isalnum() for name in names):
        raise argparse.ArgumentTypeError(f"{text!r}: names are letters, digits, '-' or '_', separated by commas")
    return names


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
