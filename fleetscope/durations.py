"""Durations written the way Prometheus writes them: 500ms, 15s, 1m30s, 2h; and the argparse types of
the flags that take a duration or a count, each bounded, so that a typo is refused at start-up."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_FORMAT = "use a number and a unit (ms, s, m, h, d, w, y), e.g. 15s or 1m30s"


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
        raise ValueError(f"invalid duration {text!r}: {_FORMAT}")
    return total


def argument(text: str) -> float:
    """argparse type for a duration flag, unbounded: prefer bounded_duration for a new flag."""
    try:
        return parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class BoundedInt:
    """argparse type: a whole number from `low` to `high`, or 0 where `zero` says what 0 means.
    argparse puts the flag in front of the error: `argument --web.max-connections: must be ...`."""

    low: int
    high: int
    zero: str = ""  # what 0 means, where 0 is allowed below low ("disables"); "" where it is not

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high or (self.zero and self.low == 0):
            raise ValueError(f"bad bounds {self}")

    @property
    def range(self) -> str:
        """The values allowed, for a flag's help: '1 to 1024', '0 (disables) or 1 to 1024'."""
        return f"{self._zero()}{self.low} to {self.high}"

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise self._error(repr(text)) from None
        if value == 0 and self.zero or self.low <= value <= self.high:
            return value
        raise self._error(str(value))

    def _zero(self) -> str:
        return f"0 ({self.zero}) or " if self.zero else ""

    def _error(self, shown: str) -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"must be {self._zero()}a whole number between {self.low} and "
                                          f"{self.high}, not {shown}")


@dataclass(frozen=True)
class BoundedDuration:
    """argparse type: seconds in a duration from `low` to `high` (written as durations, e.g. "100ms" and
    "1h"), or 0s where `zero` says what 0s means. Returns a float, as `argument` does."""

    low: str
    high: str
    zero: str = ""  # what 0s means, where it is allowed below low ("reads at every scrape"); "" where not

    def __post_init__(self) -> None:
        if not 0 <= self.low_seconds <= self.high_seconds or (self.zero and self.low_seconds == 0):
            raise ValueError(f"bad bounds {self}")

    @property
    def low_seconds(self) -> float:
        return parse(self.low)

    @property
    def high_seconds(self) -> float:
        return parse(self.high)

    @property
    def range(self) -> str:
        """The values allowed, for a flag's help: '1s to 1h', '0s (reads at every scrape) or 100ms to 1h'."""
        return f"{self._zero()}{self.low} to {self.high}"

    def __call__(self, text: str) -> float:
        try:
            seconds = parse(text)
        except ValueError:
            raise self._error(f"{text.strip()!r}: invalid duration, {_FORMAT}") from None
        if seconds == 0 and self.zero or self.low_seconds <= seconds <= self.high_seconds:
            return seconds
        raise self._error(text.strip())

    def _zero(self) -> str:
        return f"0s ({self.zero}) or " if self.zero else ""

    def _error(self, shown: str) -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"must be {self._zero()}a duration between {self.low} and {self.high}, "
                                          f"not {shown}")


def bounded_int(low: int, high: int, zero: str = "") -> BoundedInt:
    """argparse type for a count flag: a whole number from low to high; zero, where given, says what 0 means
    (then 0 is allowed too), e.g. bounded_int(1, 100_000) or bounded_int(1, 64, zero="disables")."""
    return BoundedInt(low, high, zero)


def bounded_duration(low: str, high: str, zero: str = "") -> BoundedDuration:
    """argparse type for a duration flag: from low to high, e.g. bounded_duration("1s", "1h"); zero, where
    given, says what 0s means (then 0s is allowed too)."""
    return BoundedDuration(low, high, zero)
