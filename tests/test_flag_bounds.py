"""Every flag of the long-running commands that takes a count or a duration refuses, as the command line
is parsed, what cannot be meant: negative, zero where zero means nothing, NaN, infinity and absurdly
large values, with argparse's one-line error naming the flag, the value and the range allowed.

The flags are found in the parsers themselves (their type is a durations.BoundedInt or BoundedDuration),
and a flag of these commands that takes a plain int, float or unbounded duration fails
test_no_count_or_duration_flag_is_unbounded, so a new one is not missed."""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from fleetscope import durations
from fleetscope.cli import build_parser

COMMANDS = (("exporter",), ("simulate-fleet",), ("drift", "serve"), ("model-server",), ("demo",))
Bounds = durations.BoundedInt | durations.BoundedDuration

# At least these are bounded (more may be): a flag losing its bounds fails test_the_known_flags_are_found.
KNOWN = {
    "exporter": {"--web.max-connections", "--web.header-timeout", "--web.idle-timeout",
                 "--collector.gpu.poll-interval", "--collector.fabric.poll-interval", "--collector.nccl.poll-interval",
                 "--collector.nccl.max-communicators", "--collector.nccl.ras-hang-after",
                 "--collector.nccl.idle-timeout", "--simulate.gpus"},
    "simulate-fleet": {"--nodes", "--gpus", "--refresh-interval"},
    "drift serve": {"--storage.retention", "--evaluation.interval", "--shard.count"},
    "model-server": {"--workers", "--drift.shards"},
    "demo": {"--duration", "--nodes", "--xid-after", "--shift-after", "--slowdown-after"},
}
# Flags whose value holds a count or a duration among other things, each checked below with its own cases.
COMPOSITE = {"exporter --simulate.xid", "exporter --simulate.fault", "exporter --collector.nccl.ras-timeout-factor",
             "drift serve --shard.index",
             "model-server --simulate.slowdown"}
# Flags with a type of their own that take no count or duration a user could make absurd here.
OTHER = {
    "exporter --simulate.seed",  # any whole number seeds the simulation
    "exporter --collector.nccl.ras-address",  # HOST:PORT
    "simulate-fleet --clusters",  # names
    "simulate-fleet --fault",  # CLUSTER/HOST:AFTER:...: parsed by fleet_simulation.Fault, not bounded here
}


@functools.cache
def command_parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser(list(path))
    for word in path:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[word]
    return parser


def options(path: tuple[str, ...]) -> list[argparse.Action]:
    return [action for action in command_parser(path)._actions if action.option_strings]


def bounded_flags() -> list[tuple[tuple[str, ...], argparse.Action]]:
    return [(path, action) for path in COMMANDS for action in options(path)
            if isinstance(action.type, durations.BoundedInt | durations.BoundedDuration)]


BOUNDED = bounded_flags()
IDS = [f"{' '.join(path)} {action.option_strings[0]}" for path, action in BOUNDED]


def refused_values(bounds: Bounds) -> list[str]:
    """Negative, NaN, infinite, absurd, just outside the range, and zero where zero is not allowed."""
    values = ["-1", "nan", "inf", "NaN", "-inf", ""]
    if isinstance(bounds, durations.BoundedInt):
        values += ["1e3", "1.5", str(10**12), str(bounds.high + 1)]
        if bounds.low > 0 and not bounds.zero:
            values.append("0")
        if bounds.low > 1 or bounds.low == 1 and not bounds.zero:
            values.append(str(bounds.low - 1))
    else:
        values += ["-1s", "nans", "infs", "100y", "9" * 400 + "s", bounds.high + "1ms"]
        if bounds.low_seconds > 0 and not bounds.zero:
            values.append("0s")
        if bounds.low_seconds > 0.001:
            values.append(f"{round(bounds.low_seconds * 1000) - 1}ms")
    return list(dict.fromkeys(values))


