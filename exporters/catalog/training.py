"""Training telemetry, served by training jobs that use the fleetscope training SDK (fleetscope.exporters.training)
on their own pages.

Every series carries SERIES_LABELS: the training job's name (`training_job`, not `job`, which is Prometheus' own
target label and would be renamed exported_job on a scrape), the process's rank and its node (`hostname`:
NODE_NAME, else the host's name, as the node exporter names the node, so that rules join ranks to their GPUs and NCCL
series). A process serves its own rank only, and phases and checkpoint operations are fixed sets, so a process serves
at most a few dozen series.

The phase counter partitions the job's wall time: each second of a rank, from the job's first start to its last
end, falls in exactly one phase (PHASES). With a state directory the SDK carries the counters across restarts and
books the time a job was down (crash to relaunch) to `restart`, so that the phases' sum is the wall time since the
first start and productive over that sum is the job's effective training time ratio (alerts/training.py).
"""

from fleetscope.catalog import MetricSpec

SERIES_LABELS = ("training_job", "rank", "hostname")
# productive: steps that advance the model (and the loop between them); recompute: steps redone after a restart
# from a checkpoint older than the last step reached (the work lost since the last checkpoint); restart: the time
# from a crash to the first step after it (down, relaunch, re-initialization); initialization: from the job's first
# start to its first step.
PHASES = ("productive", "data_wait", "checkpoint", "evaluation", "restart", "initialization", "recompute")
CHECKPOINT_OPERATIONS = ("save", "load")
STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CHECKPOINT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def _training(name: str, type_: str, help_: str, *labels: str, bounds: tuple[float, ...] = ()) -> MetricSpec:
    return MetricSpec(f"fleetscope_training_{name}", type_, help_, SERIES_LABELS + labels, buckets=bounds)


STEPS = _training("steps_total", "counter", "Training steps completed by this rank, redone ones included.")
STEP_DURATION = _training("step_duration_seconds", "histogram",
                          "Time each step took, from its start to its end (data loading outside the step excluded).",
                          bounds=STEP_BUCKETS)
SAMPLES = _training("samples_total", "counter", "Samples (sequences, images) the rank's steps processed.")
TOKENS = _training("tokens_total", "counter", "Tokens the rank's steps processed.")
CHECKPOINT_DURATION = _training("checkpoint_duration_seconds", "histogram",
                                "Time each checkpoint save or load took, by operation.", "operation",
                                bounds=CHECKPOINT_BUCKETS)
LAST_CHECKPOINT = _training("last_checkpoint_timestamp_seconds", "gauge",
                            "Unix time at which the rank last finished saving a checkpoint; absent before the first.")
PHASE_SECONDS = _training("phase_seconds_total", "counter",
                          "Wall time of the rank by phase (productive, data_wait, checkpoint, evaluation, restart, "
                          "initialization, recompute): every second since the job's first start in exactly one phase.",
                          "phase")
RESTARTS = _training("restarts_total", "counter", "Times the job restarted (a relaunch that found earlier state, or a "
                                                  "restart the job marked).")
JOB_START = _training("job_start_timestamp_seconds", "gauge",
                      "Unix time of the job's first start, kept across restarts.")
LAST_STEP = _training("last_step_timestamp_seconds", "gauge",
                      "Unix time at which the rank last finished a step; absent before the first.")

METRICS = (STEPS, STEP_DURATION, SAMPLES, TOKENS, CHECKPOINT_DURATION, LAST_CHECKPOINT, PHASE_SECONDS, RESTARTS,
           JOB_START, LAST_STEP)
