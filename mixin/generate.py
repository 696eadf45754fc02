"""The command line every generator built from the monitoring config shares: [CONFIG_FLAG FILE] [DIR], run as
`python -m fleetscope.<name>.generate` (run_generator) or as `fleetscope generate <name>` (add_arguments, generate)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from fleetscope.generated import write_all
from fleetscope.log import UserError
from fleetscope.mixin.config import ConfigError, MonitoringConfig, load

FilesFor = Callable[[MonitoringConfig], dict[str, str]]


def add_arguments(parser: argparse.ArgumentParser, directory: Path, config_flag: str = "--config") -> None:
    parser.add_argument(config_flag, dest="config", metavar="FILE",
                        help="YAML file of monitoring settings over the defaults (see mixin/config.py)")
    parser.add_argument("directory", nargs="?", type=Path, default=directory, metavar="DIR",
                        help=f"where to write the files (default: {directory}, the package's own, whose files are "
                             "committed)")


def generate(args: argparse.Namespace, files_for: FilesFor) -> int:
    """Loads the config (the defaults, or the YAML file of args.config over them) and writes files_for(config) to
    args.directory, printing each path. ConfigError, from loading or from files_for, names the setting."""
    for path in write_all(files_for(load(args.config)), args.directory):
        print(path)
    return 0


def run_command(args: argparse.Namespace, files_for: FilesFor) -> int:
    """`fleetscope generate ...`: a setting that cannot be used is a UserError naming it (exit 2)."""
    try:
        return generate(args, files_for)
    except ConfigError as error:
        raise UserError(str(error)) from None


def run_generator(argv: list[str] | None, prog: str, description: str, directory: Path,
                  files_for: FilesFor, config_flag: str = "--config") -> int:
    """`python -m ...generate`: a setting that cannot be used exits 2 naming it."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, directory, config_flag)
    args = parser.parse_args(argv)
    try:
        return generate(args, files_for)
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")


@contextlib.contextmanager
def needs_extra(extra: str, prog: str, main: bool) -> Iterator[None]:
    """Around a generator's imports of an extra's libraries. Run as a program (main), a library that is missing
    exits 2 saying what to install, as `fleetscope generate` does; imported, the ImportError goes on to the importer
    (fleetscope.cli lists the command as needing the extra)."""
    try:
        yield
    except ModuleNotFoundError as error:
        if not main or (error.name or "fleetscope").partition(".")[0] == "fleetscope":
            raise
        print(f"error: {prog} needs pip install 'fleetscope[{extra}]' ({error})", file=sys.stderr)
        raise SystemExit(2) from None
