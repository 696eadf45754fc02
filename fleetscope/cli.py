"""The one `fleetscope` command; each component adds its own subcommand."""

from __future__ import annotations

import argparse
import importlib
import itertools
import sys
from collections.abc import Sequence

from fleetscope import __version__, log
from fleetscope.flag_help import HelpFormatter


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command. Given the command line, only the module of the command it
    names is imported (the exporter then loads no drift or dashboard libraries); without it, all are."""
    words = None if argv is None else list(itertools.takewhile(lambda arg: not arg.startswith("-"), argv))
    parser = argparse.ArgumentParser(
        prog="fleetscope",
        description="Observability and drift monitoring for GPU fleets.",
    )
    parser.add_argument("--version", action="version", version=f"fleetscope {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_command(commands, ("demo",), "run the whole stack on loopback, watching a simulated GPU fleet",
                 "fleetscope.example.demo", "all", words)
    _add_command(commands, ("exporter",), "run the node exporter (GPU telemetry as Prometheus metrics)",
                 "fleetscope.exporters.command", "", words, extended_by="fleetscope.simulation.node")
    _add_command(commands, ("check",), "check whether this node is fit for work (Slurm, NHC, node-problem-detector)",
                 "fleetscope.exporters.health.command", "", words, extended_by="fleetscope.simulation.node")
    _add_command(commands, ("flight-recorder",), "name the first collective where a job's ranks diverge, from "
                 "PyTorch Flight Recorder dumps", "fleetscope.exporters.nccl.flight_recorder", "", words)
    _add_command(commands, ("simulate-fleet",), "serve many simulated nodes, one scrape target each",
                 "fleetscope.simulation.fleet_command", "", words)
    drift = commands.add_parser("drift", help="the drift service", description="The drift service.")
    _add_command(drift.add_subparsers(dest="drift_command", metavar="COMMAND", required=True), ("drift", "serve"),
                 "run the drift service (model outputs against references, as metrics)",
                 "fleetscope.drift.command", "drift", words)
    dashboards = commands.add_parser("dashboards", help="the generated Grafana dashboards",
                                     description="The generated Grafana dashboards.")
    _add_command(dashboards.add_subparsers(dest="dashboards_command", metavar="COMMAND", required=True),
                 ("dashboards", "preview"), "render each dashboard's panels with data from Prometheus to PNG",
                 "fleetscope.dashboards.preview", "dashboards", words)
    generate = commands.add_parser("generate", help="write the rules, dashboards or deployment files from the "
                                   "monitoring config", description="Write the files generated from the monitoring "
                                   "config (mixin/config.py, and a YAML file over it).")
    generators = generate.add_subparsers(dest="generate_command", metavar="COMMAND", required=True)
    for name, what, extra in (("alerts", "recording and alert rules and the Alertmanager configuration", ""),
                              ("dashboards", "Grafana dashboards and their provisioning", "dashboards"),
                              ("deploy", "Kubernetes manifests, systemd units, Prometheus configs and Containerfiles",
                               "dashboards")):
        _add_command(generators, ("generate", name), f"write the {what}", f"fleetscope.{name}.generate", extra, words)
    _add_command(commands, ("runbook",), "print an alert's runbook, as the package ships it",
                 "fleetscope.alerts.runbook_command", "", words)
    _add_command(commands, ("remediate",), "drain Slurm or Kubernetes nodes for the alerts Alertmanager names, within "
                 "limits", "fleetscope.remediation.command", "remediation", words)
    _add_command(commands, ("model-server",),
                 "serve an example scikit-learn model instrumented with the inference SDK",
                 "fleetscope.example.server", "example", words)
    return parser


def _add_command(commands: argparse._SubParsersAction, path: tuple[str, ...], help_: str, module_name: str,
                 extra: str, words: list[str] | None, extended_by: str = "") -> None:
    """A subcommand from a module with DESCRIPTION, add_arguments(parser) and run(args), imported
    only when `words` (the command line's leading words) name it, or always when words is None.
    A command whose extra is not installed stays listed, and says what to install.

    extended_by names a module of another room that adds flags to the command (add_arguments(parser)) and acts on
    them before it runs (prepare(args)): the simulation gives the exporter its --simulate flags that way, so the
    exporter never imports it."""
    name = path[-1]
    if words is not None and tuple(words[:len(path)]) != path:
        commands.add_parser(name, help=help_)  # listed in --help; never run from this command line
        return
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if not extra:
            raise
        reason = str(error)
        parser = commands.add_parser(name, help=f"{help_} (needs fleetscope[{extra}])")

        def missing(args: argparse.Namespace) -> int:
            raise _needs_extra(path, extra, reason)

        log.add_arguments(parser)
        # Whatever else the command line holds is the missing module's to read: the answer is what to install.
        parser.set_defaults(run=missing, ignores_arguments=True)
        return
    parser = commands.add_parser(name, help=help_, description=module.DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"fleetscope {__version__}")
    module.add_arguments(parser)
    run = module.run
    if extended_by:
        run = _extended(importlib.import_module(extended_by), parser, run)
    log.add_arguments(parser)
    parser.set_defaults(run=_saying_what_to_install(run, path, extra) if extra else run)


def _extended(extension, parser: argparse.ArgumentParser, run):
    extension.add_arguments(parser)

    def prepared(args: argparse.Namespace) -> int:
        extension.prepare(args)
        return run(args)
    return prepared


def _needs_extra(path: tuple[str, ...], extra: str, reason: str) -> log.UserError:
    return log.UserError(f"`fleetscope {' '.join(path)}` needs `pip install 'fleetscope[{extra}]'` ({reason})")


def _saying_what_to_install(run, path: tuple[str, ...], extra: str):
    """run, with a library its extra should have brought but did not (imported once the command
    starts) reported as what to install rather than as a traceback."""
    def guarded(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ModuleNotFoundError as error:
            if (error.name or "fleetscope").partition(".")[0] == "fleetscope":
                raise
            raise _needs_extra(path, extra, str(error)) from None
    return guarded


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "ignores_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    log.configure(args.log_level, args.log_format)
    try:
        return args.run(args)
    except log.UserError as error:
        log.get("fleetscope").error(str(error))  # once, as Prometheus' own tools report what stops them
        return 2
