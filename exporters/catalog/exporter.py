"""Metrics about the exporter itself, as node_exporter has them."""

from fleetscope.catalog import MetricSpec
from fleetscope.self_metrics import BUILD_INFO  # every fleetscope process serves it (the core declares it once)

COLLECTOR_SUCCESS = MetricSpec(
    "fleetscope_exporter_collector_success", "gauge",
    "Whether the collector's last collection succeeded (1) or failed (0).", ("collector",),
)
COLLECTOR_DURATION = MetricSpec(
    "fleetscope_exporter_collector_duration_seconds", "gauge",
    "How long the collector's last collection took, in seconds.", ("collector",),
)
COLLECTOR_LAST_SUCCESS = MetricSpec(
    "fleetscope_exporter_collector_last_success_timestamp_seconds", "gauge",
    "Unix time of the collector's last successful collection; what is served is at most this old.",
    ("collector",),
)

METRICS = (BUILD_INFO, COLLECTOR_SUCCESS, COLLECTOR_DURATION, COLLECTOR_LAST_SUCCESS)
