"""The collectors the exporter knows, in the order of --help, and the flags they share.

Each collector declares itself beside its code: `exporters/<name>/option.py` holds its `OPTION`, a
CollectorOption with its name, default, --collector.<name>.* flags and builder (exporters/option.py).
Registering one is its line in OPTION_MODULES; tests/exporters/test_collector_options.py fails on a
collector package that has an option module but no line here."""

from __future__ import annotations

import argparse
import importlib
import os
import socket
from pathlib import Path

from fleetscope.exporters.option import CollectorOption

# One line per collector: the module whose OPTION declares it. Its order is the order of --help.
OPTION_MODULES = (
    "fleetscope.exporters.gpu.option",
    "fleetscope.exporters.fabric.option",
    "fleetscope.exporters.nccl.option",
    "fleetscope.exporters.health.option",
)


def _declared(module_name: str) -> CollectorOption:
    option = getattr(importlib.import_module(module_name), "OPTION", None)
    if not isinstance(option, CollectorOption):
        raise TypeError(f"{module_name} must declare OPTION, a CollectorOption; it has {option!r}")
    return option


def _registered(module_names: tuple[str, ...]) -> tuple[CollectorOption, ...]:
    options = tuple(_declared(name) for name in module_names)
    names = [option.name for option in options]
    if len(set(names)) != len(names):
        raise ValueError(f"collector names declared twice: {sorted({n for n in names if names.count(n) > 1})}")
    return options


AVAILABLE: tuple[CollectorOption, ...] = _registered(OPTION_MODULES)


def add_common_flags(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--path.sysfs", dest="sysfs", type=Path, default=Path("/sys"), metavar="PATH",
                       help="sysfs mountpoint (in a container, where the host's /sys is mounted)")
    group.add_argument("--path.procfs", dest="procfs", type=Path, default=Path("/proc"), metavar="PATH",
                       help="procfs mountpoint, where GPU processes' names, cgroups and Slurm jobs are read")
    group.add_argument("--collector.hostname", dest="hostname",
                       default=os.environ.get("NODE_NAME") or socket.gethostname(),
                       help="value of the hostname label on every series (default: $NODE_NAME, as the Kubernetes "
                            "downward API sets it, else the host name)")
