"""Durations written the way Prometheus writes them: 500ms, 15s, 1m30s, 2h; and the argparse types of
the flags that take a duration or a count, each bounded, so that a typo is refused at start-up."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any, ClassVar

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


def written(seconds: float) -> str:
    """A duration as Prometheus writes it, largest units first: 15s, 1m30s, 100ms, 1h; 0s for zero."""
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{seconds!r} is not a duration")
    milliseconds = round(seconds * 1000)
    parts = []
    for unit in ("y", "w", "d", "h", "m", "s", "ms"):
        size = round(_UNITS[unit] * 1000)
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def argument(text: str) -> float:
    """argparse type for a duration flag, unbounded: prefer bounded_duration for a new flag."""
    try:
        return parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class _Bounded:
    """What BoundedInt and BoundedDuration share: a value from `low` to `high` (as written, e.g. 100 or "1h"),
    or zero where `zero` says what it means. argparse puts the flag in front of the error: `argument
    --web.max-connections: must be ...`."""

    low: Any
    high: Any
    zero: str
    ZERO: ClassVar[str]  # zero as written
    WHAT: ClassVar[str]  # what a value is, in the error

    def _read(self, text: str) -> float:
        """The value of `text`; argparse.ArgumentTypeError where it is not one at all."""
        raise NotImplementedError

    def _amount(self, written: Any) -> float:
        return float(written)

    def __post_init__(self) -> None:
        low, high = self._amount(self.low), self._amount(self.high)
        if not 0 <= low <= high or (self.zero and low == 0):
            raise ValueError(f"bad bounds {self}")

    @property
    def range(self) -> str:
        """The values allowed, for a flag's help: '1 to 1024', '0s (reads at every scrape) or 100ms to 1h'."""
        return f"{self._zero()}{self.low} to {self.high}"

    def __call__(self, text: str) -> Any:
        value = self._read(text)
        if value == 0 and self.zero or self._amount(self.low) <= value <= self._amount(self.high):
            return value
        raise self._error(text.strip())

    def _zero(self) -> str:
        return f"{self.ZERO} ({self.zero}) or " if self.zero else ""

    def _error(self, shown: str) -> argparse.ArgumentTypeError:
        return argparse.ArgumentTypeError(f"must be {self._zero()}{self.WHAT} between {self.low} and {self.high}, "
                                          f"not {shown}")


@dataclass(frozen=True)
class BoundedInt(_Bounded):
    """argparse type: a whole number from `low` to `high`, or 0 where `zero` says what 0 means."""

    low: int
    high: int
    zero: str = ""  # what 0 means, where 0 is allowed below low ("disables"); "" where it is not
    ZERO: ClassVar[str] = "0"
    WHAT: ClassVar[str] = "a whole number"

    def _read(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise self._error(repr(text)) from None


@dataclass(frozen=True)
class BoundedDuration(_Bounded):
    """argparse type: seconds in a duration from `low` to `high` (written as durations, e.g. "100ms" and
    "1h"), or 0s where `zero` says what 0s means. Returns a float, as `argument` does."""

    low: str
    high: str
    zero: str = ""  # what 0s means, where it is allowed below low ("reads at every scrape"); "" where not
    ZERO: ClassVar[str] = "0s"
    WHAT: ClassVar[str] = "a duration"

    @property
    def low_seconds(self) -> float:
        return parse(self.low)

    @property
    def high_seconds(self) -> float:
        return parse(self.high)

    def _amount(self, written: Any) -> float:
        return parse(written)

    def _read(self, text: str) -> float:
        try:
            return parse(text)
        except ValueError:
            raise self._error(f"{text.strip()!r}: invalid duration, {_FORMAT}") from None


def bounded_int(low: int, high: int, zero: str = "") -> BoundedInt:
    """argparse type for a count flag: a whole number from low to high; zero, where given, says what 0 means
    (then 0 is allowed too), e.g. bounded_int(1, 100_000) or bounded_int(1, 64, zero="disables")."""
    return BoundedInt(low, high, zero)


def bounded_duration(low: str, high: str, zero: str = "") -> BoundedDuration:
    """argparse type for a duration flag: from low to high, e.g. bounded_duration("1s", "1h"); zero, where
    given, says what 0s means (then 0s is allowed too)."""
    return BoundedDuration(low, high, zero)
