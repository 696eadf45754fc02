"""The one `fleetscope` command; each component adds its own subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fleetscope import __version__, log


def build_parser() -> argparse.ArgumentParser:
    from fleetscope.exporters import command as exporter_command

    parser = argparse.ArgumentParser(
        prog="fleetscope",
        description="Observability and drift monitoring for GPU fleets.",
    )
    parser.add_argument("--version", action="version", version=f"fleetscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    exporter = commands.add_parser(
        "exporter",
        help="run the node exporter (GPU telemetry as Prometheus metrics)",
        description=exporter_command.DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    exporter_command.add_arguments(exporter)
    log.add_arguments(exporter)
    exporter.set_defaults(run=exporter_command.run)

    from fleetscope.example import server as model_server

    example = commands.add_parser(
        "model-server",
        help="serve an example scikit-learn model instrumented with the inference SDK",
        description=model_server.DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model_server.add_arguments(example)
    log.add_arguments(example)
    example.set_defaults(run=model_server.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(args.log_level, args.log_format)
    try:
        return args.run(args)
    except log.UserError as error:
        log.get("fleetscope").error(str(error))
        print(f"fleetscope: error: {error}", file=sys.stderr)
        return 2
