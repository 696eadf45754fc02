"""How every command's --help shows a flag's default: once, as it would be written on the command line
(15s, not 15.0), and not at all where there is none to show."""

from __future__ import annotations

import argparse

from fleetscope import durations


class HelpFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        help_ = action.help or ""
        shown = _shown_default(action)
        if shown is None or "default" in help_.lower() or action.default is argparse.SUPPRESS:
            return help_
        return f"{help_} (default: {shown.replace('%', '%%')})"


def _shown_default(action: argparse.Action) -> str | None:
    default = action.default
    if isinstance(action, argparse.BooleanOptionalAction):
        return "enabled" if default else "disabled"
    if not action.option_strings or default is None or default is False or default == "" or \
            isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction, argparse._HelpAction)):
        return None
    if isinstance(action.type, durations.BoundedDuration) or action.type is durations.argument:
        return durations.written(float(default))
    if isinstance(default, (list, tuple)):
        return ", ".join(str(value) for value in default) if default else None
    return str(default)
