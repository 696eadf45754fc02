"""Training telemetry from the job itself: where each rank's time goes (productive steps, data wait,
checkpoints, evaluation, restarts, initialization, work redone after a restart), steps, samples and tokens.

    from fleetscope.exporters.training import TrainingMetrics, serve
    metrics = TrainingMetrics(job="llama-8b", state_dir="/checkpoints/run-7")   # the job's start
    serve(metrics, port=9500)               # or register TrainingCollector(metrics) on your own registry
    for batch in metrics.data(loader):      # time waiting for batches: data_wait
        with metrics.step(samples=len(batch)):
            ...
        with metrics.checkpoint("save"):
            ...

Light: the standard library and prometheus_client. The rules (alerts/rules/training.yaml) turn its counters into
goodput, badput by cause and the effective training time ratio (ETTR).
"""

from fleetscope.exporters.training.prometheus import TrainingCollector, registry_for, serve
from fleetscope.exporters.training.tracking import TrainingMetrics

__all__ = ["TrainingCollector", "TrainingMetrics", "registry_for", "serve"]
