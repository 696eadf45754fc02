"""Durations written the way Prometheus writes them: 500ms, 15s, 1m30s, 2h."""

from __future__ import annotations

import argparse
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse(text: str) -> float:
    """Seconds in a Prometheus duration; ValueError saying what is accepted otherwise."""
    text = text.strip()
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d, w, y), "
                         "e.g. 15s or 1m30s")
    return total


def argument(text: str) -> float:
    """argparse type for a duration flag."""
    try:
        return parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
