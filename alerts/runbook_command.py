"""`fleetscope runbook NAME`: prints an alert's runbook, shipped in the package, where on-call has fleetscope and
no network (the default runbook_url, alerts/runbooks/<NAME>.md, names the same file)."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from fleetscope.log import UserError

DESCRIPTION = "Print an alert's runbook (what it means, its impact, diagnosis, mitigation and escalation)."
RUNBOOKS = Path(__file__).resolve().parent / "runbooks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("alertname", nargs="?", help="the alert, e.g. FleetscopeGPUXidError; without it, every "
                                                     "alert that has a runbook is listed")


def run(args: argparse.Namespace) -> int:
    names = sorted(path.stem for path in RUNBOOKS.glob("*.md"))
    if not args.alertname:
        print("\n".join(names))
        return 0
    name = args.alertname.removesuffix(".md").rpartition("/")[2]  # the runbook_url itself is taken too
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        raise UserError(f"no runbook for {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                      "; `fleetscope runbook` lists them"))
    print((RUNBOOKS / f"{name}.md").read_text(), end="")
    return 0
