"""The node to blame: per node, the training jobs it failed, stalled or slowed, its XIDs by class and the recovery
actions its driver asked for, over 7 and 30 days; the goodput those jobs lost; a lemon score; an alert that proposes
the node for repair.

Lemon nodes are the paper's (Kokolis et al., "Revisiting Reliability in Large-Scale Machine Learning Research
Clusters", HPCA 2025, arXiv:2410.21680): nodes that keep failing the jobs scheduled on them, identified and taken out
for repair. Only its abstract and summaries were at hand when this was written, not its list of signals or its
thresholds; the score here is a weighted count, over 30 days, of the signals below, with weights and a threshold in
the monitoring config (training.lemon_*).

Attribution. Training ranks carry `hostname` (the training SDK's socket.gethostname()), as the node exporter's GPU
and NCCL series do, so `(cluster, hostname)` joins a rank to its node:

    failed   a job restarted (fleetscope_training_restarts_total rose) in the increment, and a node that ran one of
             its ranks had a hardware XID (gpu.xid_page or gpu.xid_ticket) in it or the one before
    stalled  a rank of the job is stalled in a collective (fleetscope:training_rank_stalled_in_collective:seconds)
             on the node whose NCCL rank the communicator waits on (fleetscope:nccl_comm_lagging_rank:behind);
             counted once in each increment in which such a stall began
    lagged   a rank of the job runs on a node whose NCCL ranks arrive later than nccl.straggler_lateness_seconds for
             all of nccl.straggler_for; counted like stalls

Cost. A 30-day increase() of the raw series would read every sample of every GPU's XID counter, every rank's
counters, at every evaluation: 30 d at a 15 s scrape is 172,800 samples a series. Instead one rule group, evaluated
once per training.lemon_interval (1h), records each node's increment over that interval (the windows never overlap,
so their sum is the total), and the 7- and 30-day records sum those: 168 and 720 samples per node series and
evaluation, whatever the scrape interval and the number of GPUs, ranks and XID codes. The hourly group reads two
hours of raw samples once an hour, and looks for stalls and stragglers with a subquery at one-minute resolution over
its hour (61 evaluations of the blame expression, once an hour). A job's restarts and lost time are counted from
the last sample before the increment to the last in it, so a job down across the boundary is not missed by both.
Cost grows with nodes times signals, linearly in the window's length over the interval. An increment missed
(Prometheus down at that minute) is lost from the sums, not counted twice.
"""

from __future__ import annotations

from collections.abc import Callable

from fleetscope.alerts import collectives
from fleetscope.alerts.rule import Alert, record, regex, seconds
from fleetscope.alerts.training import PHASE, rank_stalled_in_collective
from fleetscope.alerts.training import STALLED as STALLED_BY_CAUSE
from fleetscope.exporters.catalog import gpu, nccl
from fleetscope.exporters.catalog import training as spec
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.matchers import matchers

NODE = "cluster, hostname"
JOB = "cluster, training_job"
JOB_NODE = "cluster, training_job, hostname"
WINDOWS = ("7d", "30d")
BLAME_STEP = "1m"  # the resolution at which the increments look for stalls and lags
HANG_RATE = "fleetscope:training_hang_seconds:rate5m"  # rank-seconds a second lost to hangs, 0 while none
# One sample per node per increment (training.lemon_interval), then their sums over WINDOWS.
FAILED = "fleetscope:node_training_jobs_failed"
STALLED = "fleetscope:node_training_jobs_stalled"
LAGGED = "fleetscope:node_training_jobs_lagged"
XIDS = "fleetscope:node_gpu_xids"  # by class: page, ticket (hardware, the config's policy), application
RECOVERY = "fleetscope:node_gpu_recovery_actions"  # increments in which the driver asked for each action
LOST = "fleetscope:node_training_lost_seconds"  # rank-seconds the jobs it failed or stalled lost
SIGNALS = (FAILED, STALLED, LAGGED, XIDS, RECOVERY, LOST)
INCREMENT = "increment"
SCORE = "fleetscope:node_training_lemon_score:30d"
XID_CLASSES = ("page", "ticket", "application")
HARDWARE = '{class=~"page|ticket"}'


def over(name: str, window: str) -> str:
    """The record of a signal's sum over one of WINDOWS (or its per-increment record for INCREMENT)."""
    return f"{name}:{INCREMENT}" if window == INCREMENT else f"{name}:increase{window}"


def _hardware_xids(config: MonitoringConfig, window: str) -> str:
    """Each node with a hardware XID in the window; a counter's series appearing at its first XID counts too."""
    e, g = config.selectors.exporter, config.gpu
    xids = gpu.XID_ERRORS.select(matchers(e, f'xid=~"{regex(g.xid_page + g.xid_ticket)}"'))
    return f"max by ({NODE}) (\n  increase({xids}[{window}]) > 0\n  or\n  ({xids} unless {xids} offset {window})\n)"


