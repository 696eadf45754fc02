"""What the fleetscope dashboards share: uids, links between them, filters and selectors."""

from __future__ import annotations

from fleetscope.catalog import MetricSpec
from fleetscope.mixin.links import UIDS

__all__ = ["UIDS"]  # defined with the alerts' dashboard links, read by every dashboard

TITLES = {
    "fleet": "Fleet overview",
    "gpu": "Node / GPU detail",
    "collectives": "Collectives and fabric",
    "inference": "Inference",
    "drift": "Model drift",
    "self": "fleetscope itself",
    "training": "Training goodput",
    "ray": "Ray cluster",
}


# The filters every node-level query carries, after the config's job selector (joined by mixin.matchers.matchers,
# as the alerts select: a second scrape job of the same exporters never doubles a count). `=~` on cluster also
# matches a series with no cluster label at all, as in a cluster's own Prometheus where `cluster` is an
# external label only added on remote_write: there the variable has no values, and both its empty value and
# All (.*) still select every series.
NODE_FILTERS = 'cluster=~"$cluster",hostname=~"$hostname"'
GPU_FILTERS = NODE_FILTERS + ',gpu=~"$gpu"'


def links_except(key: str) -> list[tuple[str, str]]:
    return [(TITLES[other], f"/d/{uid}") for other, uid in UIDS.items() if other != key]


def m(spec: MetricSpec, matchers: str = "", suffix: str = "") -> str:
    """A metric selector from its catalog spec: m(gpu.POWER, GPU) -> fleetscope_gpu_power_watts{...}."""
    return spec.select(matchers, suffix=suffix)
