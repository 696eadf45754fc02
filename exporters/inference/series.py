"""What one (model, operation) series has seen: histograms, outcome counts, requests in flight.

A finished request is one tuple appended to a list, which needs no lock (list.append is atomic
under the GIL). The tuples are folded into the histograms in batches, with numpy, when a scrape
or an export asks for a snapshot or when DRAIN_AT of them are waiting, so memory stays bounded
with nobody scraping. Per request this costs well under one prometheus_client observe; see
benchmarks/inference_sdk.py.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fleetscope.catalog import cumulative_buckets
from fleetscope.exporters.catalog import inference as spec

OTHER = "_other"
# Error classes per series past which new ones count as _OTHER (OpenTelemetry's overflow value).
MAX_ERROR_TYPES = 32
ERROR_OVERFLOW = "_OTHER"
DRAIN_AT = 2048

# The fields of a finished request, as Series.finished receives them.
OUTCOME, ERROR_TYPE, DURATION, QUEUE, TTFT, TPOT, INPUT_TOKENS, OUTPUT_TOKENS, EXEMPLAR = range(9)
# (outcome, error_type, duration, queue, ttft, tpot, input, output, exemplar); NaN where absent
Finished = tuple[str, str, float, float, float, float, float, float, "tuple[int, int, float] | None"]


@dataclass(frozen=True)
class Exemplar:
    trace_id: int
    span_id: int
    value: float
    timestamp: float


class Histogram:
    """Per-bucket (not cumulative) counts, their sum, and the latest exemplar of each bucket."""

    __slots__ = ("bounds", "counts", "total", "exemplars", "_edges")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(float(bound) for bound in bounds)
        self._edges = np.array(self.bounds)
        self.counts = np.zeros(len(self.bounds) + 1, dtype=np.int64)
        self.total = 0.0
        self.exemplars: list[Exemplar | None] = [None] * (len(self.bounds) + 1)

    def add(self, column: Sequence[float] | np.ndarray,
            exemplars: Sequence[tuple[int, int, float] | None] | None) -> None:
        values = np.asarray(column, dtype=np.float64)
        present = ~np.isnan(values)
        # side="left": a value equal to a bound belongs to that bound's bucket (le is "less or equal").
        index = np.searchsorted(self._edges, values, side="left")
        self.counts += np.bincount(index[present], minlength=len(self.counts))
        self.total += float(values[present].sum())
        if exemplars is None:
            return
        rows = np.flatnonzero(present & np.fromiter((e is not None for e in exemplars), bool, len(exemplars)))
        if rows.size:
            # The latest exemplar of each bucket: first occurrence in the reversed rows.
            newest_first = rows[::-1]
            found, first = np.unique(index[newest_first], return_index=True)
            for bucket, row in zip(found.tolist(), newest_first[first].tolist(), strict=True):
                trace_id, span_id, timestamp = exemplars[row]
                self.exemplars[bucket] = Exemplar(trace_id, span_id, float(values[row]), timestamp)

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.bounds, tuple(self.counts.tolist()), self.total, tuple(self.exemplars))


def merged(snapshots: Sequence[HistogramSnapshot]) -> HistogramSnapshot:
    """One histogram of several with the same bounds; each bucket keeps the latest exemplar."""
    first = snapshots[0]
    counts = tuple(map(sum, zip(*(s.counts for s in snapshots), strict=True)))
    exemplars = tuple(max((e for e in bucket if e is not None), key=lambda e: e.timestamp, default=None)
                      for bucket in zip(*(s.exemplars for s in snapshots), strict=True))
    return HistogramSnapshot(first.bounds, counts, sum(s.total for s in snapshots), exemplars)


@dataclass(frozen=True)
class HistogramSnapshot:
    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, the last one above every bound
    total: float
    exemplars: tuple[Exemplar | None, ...]

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        return cumulative_buckets(self.bounds + (float("inf"),), self.counts)


@dataclass(frozen=True)
class SeriesSnapshot:
    model: str
    operation: str
    durations: dict[tuple[str, str], HistogramSnapshot]  # by (outcome, error_type), as requests are counted
    queue: HistogramSnapshot
    time_to_first_token: HistogramSnapshot
    time_per_output_token: HistogramSnapshot
    input_tokens: HistogramSnapshot
    output_tokens: HistogramSnapshot
    requests: dict[tuple[str, str], int]
    in_flight: int

    @property
    def duration(self) -> HistogramSnapshot:
        """Every request's duration, whatever its outcome (merged on demand: the outputs serve them by outcome)."""
        return merged(list(self.durations.values()))


