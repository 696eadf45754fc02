"""Inference latency telemetry for Python model servers, in OpenTelemetry GenAI terms.

    from fleetscope.exporters.inference import InferenceMetrics, serve
    metrics = InferenceMetrics(engine="my-server")
    serve(metrics, port=9400)              # or register InferenceCollector(metrics) on your own registry
    with metrics.track(model="iris", operation="predict") as request:
        ...

OTLP export: fleetscope.exporters.inference.otlp. ASGI servers: fleetscope.exporters.inference.asgi.
Off Kubernetes, declare the process's GPUs so that rules can join them to its requests:
InferenceMetrics(engine="my-server", gpus=visible_gpus()).
"""

from fleetscope.exporters.inference.gpus import visible_gpus
from fleetscope.exporters.inference.prometheus import InferenceCollector, registry_for, serve
from fleetscope.exporters.inference.tracking import InferenceMetrics, Request

__all__ = ["InferenceCollector", "InferenceMetrics", "Request", "registry_for", "serve", "visible_gpus"]
