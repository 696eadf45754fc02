"""Every metric fleetscope.exporters produces, declared once. Consumers import from here.

NODE_EXPORTER is what `fleetscope exporter` serves; inference.METRICS is what model servers
instrumented with the inference SDK serve on their own pages; training.METRICS what training jobs instrumented with
the training SDK serve on theirs.
"""

from fleetscope.catalog import MetricSpec, check_unique
from fleetscope.exporters.catalog import exporter, fabric, gpu, health, inference, nccl, training

NODE_EXPORTER: tuple[MetricSpec, ...] = (exporter.METRICS + gpu.METRICS + fabric.METRICS + nccl.METRICS
                                         + health.METRICS)
ALL: tuple[MetricSpec, ...] = NODE_EXPORTER + inference.METRICS + training.METRICS
check_unique(ALL)

__all__ = ["ALL", "NODE_EXPORTER", "exporter", "fabric", "gpu", "health", "inference", "nccl", "training"]
