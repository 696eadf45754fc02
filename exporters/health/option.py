"""The health collector's --collector.health flags and its builder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleetscope.exporters.option import Closing, CollectorOption, poll_flag, scheduled
from fleetscope.exporters.registry import Source


def _flags(group: argparse._ArgumentGroup) -> None:
    poll_flag(group, "health", "1m", "the passive health checks (NVML, RDMA ports, limits)")
    group.add_argument("--collector.health.policy", dest="health_policy", type=Path, metavar="FILE",
                       help="the policy file `fleetscope check --policy` reads; without it, its defaults")
    group.add_argument("--collector.health.check-record", dest="health_check_record", type=Path, metavar="FILE",
                       help="where `fleetscope check --record` writes its last verdict, served with its time")


def _sources(args: argparse.Namespace) -> Sequence[Source]:
    from fleetscope.exporters.health import host_facts, policy
    from fleetscope.exporters.health.collector import HealthCollector

    the_policy = policy.load(args.health_policy)  # a PolicyError is a UserError: refused at start-up
    library: Any
    if args.stand_in:
        library = args.stand_in.nvml()
        fabric = args.stand_in.fabric()
        infiniband = fabric.root / "class" / "infiniband"
        collector: Any = Closing(HealthCollector(
            library, args.hostname, the_policy,
            host=lambda: host_facts.read(args.sysfs, args.procfs, infiniband=infiniband),
            check_record=args.health_check_record), fabric)
    else:
        import pynvml

        collector = HealthCollector(pynvml, args.hostname, the_policy,
                                    host=lambda: host_facts.read(args.sysfs, args.procfs),
                                    check_record=args.health_check_record)
    return (scheduled(collector, args.health_poll_interval),)


OPTION = CollectorOption("health", "node readiness verdicts, the checks of `fleetscope check`", True, _flags, _sources)
