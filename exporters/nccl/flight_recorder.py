"""PyTorch Flight Recorder dumps: each rank's last collectives, and the first one where the ranks diverge.

With TORCH_FR_BUFFER_SIZE=N, every process group of a PyTorch job (NCCL and, as of torch 2.13, gloo too) keeps a ring
buffer of its last N collectives. NCCL's watchdog writes it on a timeout to TORCH_FR_DUMP_TEMP_FILE<rank>; with gloo
nothing writes it on a timeout (torch 2.13), and the job writes it itself, for example from its exception handler:

    open(f"/dumps/fr_rank_{rank}", "wb").write(torch._C._distributed_c10d._dump_fr_trace())     # pickle
    open(f"/dumps/fr_rank_{rank}.json", "wb").write(torch._C._distributed_c10d._dump_fr_trace_json())

The format is torch 2.13's (its module torch.distributed.flight_recorder.components.loader reads it, .builder and
.types match the entries): a mapping with `version`, `pg_config` ({pg name: {"name", "desc", "ranks": "[0, 1]"}})
and `entries`, one per collective with `process_group` ([name, desc]), `collective_seq_id` (numbered per process group),
`profiling_name` ("gloo:all_reduce", "nccl:send 0->1"), `input_sizes`, `output_sizes`, `input_dtypes`,
`output_dtypes`, `state`, `is_p2p` and `time_created_ns`. The dump does not say whose it is: the rank is the digits the
file name ends with, as torch's loader takes it.

This reader never imports torch (a monitoring host has none). It reads the pickle with an unpickler that refuses
every class and function, so a hostile file can build nothing but dicts, lists, tuples, strings and numbers, and it
checks sizes and every field it uses before using it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAX_DUMP_BYTES = 256 * 1024 * 1024  # a dump of 20,000 entries with stacks is a few tens of MiB
MAX_DUMPS = 4096
_RANK_IN_NAME = re.compile(r"(\d+)(?:\.json|\.pickle|\.pkl)?$")
# torch's types.py: which sizes a collective's ranks must agree on (all_to_all and scatter inputs, all_to_all and
# gather outputs may differ).
_INPUTS_MAY_DIFFER = {"all_to_all", "scatter"}
_OUTPUTS_MAY_DIFFER = {"all_to_all", "gather"}


class FlightRecorderError(ValueError):
    """A dump that cannot be read: the message names the file and what was wrong."""


@dataclass(frozen=True)
class Entry:
    """One collective as a rank recorded it."""

    process_group: str
    description: str  # the process group's, as the job named it (default_pg, ...)
    sequence: int  # collective_seq_id: numbered per process group, the same on every rank for the same collective
    operation: str  # profiling_name without the backend: all_reduce, broadcast, send 0->1
    input_sizes: tuple
    output_sizes: tuple
    dtypes: tuple
    state: str
    p2p: bool
    created_ns: int

    @property
    def kind(self) -> str:
        return self.operation.split(" ")[0]


@dataclass(frozen=True)
class Dump:
    rank: int
    path: str
    version: str
    entries: tuple[Entry, ...]
    groups: dict[str, tuple[str, tuple[int, ...]]]  # pg name: (desc, member ranks)


@dataclass(frozen=True)
class Divergence:
    """The first collective of a process group on which its ranks disagree."""

    process_group: str
    description: str
    sequence: int
    reason: str  # missing (some ranks never issued it), operation, sizes or dtypes
    by_rank: dict[int, str]  # what each member rank recorded for it ("-" for nothing)
    missing_ranks: tuple[int, ...] = ()
    created_ns: int = 0  # when the first rank that recorded it did

    def to_json(self) -> dict:
        return {"process_group": self.process_group, "description": self.description, "sequence": self.sequence,
                "reason": self.reason, "missing_ranks": list(self.missing_ranks),
                "by_rank": {str(rank): text for rank, text in sorted(self.by_rank.items())}}

    def sentence(self) -> str:
        group = f"process group {self.process_group} ({self.description})" if self.description else \
            f"process group {self.process_group}"
        if self.reason == "missing":
            waiting = ", ".join(str(rank) for rank in self.missing_ranks)
            return (f"{group}: collective #{self.sequence} was issued by some ranks but not by rank(s) {waiting}, "
                    "which the others wait on")
        return f"{group}: ranks disagree on the {self.reason} of collective #{self.sequence}"


@dataclass(frozen=True)
class Report:
    dumps: tuple[Dump, ...]
    divergences: tuple[Divergence, ...]  # each group's first, earliest first
    ranks_without_dump: tuple[int, ...] = field(default=())

    @property
    def first(self) -> Divergence | None:
        return self.divergences[0] if self.divergences else None


# --- reading ---------------------------------------------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain containers and scalars only: any class or function a pickle names is refused."""

    def find_class(self, module: str, name: str) -> object:
        raise FlightRecorderError(f"the pickle names {module}.{name}; a Flight Recorder dump holds only plain data")


