"""Reading exposition pages and collector output in tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from fleetscope.catalog import MetricSpec
from fleetscope.exporters.server import encode


def render(metrics: Iterable[Metric]) -> str:
    return encode(list(metrics)).decode()


Samples = list[tuple[str, dict[str, str], float]]


def samples(page: str) -> Samples:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(page) for s in family.samples]


def sample_name(spec: MetricSpec) -> str:
    """The name a spec's samples are found by: a histogram's are NAME_bucket, NAME_sum and NAME_count."""
    return spec.name + "_count" if spec.type == "histogram" else spec.name


def unserved(page: str, specs: Iterable[MetricSpec]) -> list[str]:
    """The specs of which the page holds no sample."""
    served = {name for name, _, _ in samples(page)}
    return [spec.name for spec in specs if sample_name(spec) not in served]


def values(page: str, name: str, parse: Callable[[str], Samples] | None = None, **labels: str) -> list[float]:
    """Values of every sample called `name` whose labels include `labels`; parse reads the page (samples())."""
    return [v for n, sample_labels, v in (parse or samples)(page)
            if n == name and all(sample_labels.get(k) == x for k, x in labels.items())]


def value(page: str, name: str, parse: Callable[[str], Samples] | None = None, **labels: str) -> float:
    found = values(page, name, parse, **labels)
    assert len(found) == 1, f"expected one {name}{labels}, found {found}"
    return found[0]


def series_of_gpu(page: str, gpu: str) -> set[str]:
    return {n for n, labels, _ in samples(page) if labels.get("gpu") == gpu}
