"""The fabric collector's --collector.fabric flags and its builder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fleetscope.exporters.option import Closing, CollectorOption, poll_flag, scheduled
from fleetscope.exporters.registry import Source


def _flags(group: argparse._ArgumentGroup) -> None:
    poll_flag(group, "fabric", "15s", "the ports' sysfs counters")


def _sources(args: argparse.Namespace) -> Sequence[Source]:
    from fleetscope.exporters.fabric.collector import FabricCollector

    if args.stand_in:
        fabric = args.stand_in.fabric()
        fabric_collector = FabricCollector(fabric.root, args.hostname, before_read=fabric.advance)
        collector: FabricCollector | Closing = Closing(fabric_collector, fabric)
    else:
        collector = FabricCollector(args.sysfs, args.hostname)
    return (scheduled(collector, args.fabric_poll_interval),)


OPTION = CollectorOption("fabric", "InfiniBand and RoCE ports from sysfs", True, _flags, _sources)