SUCCESS = ("success", "")


class Series:
    __slots__ = ("model", "operation", "_pending", "_lock", "_started", "_finished", "_requests", "_histograms",
                 "_durations")

    def __init__(self, model: str, operation: str):
        self.model = model
        self.operation = operation
        self._pending: list[Finished] = []
        self._lock = threading.Lock()  # held while folding pending requests in, and while reading
        self._started = itertools.count()
        self._finished = 0
        self._requests: Counter[tuple[str, str]] = Counter()
        # Request durations by outcome, so that failed and successful latencies do not mix (OpenTelemetry's
        # error.type on gen_ai.server.request.duration); successes are served from the start.
        self._durations = {SUCCESS: Histogram(spec.REQUEST_DURATION.buckets)}
        self._histograms = {QUEUE: Histogram(spec.QUEUE_DURATION.buckets),
                            TTFT: Histogram(spec.TIME_TO_FIRST_TOKEN.buckets),
                            TPOT: Histogram(spec.TIME_PER_OUTPUT_TOKEN.buckets),
                            INPUT_TOKENS: Histogram(spec.REQUEST_TOKENS.buckets),
                            OUTPUT_TOKENS: Histogram(spec.REQUEST_TOKENS.buckets)}

    def started(self) -> None:
        next(self._started)  # atomic under the GIL

    def finished(self, request: Finished) -> None:
        pending = self._pending
        pending.append(request)
        if len(pending) >= DRAIN_AT and self._lock.acquire(blocking=False):
            try:
                self._drain()
            finally:
                self._lock.release()

    def snapshot(self) -> SeriesSnapshot:
        with self._lock:
            self._drain()
            started = int(repr(self._started)[len("count("):-1])  # the value next() would give next
            h = self._histograms
            durations = {key: histogram.snapshot() for key, histogram in self._durations.items()}
            return SeriesSnapshot(self.model, self.operation, durations, h[QUEUE].snapshot(),
                                  h[TTFT].snapshot(), h[TPOT].snapshot(), h[INPUT_TOKENS].snapshot(),
                                  h[OUTPUT_TOKENS].snapshot(), dict(self._requests),
                                  max(0, started - self._finished - len(self._pending)))

    def _drain(self) -> None:
        pending = self._pending
        count = len(pending)
        if not count:
            return
        # Only appends happen elsewhere, so the first `count` entries stay put while we take them.
        batch = pending[:count]
        del pending[:count]
        columns = list(zip(*batch, strict=True))
        keys = list(zip(columns[OUTCOME], columns[ERROR_TYPE], strict=True))
        bounded = {}
        for key, seen in Counter(keys).items():
            bounded[key] = self._bounded(key)
            self._requests[bounded[key]] += seen
        exemplars = columns[EXEMPLAR] if any(e is not None for e in columns[EXEMPLAR]) else None
        self._add_durations(keys, bounded, columns[DURATION], exemplars)
        for field, histogram in self._histograms.items():
            histogram.add(columns[field], exemplars if field in (QUEUE, TTFT, TPOT) else None)
        self._finished += count

    def _add_durations(self, keys: list[tuple[str, str]], bounded: dict[tuple[str, str], tuple[str, str]],
                       durations: Sequence[float], exemplars: Sequence[tuple[int, int, float] | None] | None) -> None:
        targets = sorted(set(bounded.values()))
        for target in targets:
            if target not in self._durations:
                self._durations[target] = Histogram(spec.REQUEST_DURATION.buckets)
        if len(targets) == 1:  # the usual batch: every request the same outcome
            self._durations[targets[0]].add(durations, exemplars)
            return
        code = {target: i for i, target in enumerate(targets)}
        codes = np.fromiter((code[bounded[key]] for key in keys), np.int64, len(keys))
        values = np.asarray(durations, dtype=np.float64)
        for target, i in code.items():
            rows = np.flatnonzero(codes == i)
            self._durations[target].add(values[rows],
                                        None if exemplars is None else [exemplars[r] for r in rows.tolist()])

    def _bounded(self, key: tuple[str, str]) -> tuple[str, str]:
        outcome, error_type = key
        if error_type and key not in self._requests:
            known = {error for _, error in self._requests if error}
            if len(known) >= MAX_ERROR_TYPES and error_type not in known:
                return outcome, ERROR_OVERFLOW
        return key
