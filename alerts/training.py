"""Training goodput from the jobs' own telemetry (the training SDK, exporters/catalog/training.py): productive time
over wall time per job and per cluster, the time lost by cause, the effective training time ratio, and alerts on
goodput, checkpoint age, step time against the job's own baseline, and stalled jobs.

ETTR (effective training time ratio) is the measure of Kokolis et al., "Revisiting Reliability in Large-Scale Machine
Learning Research Clusters", HPCA 2025 (arXiv:2410.21680): the productive training time of a job run over its
wall-clock time. The paper's text was not at hand when this was written, so it is taken here as: productive training
time over the job's wall time from its first start to its last end, across restarts. The SDK books every second of
a rank since the first start to exactly one phase (the downtime between a crash and the relaunch to `restart`, the
steps redone after restoring an older checkpoint to `recompute`), so ETTR is productive over the sum of the phases,
read from the counters themselves rather than from windows.

Hangs show as steps that never end: time inside a step counts as productive in the SDK, so a rank that has
finished no step for stalled_after has its productive time booked here as badput instead, `hang` where NCCL on its
host has made no progress either (the exporter's collectives signals, joined on cluster and hostname), `stall`
otherwise.

Which node to blame for the jobs failed, stalled and slowed (lemon nodes) is alerts/training_nodes.py, whose groups
rule_groups() adds to this rule file.
"""

from __future__ import annotations

from fleetscope.alerts.rule import Alert, group, record, seconds
from fleetscope.exporters.catalog import nccl
from fleetscope.exporters.catalog import training as spec
from fleetscope.mixin.config import MonitoringConfig, TrainingConfig

JOB = "cluster, training_job"
RANK = "cluster, training_job, rank"
PHASE = "fleetscope:training_phase_seconds:rate5m"  # rank-seconds per second, by job and phase
STALLED = "fleetscope:training_stalled_seconds:rate5m"  # by job and cause (hang, stall)
PRODUCTIVE = "fleetscope:training_productive_seconds:rate5m"  # productive, stalled time taken out
GOODPUT = "fleetscope:training_goodput:ratio_rate5m"
BADPUT = "fleetscope:training_badput:ratio_rate5m"  # by cause
CLUSTER_GOODPUT = "fleetscope:cluster_training_goodput:ratio_rate5m"
ETTR = "fleetscope:training_ettr:ratio"  # since the job's first start
LOST = "fleetscope:training_lost_time:ratio"  # since the job's first start, by cause
CLUSTER_ETTR = "fleetscope:cluster_training_ettr:ratio"
STEP_MEAN = "fleetscope:training_step_duration_seconds:mean5m"
STEP_BASELINE = "fleetscope:training_step_duration_seconds:baseline"
CHECKPOINT_AGE = "fleetscope:training_checkpoint_age_seconds:max"
STEP_AGE = "fleetscope:training_step_age_seconds:min"  # since the job's latest step on any rank
RANK_STALLED_IN_COLLECTIVE = "fleetscope:training_rank_stalled_in_collective:seconds"
_JOB_TEXT = "training job {{ $labels.training_job }}"
_JOB_FIRST = "Training job {{ $labels.training_job }}"  # at the start of a sentence


OTHER = 'phase!="productive"'


def _cause(expr: str, cause: str) -> str:
    return f'label_replace({expr}, "cause", "{cause}", "", "")'


def _phase_cause(expr: str) -> str:
    """The phase label copied to cause, as badput's causes are named."""
    return f'label_replace({expr}, "cause", "$1", "phase", "(.*)")'


def records(config: MonitoringConfig) -> list[dict]:
    t = config.training
    phases = spec.PHASE_SECONDS.select(t.selector)
    working = spec.PHASE_SECONDS.select(t.selector, 'phase=~"productive|recompute"')
    productive = spec.PHASE_SECONDS.select(t.selector, 'phase="productive"')
    stalled_rank = f"time() - {spec.LAST_STEP.select(t.selector)} > {seconds(t.stalled_after)}"
    all_phases = f"sum by ({JOB}) ({PHASE})"
    productive_rate = f'sum by ({JOB}) ({PHASE}{{phase="productive"}})'
    stalled_sum = f"sum by ({JOB}) ({STALLED})"
    hung = f"rate({working}[5m]) and on ({RANK}) {RANK_STALLED_IN_COLLECTIVE}"
    stuck = f"rate({working}[5m]) and on ({RANK}) ({stalled_rank}) unless on ({RANK}) {RANK_STALLED_IN_COLLECTIVE}"
    return [
        record(PHASE, f"sum by ({JOB}, phase) (rate({phases}[5m]))"),
        record(RANK_STALLED_IN_COLLECTIVE, rank_stalled_in_collective(config)),
        record(STALLED, f"sum by ({JOB}, cause) (\n  {_cause(hung, 'hang')}\n  or\n  {_cause(stuck, 'stall')}\n)"),
        record(PRODUCTIVE, f"{productive_rate}\n-\n({stalled_sum} or {productive_rate} * 0)"),
        record(GOODPUT, f"{PRODUCTIVE}\n/\n({all_phases} > 0)"),
        record(BADPUT, f"(\n  sum by ({JOB}, cause) ({_phase_cause(f'{PHASE}{{{OTHER}}}')})\n  or\n  {STALLED}\n)\n"
                       f"/ on ({JOB}) group_left ()\n({all_phases} > 0)"),
        record(CLUSTER_GOODPUT, f"sum by (cluster) ({PRODUCTIVE})\n/\n(sum by (cluster) ({PHASE}) > 0)"),
        record(ETTR, f"sum by ({JOB}) ({productive})\n/\n(sum by ({JOB}) ({phases}) > 0)"),
        record(LOST, f"sum by ({JOB}, cause) (\n  {_phase_cause(spec.PHASE_SECONDS.select(t.selector, OTHER))}\n)\n"
                     f"/ on ({JOB}) group_left ()\n(sum by ({JOB}) ({phases}) > 0)"),
        record(CLUSTER_ETTR, f"sum by (cluster) ({productive})\n/\n(sum by (cluster) ({phases}) > 0)"),
        record(STEP_MEAN, f"sum by ({JOB}) (rate({spec.STEP_DURATION.select(t.selector, suffix='_sum')}[5m]))\n/\n"
                          f"(sum by ({JOB}) (rate({spec.STEP_DURATION.select(t.selector, suffix='_count')}[5m])) > 0)"),
        record(STEP_BASELINE, f"quantile_over_time(0.5, {STEP_MEAN}[{t.step_time_baseline_window}])"),
        record(CHECKPOINT_AGE, _checkpoint_age(t)),
        record(STEP_AGE, _step_age(t)),
    ]