def rank_of(path: str | os.PathLike[str]) -> int:
    """The rank a dump belongs to: the digits its file name ends with (before .json or .pickle), as torch's
    loader reads it (TORCH_FR_DUMP_TEMP_FILE is a prefix the rank is appended to)."""
    match = _RANK_IN_NAME.search(Path(path).name)
    if not match:
        raise FlightRecorderError(f"{path}: the file name does not end with the rank (TORCH_FR_DUMP_TEMP_FILE<rank>)")
    return int(match.group(1))


def read_dump(path: str | os.PathLike[str], rank: int | None = None) -> Dump:
    """One rank's dump, pickle or JSON, checked in full."""
    where = str(path)
    size = os.stat(path).st_size
    if size > MAX_DUMP_BYTES:
        raise FlightRecorderError(f"{where}: {size} bytes, more than the {MAX_DUMP_BYTES} a dump may have")
    data = Path(path).read_bytes()
    return parse_dump(data, where, rank_of(path) if rank is None else rank)


def parse_dump(data: bytes, where: str, rank: int) -> Dump:
    document = _decode(data, where)
    if not isinstance(document, dict):
        raise FlightRecorderError(f"{where}: expected a mapping with version, pg_config and entries")
    for key in ("version", "entries"):
        if key not in document:
            raise FlightRecorderError(f"{where}: no {key!r}; is this a Flight Recorder dump?")
    version = document["version"]
    if not isinstance(version, str):
        raise FlightRecorderError(f"{where}: version is {type(version).__name__}, expected a string")
    entries = document["entries"]
    if not isinstance(entries, list):
        raise FlightRecorderError(f"{where}: entries is {type(entries).__name__}, expected a list")
    groups = _groups(document.get("pg_config", {}), where)
    return Dump(rank, where, version, tuple(_entry(entry, f"{where}: entries[{index}]")
                                            for index, entry in enumerate(entries)), groups)


