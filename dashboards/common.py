"""What the fleetscope dashboards share: uids, links between them, filters and selectors."""

from __future__ import annotations

from fleetscope.catalog import MetricSpec

UIDS = {
    "fleet": "fleetscope-fleet-overview",
    "gpu": "fleetscope-node-gpu-detail",
    "collectives": "fleetscope-collectives",
    "inference": "fleetscope-inference",
    "drift": "fleetscope-drift",
}
TITLES = {
    "fleet": "Fleet overview",
    "gpu": "Node / GPU detail",
    "collectives": "Collectives and fabric",
    "inference": "Inference",
    "drift": "Model drift",
}

# Throttling that costs performance; idle, application clocks, sync boost and display
# settings hold clocks down without anything being wrong.
THROTTLE_REASONS = "sw_power_cap|hw_slowdown|sw_thermal_slowdown|hw_thermal_slowdown|hw_power_brake_slowdown"
IDLE_UTILIZATION = 0.1  # a GPU busier than this is counted busy

NODE = 'cluster=~"$cluster",hostname=~"$hostname"'
GPU = NODE + ',gpu=~"$gpu"'


def links_except(key: str) -> list[tuple[str, str]]:
    return [(TITLES[other], f"/d/{uid}") for other, uid in UIDS.items() if other != key]


def m(spec: MetricSpec, matchers: str = "", suffix: str = "") -> str:
    """A metric selector from its catalog spec: m(gpu.POWER, GPU) -> fleetscope_gpu_power_watts{...}."""
    return spec.select(matchers, suffix=suffix)
