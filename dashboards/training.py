"""Training goodput: each job's productive share of its ranks' time, where the rest went (badput by cause), its
effective training time ratio since its first start, step time against the job's own baseline, and how old its
last checkpoint is. Every panel reads the records of alerts/training.py, one series a job (or a job and cause),
whatever the jobs' ranks."""

from fleetscope.alerts import training as records
from fleetscope.alerts import training_nodes as nodes
from fleetscope.dashboards.build import (
    Panel,
    Query,
    Row,
    dashboard,
    datasource_variable,
    label_variable,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import TITLES, UIDS, links_except
from fleetscope.durations import parse
from fleetscope.mixin.config import MonitoringConfig

JOB_FILTERS = 'cluster=~"$cluster",training_job=~"$training_job"'
JOB = "{{training_job}}"


def _r(record: str, *extra: str) -> str:
    return f"{record}{{{','.join((JOB_FILTERS,) + extra)}}}"


def build(config: MonitoringConfig | None = None) -> dict:
    t = (config or MonitoringConfig()).training
    goodput = Row("Goodput", [
        timeseries_panel("Goodput by job", "Productive share of each job's ranks' time (5m rate): steps that "
                                           "advance the model, with stalled ranks' time taken out. Below "
                                           f"{t.goodput_objective:.0%} over {t.goodput_window}, "
                                           "FleetscopeTrainingGoodputLow opens a ticket.", "percentunit",
                         Query(_r(records.GOODPUT), JOB), min=0, max=1),
        timeseries_panel("Badput by cause", "Where the rest of the ranks' time went (5m rate), as a share of it: "
                                            "data_wait, checkpoint, evaluation, restart (down and relaunching), "
                                            "initialization, recompute (work lost since the last checkpoint, "
                                            "redone), hang (no step while NCCL made no progress), stall.",
                         "percentunit", Query(f"sum by (training_job, cause) ({_r(records.BADPUT)})",
                                              JOB + " {{cause}}"), min=0, stacked=True),
        table_panel("Effective training time ratio", "Since each job's first start, across its restarts: productive "
                                                     "time over wall time (ETTR), and the share lost to each cause.",
                    "percentunit", Query(_r(records.ETTR), "ETTR"),
                    *(Query(_r(records.LOST, f'cause="{cause}"'), cause)
                      for cause in ("restart", "recompute", "checkpoint", "data_wait")),
                    columns=["training_job"], width=24, height=6),
    ])
    steps = Row("Steps and checkpoints", [
        timeseries_panel("Step time against baseline", "Mean step time over the job's ranks (5m rate), and its "
                                                       f"median over {t.step_time_baseline_window}: past "
                                                       f"{t.step_time_ratio:g} times the baseline for "
                                                       f"{t.step_time_for}, FleetscopeTrainingStepTimeRegressed opens "
                                                       "a ticket.", "s",
                         Query(_r(records.STEP_MEAN), JOB), Query(_r(records.STEP_BASELINE), JOB + " baseline"),
                         min=0),
        timeseries_panel("Checkpoint age", "Time since each job last saved a checkpoint (since its start before "
                                           f"the first); past {t.checkpoint_stale_after} while it trains, "
                                           "FleetscopeTrainingCheckpointStale opens a ticket.", "s",
                         Query(_r(records.CHECKPOINT_AGE), JOB), min=0,
                         thresholds=[(parse(t.checkpoint_stale_after), "orange")]),
        timeseries_panel("Time since last step", "Time since any rank of the job finished a step; past "
                                                 f"{t.stalled_after}, FleetscopeTrainingJobStalled pages.", "s",
                         Query(_r(records.STEP_AGE), JOB), min=0,
                         thresholds=[(parse(t.stalled_after), "red")], width=24),
    ])
    blame = Row("The node to blame", [_nodes_costing_most(config or MonitoringConfig())])
    variables = [datasource_variable(), label_variable("cluster", "Cluster", records.ETTR),
                 label_variable("training_job", "Training job", records.ETTR, 'cluster=~"$cluster"')]
    return dashboard(UIDS["training"], TITLES["training"],
                     "Training goodput per job and cluster from the training SDK: productive time over wall time, "
                     "badput by cause, the effective training time ratio since the first start, step time against "
                     "the job's baseline and checkpoint age, and the nodes that cost the most goodput.", variables,
                     [goodput, steps, blame], links_except("training"))


def _nodes_costing_most(config: MonitoringConfig) -> Panel:
    """The ten nodes whose failed and stalled jobs lost the most rank-hours over 30 days, with the signals of their
    lemon score beside."""
    t = config.training
    cluster = 'cluster=~"$cluster"'
    top = f"topk(10, {nodes.over(nodes.LOST, '30d')}{{{cluster}}})"

    def among_top(expr: str) -> str:
        return f"{expr} and on (cluster, hostname) {top}"

    def signal(name: str, window: str = "30d", matcher: str = "") -> str:
        return among_top(f"sum by (cluster, hostname) ({nodes.over(name, window)}{{{cluster}{matcher}}})")

    return table_panel(
        "Nodes costing the most goodput",
        "The ten nodes whose training jobs lost the most rank-hours over 30 days to the node: restarts and work "
        "redone after a hardware XID on it, and hangs in which the others waited on its rank. Beside: the jobs it "
        "failed, stalled and slowed (a straggling rank), its hardware XIDs, the hours in which its driver asked for "
        f"a recovery action, and its lemon score; at {t.lemon_score_threshold:g} or more "
        "FleetscopeTrainingLemonNode proposes it for repair. Counted once an hour, so up to an hour late.",
        "none",
        Query(among_top(f"{top} / 3600"), "rank-hours lost, 30d"),
        Query(among_top(f"sum by (cluster, hostname) ({nodes.over(nodes.LOST, '7d')}{{{cluster}}}) / 3600"),
              "rank-hours lost, 7d"),
        Query(signal(nodes.FAILED), "jobs failed"), Query(signal(nodes.STALLED), "jobs stalled"),
        Query(signal(nodes.LAGGED), "jobs slowed"),
        Query(signal(nodes.XIDS, matcher=',class=~"page|ticket"'), "hardware XIDs"),
        Query(signal(nodes.RECOVERY), "recovery asked, h"),
        Query(among_top(f"{nodes.SCORE}{{{cluster}}}"), "lemon score"),
        columns=["cluster", "hostname"], width=24, height=8)