def _decode(data: bytes, where: str) -> object:
    if data[:1] in (b"{", b"[") or data[:1].isspace():
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as error:
            raise FlightRecorderError(f"{where}: not valid JSON ({error})") from None
    if data[:1] != b"\x80":
        raise FlightRecorderError(f"{where}: neither a pickle nor JSON; is this a Flight Recorder dump?")
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except FlightRecorderError as error:
        raise FlightRecorderError(f"{where}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            RecursionError, MemoryError) as error:
        raise FlightRecorderError(f"{where}: not a readable pickle ({type(error).__name__}: {error})") from None


def _groups(config: object, where: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    if not isinstance(config, dict):
        raise FlightRecorderError(f"{where}: pg_config is {type(config).__name__}, expected a mapping")
    groups = {}
    for name, group in config.items():
        if not isinstance(group, dict) or not isinstance(group.get("ranks"), str):
            raise FlightRecorderError(f"{where}: pg_config[{name!r}] has no ranks string")
        try:
            ranks = json.loads(group["ranks"])  # "[0, 1]", as torch writes it
        except ValueError:
            raise FlightRecorderError(f"{where}: pg_config[{name!r}].ranks is not a list: {group['ranks'][:80]!r}")\
                from None
        if not isinstance(ranks, list) or not all(isinstance(rank, int) and rank >= 0 for rank in ranks):
            raise FlightRecorderError(f"{where}: pg_config[{name!r}].ranks is not a list of ranks")
        groups[str(name)] = (str(group.get("desc", "")), tuple(ranks))
    return groups


def _sizes(value: object, where: str) -> tuple:
    if not isinstance(value, list) or not all(
            isinstance(shape, list) and all(isinstance(n, int) for n in shape) for shape in value):
        raise FlightRecorderError(f"{where}: expected a list of shapes (lists of integers)")
    return tuple(tuple(shape) for shape in value)


def _entry(entry: object, where: str) -> Entry:
    if not isinstance(entry, dict):
        raise FlightRecorderError(f"{where}: expected a mapping")
    group = entry.get("process_group")
    if not isinstance(group, (list, tuple)) or len(group) != 2 or not all(isinstance(part, str) for part in group):
        raise FlightRecorderError(f"{where}: process_group should be [name, description]")
    sequence = entry.get("collective_seq_id")
    if not isinstance(sequence, int) or isinstance(sequence, bool):
        raise FlightRecorderError(f"{where}: collective_seq_id should be an integer")
    name = entry.get("profiling_name")
    if not isinstance(name, str) or ":" not in name:
        raise FlightRecorderError(f"{where}: profiling_name should read backend:operation, got {name!r}")
    dtypes = entry.get("input_dtypes", []), entry.get("output_dtypes", [])
    if not all(isinstance(d, list) and all(isinstance(t, str) for t in d) for d in dtypes):
        raise FlightRecorderError(f"{where}: input_dtypes and output_dtypes should be lists of names")
    created = entry.get("time_created_ns", 0)
    return Entry(process_group=group[0], description=group[1], sequence=sequence, operation=name.split(":", 1)[1],
                 input_sizes=_sizes(entry.get("input_sizes", []), f"{where}.input_sizes"),
                 output_sizes=_sizes(entry.get("output_sizes", []), f"{where}.output_sizes"),
                 dtypes=(tuple(dtypes[0]), tuple(dtypes[1])), state=str(entry.get("state", "")),
                 p2p=bool(entry.get("is_p2p", False)), created_ns=created if isinstance(created, int) else 0)


def read_dir(directory: str | os.PathLike[str], prefix: str = "") -> list[Dump]:
    """Every dump in a directory whose name starts with prefix and ends with a rank; one per rank."""
    paths = sorted(path for path in Path(directory).iterdir()
                   if path.is_file() and path.name.startswith(prefix) and _RANK_IN_NAME.search(path.name))
    if not paths:
        raise FlightRecorderError(f"{directory}: no dump files (names ending with the rank) starting with "
                                  f"{prefix!r}")
    if len(paths) > MAX_DUMPS:
        raise FlightRecorderError(f"{directory}: {len(paths)} dumps, more than the {MAX_DUMPS} read at once")
    dumps: dict[int, Dump] = {}
    for path in paths:
        dump = read_dump(path)
        if dump.rank in dumps:
            raise FlightRecorderError(f"{path} and {dumps[dump.rank].path} are both rank {dump.rank}'s; pass "
                                      "--prefix to choose one set")
        dumps[dump.rank] = dump
    return [dumps[rank] for rank in sorted(dumps)]


# --- comparing -------------------------------------------------------------------------------------------------------


def _describe(entries: Sequence[Entry]) -> str:
    if not entries:
        return "-"
    return " + ".join(f"{e.operation} in {list(map(list, e.input_sizes))} out {list(map(list, e.output_sizes))} "
                      f"({e.state})" for e in entries)


def _disagreement(recorded: dict[int, tuple[Entry, ...]]) -> str:
    """Which part of a collective the ranks that recorded it disagree on, torch's matching rules: the operation, then
    the sizes a collective's ranks must share, then the dtypes; "" where they agree."""
    first, *others = recorded.values()
    if any([e.operation for e in entries] != [e.operation for e in first] for entries in others):
        return "operation"
    for entries in others:
        for mine, theirs in zip(first, entries, strict=True):
            if mine.kind not in _INPUTS_MAY_DIFFER and mine.input_sizes != theirs.input_sizes:
                return "sizes"
            if mine.kind not in _OUTPUTS_MAY_DIFFER and mine.output_sizes != theirs.output_sizes:
                return "sizes"
            if mine.dtypes != theirs.dtypes:
                return "dtypes"
    return ""


def _members(dumps: Sequence[Dump], group: str) -> tuple[int, ...]:
    """The group's ranks from pg_config; where it does not name the group (torch 2.13's gloo writes it under an
    empty name), the ranks that recorded the group's collectives."""
    for dump in dumps:
        if group in dump.groups:
            return dump.groups[group][1]
    return tuple(dump.rank for dump in dumps if any(e.process_group == group for e in dump.entries))


def first_divergences(dumps: Sequence[Dump]) -> Report:
    """Each process group's first collective on which its ranks diverge (one issued by some ranks and not others,
    or with another operation, sizes or dtypes), earliest first. Point-to-point operations are left out: their
    sequence numbers are per pair of ranks. Only the collectives every rank's ring buffer still holds are compared."""
    ranks_dumped = {dump.rank for dump in dumps}
    by_group: dict[str, dict[int, dict[int, list[Entry]]]] = {}
    for dump in dumps:
        for entry in dump.entries:
            if not entry.p2p:
                by_group.setdefault(entry.process_group, {}).setdefault(dump.rank, {}).setdefault(
                    entry.sequence, []).append(entry)
    divergences: list[Divergence] = []
    without: set[int] = set()
    for group, by_rank in by_group.items():
        description = next(e.description for held in by_rank.values() for entries in held.values() for e in entries)
        members = _members(dumps, group)
        present = [rank for rank in members if rank in ranks_dumped]
        without.update(rank for rank in members if rank not in ranks_dumped)
        if len(present) < 2:
            continue
        sequences = {rank: by_rank.get(rank, {}) for rank in present}
        # A rank's buffer holds its last N entries: compare from the oldest sequence every rank still holds.
        oldest = max((min(held) if held else 0) for held in sequences.values())
        newest = max((max(held) if held else 0) for held in sequences.values())
        for sequence in range(oldest, newest + 1):
            recorded = {rank: tuple(held[sequence]) for rank, held in sequences.items() if sequence in held}
            if not recorded:
                continue
            missing = tuple(rank for rank in present if rank not in recorded)
            reason = "missing" if missing else _disagreement(recorded)
            if reason:
                divergences.append(Divergence(
                    group, description, sequence, reason,
                    {rank: _describe(recorded.get(rank, ())) for rank in present}, missing,
                    min(e.created_ns for entries in recorded.values() for e in entries)))
                break
    divergences.sort(key=lambda d: (d.created_ns, d.process_group))
    return Report(tuple(dumps), tuple(divergences), tuple(sorted(without)))


# --- the command -----------------------------------------------------------------------------------------------------

DESCRIPTION = ("Read the PyTorch Flight Recorder dumps of a job's ranks (TORCH_FR_BUFFER_SIZE; pickle or JSON, one "
               "file per rank, the name ending with the rank) and name the first collective where the ranks "
               "diverge: one some ranks never issued (the ranks the others wait on), or with another operation, "
               "sizes or dtypes. Exits 1 where they diverge, 0 where they agree, 2 on a dump it cannot read.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the directory holding the dumps")
    parser.add_argument("--prefix", default="", help="read only the files whose names start with this (the "
                                                     "TORCH_FR_DUMP_TEMP_FILE prefix's file name)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def report_json(report: Report) -> dict:
    return {"ranks": [dump.rank for dump in report.dumps], "ranks_without_dump": list(report.ranks_without_dump),
            "first": report.first.to_json() if report.first else None,
            "divergences": [divergence.to_json() for divergence in report.divergences]}


def report_text(report: Report) -> Iterable[str]:
    yield f"read dumps of rank(s) {', '.join(str(dump.rank) for dump in report.dumps)}"
    if len(report.dumps) < 2:
        yield "one rank's dump alone: nothing to compare it with"
    if report.ranks_without_dump:
        yield f"no dump from rank(s) {', '.join(map(str, report.ranks_without_dump))}: they are not compared"
    if not report.divergences and len(report.dumps) > 1:
        yield "the ranks agree on every collective their buffers hold"
    for index, divergence in enumerate(report.divergences):
        yield ("first divergence: " if index == 0 else "also: ") + divergence.sentence()
        for rank, text in sorted(divergence.by_rank.items()):
            yield f"  rank {rank}: {text}"


def run(args: argparse.Namespace) -> int:
    try:
        report = first_divergences(read_dir(args.directory, args.prefix))
    except (FlightRecorderError, OSError) as error:
        sys.stderr.write(f"fleetscope flight-recorder: {error}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(report_json(report), indent=2) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in report_text(report)))
    return 1 if report.divergences else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetscope.exporters.nccl.flight_recorder",
                                     description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