def _xids_by_class(config: MonitoringConfig, window: str) -> str:
    e, g = config.selectors.exporter, config.gpu
    codes = {"page": f'xid=~"{regex(g.xid_page)}"', "ticket": f'xid=~"{regex(g.xid_ticket)}"',
             "application": f'xid!~"{regex(g.xid_page + g.xid_ticket)}"'}
    parts = []
    for name in XID_CLASSES:
        xids = gpu.XID_ERRORS.select(matchers(e, codes[name]))
        counted = f"({xids} unless {xids} offset {window})\n    or\n    increase({xids}[{window}])"
        parts.append(_labelled(f"sum by ({NODE}) (\n    {counted}\n    )", "class", name))
    return "round(\n  (\n  " + "\n  or\n  ".join(parts) + "\n  )\n) > 0"


def _ranks_on_nodes(config: MonitoringConfig, window: str) -> str:
    """1 for each (job, node) pair where the job ran a rank within the window."""
    return f"group by ({JOB_NODE}) (last_over_time({spec.JOB_START.select(config.training.selector)}[{window}]))"


def stall_blame(config: MonitoringConfig) -> str:
    """1 for each (job, node) pair where a rank of the job is stalled in a collective on the node hosting the NCCL
    rank its communicator waits on."""
    return (f"group by ({JOB_NODE}) (\n{rank_stalled_in_collective(config)}\n)\nand on ({NODE})\n"
            f"group by ({NODE}) (\n{collectives.lagging_rank(config)}\n)")


def lag_blame(config: MonitoringConfig) -> str:
    """1 for each (job, node) pair where a rank of the job runs on a node whose NCCL ranks straggled for all of
    nccl.straggler_for. Jobs are joined to the node, not to the communicator (NCCL's series do not name the training
    job): with whole nodes allocated to one job, as large training jobs are, the two are the same."""
    e, n, t = config.selectors.exporter, config.nccl, config.training
    straggling = (f"max by ({NODE}) (min_over_time({nccl.LATENESS.select(e)}[{n.straggler_for}])) > "
                  f"{n.straggler_lateness_seconds:g}")
    return f"group by ({JOB_NODE}) ({spec.JOB_START.select(t.selector)})\nand on ({NODE})\n({straggling})"


def _began(blame: str, window: str) -> str:
    """(job, node) pairs blamed at some minute of the window but not at its start: one per stall or lag that began
    in it. Evaluated from the raw series (a subquery at BLAME_STEP), not from a record of another group, so that the
    boundary minute belongs to the same window whichever group Prometheus evaluated first."""
    return (f"max_over_time((\n{blame}\n)[{window}:{BLAME_STEP}])\nunless\n"
            f"last_over_time((\n{blame}\n)[{BLAME_STEP}:{BLAME_STEP}] offset {window})")


def records(config: MonitoringConfig) -> list[dict]:
    """Evaluated at the usual interval, after the training records they read."""
    return [record(HANG_RATE, f'sum by ({JOB}) ({STALLED_BY_CAUSE}{{cause="hang"}})\nor\n'
                              f"0 * sum by ({JOB}) ({PHASE})")]


def increment_records(config: MonitoringConfig) -> list[dict]:
    """Evaluated once per training.lemon_interval, over that interval: windows that never overlap."""
    e, t = config.selectors.exporter, config.training
    window = t.lemon_interval
    restarted = f"max by ({JOB}) ({_increase(spec.RESTARTS.select(t.selector), window)}) > 0"
    failed_pairs = (f"{_ranks_on_nodes(config, window)}\nand on ({JOB})\n({restarted})\nand on ({NODE})\n"
                    f"{_hardware_xids(config, _twice(window))}")
    stalled_pairs = _began(stall_blame(config), window)
    recovery = gpu.RECOVERY_ACTION.select(matchers(e, 'action!="none"'))
    return [
        record(over(FAILED, INCREMENT), f"count by ({NODE}) (\n{failed_pairs}\n)"),
        record(over(STALLED, INCREMENT), f"count by ({NODE}) (\n{stalled_pairs}\n)"),
        record(over(LAGGED, INCREMENT), f"count by ({NODE}) (\n{_began(lag_blame(config), window)}\n)"),
        record(over(XIDS, INCREMENT), _xids_by_class(config, window)),
        record(over(RECOVERY, INCREMENT),
               f"max by ({NODE}, action) (max_over_time({recovery}[{window}])) == 1"),
        record(over(LOST, INCREMENT), _lost(config, failed_pairs)),
    ]