def accepted_values(bounds: Bounds) -> dict[str, float]:
    """The ends of the range, a value in between, and zero where it is allowed: each with what it parses to."""
    if isinstance(bounds, durations.BoundedInt):
        values: dict[str, float] = {str(bounds.low): bounds.low, str(bounds.high): bounds.high,
                                    str((bounds.low + bounds.high) // 2): (bounds.low + bounds.high) // 2}
        if bounds.zero:
            values["0"] = 0
        return values
    low, high = bounds.low_seconds, bounds.high_seconds
    values = {bounds.low: low, bounds.high: high, f"{(low + high) / 2:.3f}s": round((low + high) / 2, 3)}
    if bounds.zero:
        values["0s"] = 0.0
    return values


def parse(path: tuple[str, ...], *argv: str) -> argparse.Namespace:
    return command_parser(path).parse_args(list(argv))


def refusal(path: tuple[str, ...], capsys, *argv: str) -> str:
    """The error line of a command line argparse refuses (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        parse(path, *argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"fleetscope {' '.join(path)}: error: argument "), lines
    return lines[-1]


def test_the_known_flags_are_found():
    found: dict[str, set[str]] = {}
    for path, action in BOUNDED:
        found.setdefault(" ".join(path), set()).add(action.option_strings[0])
    for command, flags in KNOWN.items():
        assert flags <= found.get(command, set()), command


def test_no_count_or_duration_flag_is_unbounded():
    """A flag taking a plain int, float or unbounded duration, or a parser of its own, must be bounded
    (durations.bounded_int, durations.bounded_duration) or listed above, with its own cases."""
    unchecked = []
    for path in COMMANDS:
        for action in options(path):
            name = f"{' '.join(path)} {action.option_strings[0]}"
            if action.type in (None, Path, str) or name in COMPOSITE | OTHER:
                continue
            if not isinstance(action.type, durations.BoundedInt | durations.BoundedDuration):
                unchecked.append(name)
    assert unchecked == []


@pytest.mark.parametrize("path, action", BOUNDED, ids=IDS)
def test_refuses_negative_zero_nan_inf_and_absurd_values(path, action, capsys):
    flag, bounds = action.option_strings[0], action.type
    for value in refused_values(bounds):
        line = refusal(path, capsys, f"{flag}={value}")
        assert line.count(flag) == 1, line
        assert f"between {bounds.low} and {bounds.high}" in line, line
        assert value.strip() in line, line
        if bounds.zero:
            assert bounds.zero in line, line


@pytest.mark.parametrize("path, action", BOUNDED, ids=IDS)
def test_the_default_and_values_in_range_parse(path, action):
    flag, bounds, dest = action.option_strings[0], action.type, action.dest
    default = getattr(parse(path), dest)
    assert default == action.default
    if default is not None:  # drift serve's flags default to None: the config file's values then stand
        assert default == 0 and bounds.zero or bounds(str(default) if isinstance(bounds, durations.BoundedInt)
                                                     else f"{default}s") == default
    for text, value in accepted_values(bounds).items():
        assert getattr(parse(path, f"{flag}={text}"), dest) == pytest.approx(value), text
        assert getattr(parse(path, flag, text), dest) == pytest.approx(value), text


@pytest.mark.parametrize("path, action", BOUNDED, ids=IDS)
def test_the_help_states_the_range(path, action):
    bounds = action.type
    assert f"{bounds.low} to {bounds.high}" in action.help


@pytest.mark.parametrize("path, flag, value, message", [
    (("exporter",), "--simulate.xid", "-1s:2:79", "is not AFTER:GPU:CODE"),
    (("exporter",), "--simulate.xid", "nan:2:79", "is not AFTER:GPU:CODE"),
    (("exporter",), "--simulate.xid", "10y:2:79", "AFTER must be a duration between 0s and 1w, not 10y"),
    (("exporter",), "--simulate.xid", "1s:-1:79", "GPU must be a whole number between 0 and 1023, not -1"),
    (("exporter",), "--simulate.xid", f"1s:{10**12}:79", "GPU must be a whole number between 0 and 1023"),
    (("exporter",), "--simulate.xid", "1s:2:0", "CODE must be a whole number between 1 and 999, not 0"),
    (("exporter",), "--simulate.xid", "1s:2:-79", "CODE must be a whole number between 1 and 999, not -79"),
    (("exporter",), "--simulate.xid", "1s:2:inf", "is not AFTER:GPU:CODE"),
    (("exporter",), "--collector.nccl.ras-timeout-factor", "-1", "'-1' is not a positive number up to 1000"),
    (("exporter",), "--collector.nccl.ras-timeout-factor", "0", "'0' is not a positive number up to 1000"),
    (("exporter",), "--collector.nccl.ras-timeout-factor", "nan", "'nan' is not a positive number up to 1000"),
    (("exporter",), "--collector.nccl.ras-timeout-factor", "inf", "'inf' is not a positive number up to 1000"),
    (("exporter",), "--collector.nccl.ras-timeout-factor", "1e12", "'1e12' is not a positive number up to 1000"),
    (("drift", "serve"), "--shard.index", "-1", "must be 'hostname' or a whole number between 0 and 1023, not -1"),
    (("drift", "serve"), "--shard.index", "1024", "between 0 and 1023, not 1024"),
    (("drift", "serve"), "--shard.index", "nan", "between 0 and 1023, not 'nan'"),
    (("drift", "serve"), "--shard.index", "inf", "between 0 and 1023, not 'inf'"),
    (("drift", "serve"), "--shard.index", str(10**12), f"between 0 and 1023, not {10**12}"),
    (("exporter",), "--simulate.fault", "pcie-degraded:-1", "INDEX must be a whole number"),
    (("exporter",), "--simulate.fault", f"pcie-degraded:{10**12}", "INDEX must be a whole number between 0 and 1023"),
    (("exporter",), "--simulate.fault", "xid-0:1", "between 1 and 999, not 0"),
    (("exporter",), "--simulate.fault", "melted:1", "unknown fault 'melted'"),
    (("model-server",), "--simulate.slowdown", "-1s:3s", "is not AFTER:DELAY"),
    (("model-server",), "--simulate.slowdown", "1s:nan", "is not AFTER:DELAY"),
    (("model-server",), "--simulate.slowdown", "10y:3s", "AFTER must be a duration between 0s and 1w, not 10y"),
    (("model-server",), "--simulate.slowdown", "1s:1h", "DELAY must be a duration between 0s and 1m, not 1h"),
])
def test_flags_holding_a_count_or_a_duration_among_other_things(path, flag, value, message, capsys):
    line = refusal(path, capsys, f"{flag}={value}")
    assert line.count(flag) == 1 and message in line, line


@pytest.mark.parametrize("path, flag, value, dest, expected", [
    (("exporter",), "--simulate.xid", "30s:2:79", "simulate_xids", [(30.0, 2, 79)]),
    (("exporter",), "--simulate.xid", "1w:1023:999", "simulate_xids", [(604800.0, 1023, 999)]),
    (("exporter",), "--simulate.fault", "nvlink-down:1023", "simulate_faults", [("nvlink-down", 1023)]),
    (("exporter",), "--simulate.fault", "xid-79", "simulate_faults", [("xid-79", 0)]),
    (("exporter",), "--collector.nccl.ras-timeout-factor", "2.5", "nccl_ras_timeout_factor", 2.5),
    (("exporter",), "--collector.nccl.ras-timeout-factor", "1000", "nccl_ras_timeout_factor", 1000.0),
    (("drift", "serve"), "--shard.index", "hostname", "shard_index", "hostname"),
    (("drift", "serve"), "--shard.index", "3", "shard_index", "3"),
    (("model-server",), "--simulate.slowdown", "90s:3s", "slowdown", (90.0, 3.0)),
])
def test_composite_flags_in_range_parse(path, flag, value, dest, expected):
    parsed = getattr(parse(path, f"{flag}={value}"), dest)
    if dest == "simulate_xids":
        parsed = [(xid.after, xid.gpu, xid.code) for xid in parsed]
    elif dest == "simulate_faults":
        parsed = [(fault.kind, fault.index) for fault in parsed]
    elif dest == "slowdown":
        parsed = (parsed.after, parsed.delay)
    assert parsed == expected


def test_the_factories_refuse_bounds_that_cannot_hold():
    for low, high in ((-1, 5), (5, 1)):
        with pytest.raises(ValueError):
            durations.bounded_int(low, high)
    with pytest.raises(ValueError):
        durations.bounded_int(0, 5, zero="disables")  # 0 is in the range already
    with pytest.raises(ValueError):
        durations.bounded_duration("1h", "1m")
    with pytest.raises(ValueError):
        durations.bounded_duration("soon", "1m")


def test_the_exporter_refuses_a_negative_count_at_start():
    fleetscope = Path(sys.executable).with_name("fleetscope")
    result = subprocess.run([str(fleetscope), "exporter", "--collector.nccl.max-communicators=-1"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("argument --collector.nccl.max-communicators") == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "fleetscope exporter: error: argument --collector.nccl.max-communicators: must be a whole number between 1 "
        "and 100000, not -1")
