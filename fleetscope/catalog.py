"""How producers declare their metrics: one MetricSpec per metric, in a catalog module.

Consumers (dashboards, alerts) import the specs instead of spelling metric names, and a
test checks that every spec follows the naming conventions and really appears on a page.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

_NAME = re.compile(r"^fleetscope_[a-z][a-z0-9_]*$")
_LABEL = re.compile(r"^[a-z_][a-z0-9_]*$")
BASE_UNITS = ("seconds", "bytes", "watts", "celsius", "joules", "hertz", "ratio")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str  # "gauge", "counter" or "histogram"
    help: str
    labels: tuple[str, ...] = ()
    # Labels some series carry and others do not (MIG instance, Kubernetes pod).
    optional_labels: tuple[str, ...] = ()
    # A histogram's bucket upper bounds, increasing and finite (+Inf is implied): declared with the metric, so
    # that the producer observes into them and consumers (rules that interpolate quantiles) read the same ones.
    buckets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        problems = convention_problems(self)
        if problems:
            raise ValueError(f"{self.name}: " + "; ".join(problems))

    def family(self) -> Family:
        return Family(self)

    def select(self, *matchers: str, suffix: str = "") -> str:
        """A PromQL selector: GPU_UP.select('job="x"') -> fleetscope_gpu_up{job="x"}; empty matchers are skipped."""
        joined = ",".join(matcher for matcher in matchers if matcher)
        return f"{self.name}{suffix}{{{joined}}}" if joined else self.name + suffix


def convention_problems(spec: MetricSpec) -> list[str]:
    problems = []
    if not _NAME.match(spec.name):
        problems.append("name must match fleetscope_[a-z0-9_]+")
    if spec.type not in ("gauge", "counter", "histogram"):
        problems.append(f"type {spec.type!r} is not gauge, counter or histogram")
    if spec.type == "counter" and not spec.name.endswith("_total"):
        problems.append("counters end in _total")
    if spec.type == "gauge" and spec.name.endswith("_total"):
        problems.append("only counters end in _total")
    if not spec.help.strip():
        problems.append("HELP is required")
    if spec.buckets and spec.type != "histogram":
        problems.append("only histograms have buckets")
    if spec.buckets and not (all(math.isfinite(bound) for bound in spec.buckets)
                             and all(a < b for a, b in itertools.pairwise(spec.buckets))):
        problems.append("buckets must be finite and increasing")
    for label in spec.labels + spec.optional_labels:
        if not _LABEL.match(label) or label.startswith("__"):
            problems.append(f"bad label name {label!r}")
    if len(set(spec.labels + spec.optional_labels)) != len(spec.labels) + len(spec.optional_labels):
        problems.append("duplicate label names")
    return problems


class Family:
    """Samples of one spec, collected into a prometheus_client Metric for exposition."""

    __slots__ = ("spec", "metric")

    def __init__(self, spec: MetricSpec):
        self.spec = spec
        base = spec.name[: -len("_total")] if spec.type == "counter" else spec.name
        self.metric = Metric(base, spec.help, spec.type)

    def add(self, labels: Mapping[str, str], value: float) -> None:
        self.metric.add_sample(self.spec.name, dict(labels), float(value))

    def add_histogram(self, labels: Mapping[str, str], buckets: Sequence[tuple[float, int]], total: float,
                      exemplars: Sequence[Exemplar | None] = ()) -> None:
        """buckets: (upper bound, cumulative count) in increasing order, ending with +Inf;
        exemplars, where given, one per bucket (served in the OpenMetrics format only)."""
        for index, (bound, count) in enumerate(buckets):
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            exemplar = exemplars[index] if exemplars else None
            self.metric.add_sample(f"{self.spec.name}_bucket", {**labels, "le": le}, float(count), exemplar=exemplar)
        self.metric.add_sample(f"{self.spec.name}_sum", dict(labels), float(total))
        self.metric.add_sample(f"{self.spec.name}_count", dict(labels), float(buckets[-1][1]))

    def __len__(self) -> int:
        return len(self.metric.samples)


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[float, int]]:
    """Per-bucket counts as add_histogram takes them: (upper bound, cumulative count); bounds end with +Inf."""
    return list(zip(bounds, itertools.accumulate(int(count) for count in counts), strict=True))


def check_unique(specs: Iterable[MetricSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ValueError(f"metric {spec.name} is declared twice")
        seen.add(spec.name)


class FamilySet:
    """Families collected during one read, created as their first sample arrives."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def add(self, spec: MetricSpec, labels: Mapping[str, str], value: float) -> None:
        family = self._families.get(spec.name)
        if family is None:
            family = self._families[spec.name] = Family(spec)
        family.add(labels, value)

    def add_histogram(self, spec: MetricSpec, labels: Mapping[str, str], buckets: Sequence[tuple[float, int]],
                      total: float, exemplars: Sequence[Exemplar | None] = ()) -> None:
        family = self._families.get(spec.name)
        if family is None:
            family = self._families[spec.name] = Family(spec)
        family.add_histogram(labels, buckets, total, exemplars)

    def update(self, other: FamilySet) -> None:
        """Adds every sample of `other`, as when one GPU's read completes; `other` is left as it was."""
        for name, family in other._families.items():
            mine = self._families.get(name)
            if mine is None:
                mine = self._families[name] = Family(family.spec)
            mine.metric.samples.extend(family.metric.samples)

    def __len__(self) -> int:
        """Samples in all (a histogram's buckets, sum and count each count)."""
        return sum(len(family) for family in self._families.values())

    def metrics(self) -> list[Metric]:
        return [family.metric for family in self._families.values()]