def _lost(config: MonitoringConfig, failed_pairs: str) -> str:
    """Rank-seconds lost in the increment by the jobs each node failed (their restart and recompute time) or stalled
    (their hang time: the hour's average share, times the hour; exact for jobs that ran all of it)."""
    t, window = config.training, config.training.lemon_interval
    lost_phases = spec.PHASE_SECONDS.select(t.selector, 'phase=~"restart|recompute"')
    restarts = f"sum by ({JOB}) ({_increase(lost_phases, window)})\n  * on ({JOB}) group_right ()\n  ({failed_pairs})"
    hangs = (f"(avg_over_time({HANG_RATE}[{window}]) * {seconds(window)} > 0)\n  * on ({JOB}) group_right ()\n"
             f"  max_over_time((\n{stall_blame(config)}\n)[{window}:{BLAME_STEP}])")
    return (f"sum by ({NODE}) (\n  {_labelled(restarts, 'cause', 'failed')}\n  or\n"
            f"  {_labelled(hangs, 'cause', 'stalled')}\n)")


def _increase(counter: str, window: str) -> str:
    """A counter's rise from its last sample before the window to its last sample in it, so that a rise between two
    windows' samples is counted by the window that sees it: a job down across the boundary is scraped before it in
    one window and relaunched in the next, where increase() of either window sees no rise. increase() where the
    counter has no sample in the window before (a new series) or went back (a reset)."""
    return (f"(\n  (last_over_time({counter}[{window}]) - last_over_time({counter}[{window}] offset {window})) >= 0\n"
            f"  or\n  increase({counter}[{window}])\n)")


def _labelled(expr: str, label: str, value: str) -> str:
    return f'label_replace(\n  {expr},\n  "{label}", "{value}", "", ""\n  )'


def window_records(config: MonitoringConfig) -> list[dict]:
    """Evaluated at the usual interval, so that a dashboard's instant query always finds them: sums of the
    increments over each window, and the lemon score."""
    sums = [record(over(name, window), f"sum_over_time({over(name, INCREMENT)}[{window}])")
            for window in WINDOWS for name in SIGNALS]
    return sums + [record(SCORE, lemon_score(config, _from_records))]


def lemon_score(config: MonitoringConfig, thirty_days: Callable[[str, str], str]) -> str:
    """The weighted sum of a node's signals over 30 days, each read as thirty_days(signal, label matchers) gives it."""
    t = config.training
    weighted = [(thirty_days(FAILED, ""), t.lemon_job_weight, "failed"),
                (thirty_days(STALLED, ""), t.lemon_job_weight, "stalled"),
                (thirty_days(LAGGED, ""), t.lemon_lag_weight, "lagged"),
                (f"sum by ({NODE}) ({thirty_days(XIDS, HARDWARE)})", t.lemon_xid_weight, "xids"),
                (f'sum by ({NODE}) ({thirty_days(RECOVERY, "")})', t.lemon_recovery_weight, "recovery")]
    terms = [f'label_replace({weight:g} * {expr}, "signal", "{name}", "", "")' for expr, weight, name in weighted]
    return f"sum by ({NODE}) (\n  " + "\n  or\n  ".join(terms) + "\n)"


def _from_records(name: str, selector: str) -> str:
    return f"{over(name, '30d')}{selector}"


def _from_increments(name: str, selector: str) -> str:
    """A signal's 30-day sum computed from its increments, for the alert: the records of another group may be a
    cycle older than the alert's evaluation."""
    return f"sum_over_time({over(name, INCREMENT)}{selector}[30d])"


def _twice(duration: str) -> str:
    return f"{2 * float(seconds(duration)):g}s"


def _count(name: str) -> str:
    """A signal's 30-day value for the alert's node (Prometheus' template query), 0 where it has none."""
    query = (f'printf "sum(sum_over_time({over(name, INCREMENT)}{{hostname=%q,cluster=%q}}[30d]))" '
             "$labels.hostname $labels.cluster")
    return f"{{{{ with query ({query}) }}}}{{{{ . | first | value | printf \"%.0f\" }}}}{{{{ else }}}}0{{{{ end }}}}"


def alerts(config: MonitoringConfig) -> list[Alert]:
    t = config.training
    return [
        Alert("FleetscopeTrainingLemonNode",
              f"{lemon_score(config, _from_increments)}\n>= {t.lemon_score_threshold:g}", "ticket",
              summary="{{ $labels.hostname }} keeps failing training jobs: propose it for repair",
              description="Over the last 30 days {{ $labels.hostname }} failed " + _count(FAILED) + " training "
                          "job(s) (a restart after a hardware XID on it), stalled " + _count(STALLED) + " (the rank "
                          "a hung communicator waited on ran there) and slowed " + _count(LAGGED) + " with a "
                          "straggling rank; its lemon score is {{ $value | printf \"%.2f\" }}, at or over "
                          f"{t.lemon_score_threshold:g}. Drain it (`fleetscope remediate` does, where this alert is "
                          "one of its rules) and have it repaired before it takes more jobs."),
    ]
