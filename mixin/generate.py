"""The command line every generator built from the monitoring config shares: [CONFIG_FLAG FILE] [DIR]."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from fleetscope.generated import write_all
from fleetscope.mixin.config import ConfigError, MonitoringConfig, load


def run_generator(argv: list[str] | None, prog: str, description: str, directory: Path,
                  files_for: Callable[[MonitoringConfig], dict[str, str]], config_flag: str = "--config") -> int:
    """Loads the config (the defaults, or CONFIG_FLAG's YAML file over them) and writes files_for(config) to DIR,
    or `directory` without it. A setting that cannot be used, refused on loading or by files_for with ConfigError,
    exits 2 naming it."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(config_flag, dest="config",
                        help="YAML file of alerts settings over the defaults (see mixin/config.py)")
    parser.add_argument("directory", nargs="?", type=Path, default=directory)
    args = parser.parse_args(argv)
    try:
        files = files_for(load(args.config))
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")
    for path in write_all(files, args.directory):
        print(path)
    return 0
