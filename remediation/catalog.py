"""Every metric `fleetscope remediate` serves on its /metrics page, declared once."""

from fleetscope.catalog import MetricSpec, check_unique
from fleetscope.self_metrics import BUILD_INFO  # every fleetscope process serves it (the core declares it once)

ACTIONS = MetricSpec(
    "fleetscope_remediation_actions_total", "counter",
    "Drains (Slurm drain, Kubernetes cordon and taint) and resumes carried out; dry_run=\"true\" counts those only "
    "decided and logged, not sent.",
    ("action", "backend", "dry_run"))
REFUSALS = MetricSpec(
    "fleetscope_remediation_refusals_total", "counter",
    "Drains and resumes an alert asked for and the remediator refused, by reason: rate_limit (max_actions_per_hour "
    "reached), drained_ratio (the node's partition or cluster would pass max_drained_ratio), already_drained, "
    "not_drained_by_us, resume_not_allowed, still_firing, unknown_node, no_node_label.",
    ("action", "reason"))
FAILURES = MetricSpec(
    "fleetscope_remediation_failures_total", "counter",
    "Drains and resumes decided but not done because scontrol, sinfo or the Kubernetes API failed.",
    ("action", "backend"))
NOTIFICATIONS = MetricSpec(
    "fleetscope_remediation_notifications_total", "counter",
    "Webhook requests from Alertmanager, by outcome: accepted, bad_request, too_large, timeout, unauthorized.",
    ("outcome",))
DRY_RUN = MetricSpec(
    "fleetscope_remediation_dry_run_enabled", "gauge",
    "1 while the remediator only decides and logs (dry_run: true), 0 while it drains nodes.")
RATE_LIMIT_USED = MetricSpec(
    "fleetscope_remediation_rate_limit_used_ratio", "gauge",
    "Drains of the last hour (done or, in dry-run, decided) as a share of limits.max_actions_per_hour; at 1 every "
    "further drain is refused until the oldest is an hour old.")

ALL = (ACTIONS, REFUSALS, FAILURES, NOTIFICATIONS, DRY_RUN, RATE_LIMIT_USED, BUILD_INFO)
check_unique(ALL)