def rank_stalled_in_collective(config: MonitoringConfig) -> str:
    """Seconds since each stalled rank's last step, for the ranks whose hosts' NCCL has stopped too."""
    t, e = config.training, config.selectors.exporter
    stalled_rank = f"time() - {spec.LAST_STEP.select(t.selector)} > {seconds(t.stalled_after)}"
    nccl_stopped = f"time() - {nccl.LAST_PROGRESS.select(e)} > {seconds(t.stalled_after)}"
    return f"{stalled_rank}\nand on (cluster, hostname)\n{nccl_stopped}"


def _checkpoint_age(t: TrainingConfig) -> str:
    """Seconds since each job's latest checkpoint on any rank, or since its start where it has saved none."""
    return (f"time() - max by ({JOB}) (\n  {spec.LAST_CHECKPOINT.select(t.selector)}\n  or\n"
            f"  {spec.JOB_START.select(t.selector)}\n)")


def _step_age(t: TrainingConfig) -> str:
    """Seconds since each job's latest step on any rank."""
    return f"time() - max by ({JOB}) ({spec.LAST_STEP.select(t.selector)})"


def alerts(config: MonitoringConfig) -> list[Alert]:
    t = config.training
    return [
        Alert("FleetscopeTrainingGoodputLow",
              f"avg_over_time({GOODPUT}[{t.goodput_window}]) < {t.goodput_objective:g}", "ticket",
              for_=t.goodput_for,
              summary=f"Goodput of {_JOB_TEXT} is below its objective",
              description=f"{_JOB_FIRST} spent {{{{ $value | humanizePercentage }}}} of its ranks' time on productive "
                          f"steps over the last {t.goodput_window}, under the objective of "
                          f"{t.goodput_objective:.0%}. The badput panel says where the rest went: data wait, "
                          "checkpoints, restarts, work redone after a restart, evaluation, stalls."),
        # The ages are computed here rather than read from their records: a record of another group may be a
        # cycle older when the alert is evaluated, and the age it reports a cycle short.
        Alert("FleetscopeTrainingCheckpointStale",
              f"{_checkpoint_age(t)} > {seconds(t.checkpoint_stale_after)}\n"
              f"and on ({JOB})\n{_step_age(t)} < {seconds(t.stalled_after)}", "ticket", for_=t.checkpoint_stale_for,
              summary=f"{_JOB_FIRST} has not saved a checkpoint for {{{{ $value | humanizeDuration }}}}",
              description=f"{_JOB_FIRST} is training but its last checkpoint (or its start, if it never saved one) "
                          f"is {{{{ $value | humanizeDuration }}}} old, past {t.checkpoint_stale_after}: a crash now "
                          "loses all that work."),
        Alert("FleetscopeTrainingStepTimeRegressed",
              f"{STEP_MEAN} / {STEP_BASELINE} > {t.step_time_ratio:g}\n"
              f"and on ({JOB})\ncount_over_time({STEP_MEAN}[{t.step_time_baseline_window}]) >= "
              f"{t.step_time_min_baseline_samples}", "ticket", for_=t.step_time_for,
              summary=f"Steps of {_JOB_TEXT} are slower than its baseline",
              description=f"Steps of {_JOB_TEXT} take {{{{ $value | humanize }}}} times their median over the last "
                          f"{t.step_time_baseline_window}, for {t.step_time_for}. A slow rank (a throttled GPU, a "
                          "straggler in the collectives) or a slower fabric slows every rank of the job."),
        Alert("FleetscopeTrainingJobStalled", f"{_step_age(t)} > {seconds(t.stalled_after)}", "page",
              for_=t.stalled_for,
              summary=f"{_JOB_FIRST} has finished no step for {{{{ $value | humanizeDuration }}}}",
              description=f"No rank of {_JOB_TEXT} has finished a step for {{{{ $value | humanizeDuration }}}} "
                          "while its processes still serve their metrics: it is hung (in a collective, where "
                          f"{RANK_STALLED_IN_COLLECTIVE} names the ranks whose hosts' NCCL has stopped too), "
                          "or stuck loading data or a checkpoint."),
    ]


def rule_groups(config: MonitoringConfig) -> dict:
    from fleetscope.alerts import training_nodes  # which reads this module's records
    return {"groups": [
        {"name": "fleetscope-training-recording", "rules": records(config) + training_nodes.records(config)},
        {"name": "fleetscope-training-node-increments", "interval": config.training.lemon_interval,
         "rules": training_nodes.increment_records(config)},
        {"name": "fleetscope-training-nodes", "rules": training_nodes.window_records(config)},
        group("fleetscope-training", config.team("training"), config,
              alerts(config) + training_nodes.alerts(config), "training"),
    ]}
