"""`fleetscope exporter --simulate`: a simulated node (GPUs replaying a recorded H100 node, NDR InfiniBand ports and
an NCCL job) that the exporter's own collectors read in place of the host's.

The command line (fleetscope/cli.py) adds these flags to `fleetscope exporter` and calls prepare(args) before it
runs; tests and benchmarks call build(args). The simulated parts are made only for the collectors enabled, and
closed with them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetscope import durations, log
from fleetscope.exporters import command
from fleetscope.exporters.option import StandIn
from fleetscope.exporters.registry import ExporterRegistry
from fleetscope.web.server import WebServer

if TYPE_CHECKING:  # imported where used, so the host's exporter never loads the fake NVML
    from fleetscope.simulation.fabric import SimulatedFabric
    from fleetscope.simulation.gpu import ScheduledXid
    from fleetscope.simulation.nccl import SimulatedJob
    from fleetscope.simulation.nvml import FakeNvml

# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
GPU_COUNT = durations.bounded_int(1, 1024)  # GPUs on a simulated node (simulate-fleet's too)
GPU_INDEX = durations.bounded_int(0, GPU_COUNT.high - 1)
XID_AFTER = durations.bounded_duration("0s", "1w")
XID_CODE = durations.bounded_int(1, 999)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    simulate = parser.add_argument_group("simulation")
    simulate.add_argument("--simulate", action="store_true",
                          help="read a simulated node, built from a recording of H100 GPUs, instead of NVML")
    simulate.add_argument("--simulate.gpus", dest="simulate_gpus", type=GPU_COUNT, default=8, metavar="N",
                          help=f"number of simulated GPUs ({GPU_COUNT.range})")
    simulate.add_argument("--simulate.seed", dest="simulate_seed", type=int, default=1,
                          help="seed of the simulation's random walk, XIDs and throttling")
    simulate.add_argument("--simulate.xid", dest="simulate_xids", type=_scheduled_xid, action="append", default=[],
                          metavar="AFTER:GPU:CODE",
                          help="raise XID CODE on GPU (an index) AFTER a duration from start-up, e.g. 30s:2:79; "
                               f"AFTER {XID_AFTER.range}, GPU below --simulate.gpus, CODE {XID_CODE.range}; "
                               "repeatable")
    simulate.add_argument("--simulate.fault", dest="simulate_faults", type=_fault, action="append", default=[],
                          metavar="KIND[:INDEX]",
                          help="hold a failing state from start-up: on GPU INDEX (default 0) one of "
                               f"{', '.join(_gpu_faults())}, or xid-CODE (an XID in the kernel log); "
                               "ib-port-down on InfiniBand device INDEX; repeatable, e.g. pcie-degraded:2")


def prepare(args: argparse.Namespace) -> None:
    """With --simulate, puts the simulated node on args.stand_in; raises UserError for bad flags."""
    for xid in args.simulate_xids:
        if not args.simulate or not 0 <= xid.gpu < args.simulate_gpus:
            raise log.UserError(f"--simulate.xid names GPU {xid.gpu}: give --simulate and a GPU index below "
                                f"--simulate.gpus ({args.simulate_gpus})")
    for fault in getattr(args, "simulate_faults", []):
        limit = _fabric_devices() if fault.kind == IB_PORT_DOWN else args.simulate_gpus
        if not args.simulate or not 0 <= fault.index < limit:
            raise log.UserError(f"--simulate.fault {fault.kind}:{fault.index}: give --simulate and an index below "
                                f"{limit}")
    if args.simulate:
        args.stand_in = StandIn(nvml=lambda: _nvml(args), fabric=lambda: _fabric(args), nccl=lambda: _nccl(args),
                                kernel_log=lambda: _kernel_log(args))


def build(args: argparse.Namespace) -> tuple[ExporterRegistry, WebServer]:
    """The exporter of `args` (from `fleetscope exporter`'s parser), on the simulated node where --simulate says so."""
    prepare(args)
    return command.build(args)


def _nvml(args: argparse.Namespace) -> FakeNvml:
    from fleetscope.simulation.gpu import simulated_nvml

    fake = simulated_nvml(gpus=args.simulate_gpus, seed=args.simulate_seed, scheduled_xids=args.simulate_xids)
    for fault in getattr(args, "simulate_faults", []):
        if fault.kind in _gpu_faults():
            fake.inject_fault(fault.kind, fault.index)
    return fake


def _fabric(args: argparse.Namespace) -> SimulatedFabric:
    from fleetscope.simulation.fabric import SimulatedFabric

    fabric = SimulatedFabric(seed=args.simulate_seed)
    for fault in getattr(args, "simulate_faults", []):
        if fault.kind == IB_PORT_DOWN:
            # The simulation rewrites a file only when its own state changes, so the port stays down.
            port = fabric.root / "class" / "infiniband" / f"mlx5_{fault.index}" / "ports" / "1"
            (port / "state").write_text("1: DOWN\n")
            (port / "phys_state").write_text("3: Disabled\n")
    return fabric


def _kernel_log(args: argparse.Namespace) -> str:
    """The kernel log of the simulated node: the driver loading, and the XIDs of the xid-CODE faults, in the
    driver's own words (exporters/catalog/xids.py names them)."""
    from fleetscope.exporters.catalog.xids import CATALOG
    from fleetscope.simulation.gpu import scaled_recording

    devices = scaled_recording(args.simulate_gpus)["devices"]
    lines = ["[    5.120411] nvidia: loading out-of-tree module taints kernel.",
             "[    5.301877] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.90.07"]
    for number, fault in enumerate(getattr(args, "simulate_faults", [])):
        if fault.kind.startswith("xid-"):
            code = int(fault.kind.removeprefix("xid-"))
            bus_id = devices[fault.index]["values"]["nvmlDeviceGetPciInfo"]["busId"]
            domain, bus, device = bus_id.split(".")[0].split(":")
            name = CATALOG[code].name if code in CATALOG else "Unknown"
            lines.append(f"[{600 + number:>8}.000000] NVRM: Xid (PCI:{domain[-4:]}:{bus}:{device}): {code}, "
                         f"pid=41230, name=python, {name}.")
    return "\n".join(lines) + "\n"


def _nccl(args: argparse.Namespace) -> SimulatedJob:
    from fleetscope.simulation.nccl import SimulatedJob

    return SimulatedJob(seed=args.simulate_seed)


IB_PORT_DOWN = "ib-port-down"


@dataclass(frozen=True)
class Fault:
    """A failing state the simulated node holds from start-up (--simulate.fault)."""
    kind: str
    index: int


def _gpu_faults() -> tuple[str, ...]:
    from fleetscope.simulation.nvml import FAULTS

    return tuple(FAULTS)


def _fabric_devices() -> int:
    from fleetscope.simulation.fabric import SimulatedFabric

    return SimulatedFabric.DEVICES


def _fault(text: str) -> Fault:
    kind, _, index = text.partition(":")
    is_xid = kind.startswith("xid-") and kind.removeprefix("xid-").isdigit()
    if not (is_xid or kind == IB_PORT_DOWN or kind in _gpu_faults()):
        raise argparse.ArgumentTypeError(f"{text!r}: unknown fault {kind!r}; known are {', '.join(_gpu_faults())}, "
                                         f"xid-CODE and {IB_PORT_DOWN}")
    if is_xid:
        XID_CODE(kind.removeprefix("xid-"))
    if index and not index.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: INDEX must be a whole number, e.g. pcie-degraded:2")
    try:
        GPU_INDEX(index or "0")
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: INDEX {error}") from None
    return Fault(kind, int(index or 0))


def _scheduled_xid(text: str) -> ScheduledXid:
    from fleetscope.simulation.gpu import ScheduledXid

    after, gpu, code = (text.split(":") + ["", ""])[:3]
    try:
        scheduled = ScheduledXid(durations.parse(after), int(gpu), int(code))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not AFTER:GPU:CODE, e.g. 30s:2:79") from None
    parts: tuple[tuple[str, Callable[[str], object], str], ...] = (
        ("AFTER", XID_AFTER, after), ("GPU", GPU_INDEX, gpu), ("CODE", XID_CODE, code))
    for part, bounds, value in parts:
        try:
            bounds(value)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {part} {error}") from None
    return scheduled
