"""Every metric the node exporter serves, declared once. Consumers import from here."""

from fleetscope.catalog import MetricSpec, check_unique
from fleetscope.exporters.catalog import exporter, fabric, gpu, nccl

ALL: tuple[MetricSpec, ...] = exporter.METRICS + gpu.METRICS + fabric.METRICS + nccl.METRICS
check_unique(ALL)

__all__ = ["ALL", "exporter", "fabric", "gpu", "nccl"]
