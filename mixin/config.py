"""Every threshold, selector, team and routing choice of the generated rules, dashboards and manifests, in one
place, as a monitoring mixin's _config: change it in Python or in a YAML file and regenerate.

    python -m fleetscope.alerts.generate --config my-alerts.yaml OUTPUT_DIR

The YAML file holds only what differs from the defaults, in the same shape:

    selectors: {exporter: 'job="gpu-nodes"'}
    gpu: {xid_page: [48, 79]}
    inference:
      slos:
        - {selector: 'model="llama-3-70b"', latency: time_to_first_token, threshold: 1.0, objective: 0.995}
    teams: {serving: llm-serving}
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetscope import durations

# How soon someone must act on an alert: the areas declare it, the routing sends by it. The `severity` label each
# urgency is written with is a setting (Severities).
URGENCIES = ("page", "ticket", "info")
WATCHDOG = "watchdog"  # the always-firing alert that proves the path to the pager works


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class Selectors:
    """Matchers (PromQL, without braces) that pick each producer's series out of the fleet's."""
    exporter: str = 'job="fleetscope-exporter"'  # `fleetscope exporter` on every GPU node
    drift_service: str = 'job="fleetscope-drift"'  # `fleetscope drift serve`
    model_servers: str = ""  # the drift client's series in model servers
    # Ray's own pages (mixin/ray.py): the job Ray's discovery file names and deploy/'s PodMonitor sets.
    ray: str = 'job="ray"'


@dataclass(frozen=True)
class GpuConfig:
    # XID codes by what they demand of on-call, from NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors;
    # their names in exporters/catalog/xids.py). Page: the GPU is faulty or unusable until reset, reboot or
    # service (uncorrectable memory errors, fallen off the bus, firmware and NVLink faults). Ticket: the hardware
    # needs attention soon but the GPU still works (a row remapped, a contained ECC error, a high single-bit rate).
    # Codes in neither list are mostly application faults (13, 31, 43, 45, 109) or the driver reporting on itself,
    # and alert at severity info; 154 announces a recovery action, which FleetscopeGPURecoveryActionRequired pages
    # on itself.
    xid_page: tuple[int, ...] = (48, 61, 62, 64, 74, 79, 95, 119, 120, 137, 140, 143, 144, 145, 146, 147, 148, 149,
                                 150)
    xid_ticket: tuple[int, ...] = (63, 92, 94, 121, 123, 136, 155)
    xid_window: str = "10m"
    gpu_down_for: str = "2m"
    nvml_unreachable_for: str = "5m"
    row_remap_pending_for: str = "15m"
    thermal_reasons: tuple[str, ...] = ("hw_thermal_slowdown", "sw_thermal_slowdown", "hw_slowdown")
    # sw_power_cap is how a GPU at full load normally holds its power limit; power brake is not.
    power_reasons: tuple[str, ...] = ("hw_power_brake_slowdown",)
    throttle_window: str = "15m"
    throttle_fraction: float = 0.5  # throttled for at least this share of throttle_window
    throttle_for: str = "15m"
    slowdown_margin_celsius: float = 5.0
    slowdown_margin_for: str = "5m"
    # How long a node's GPU count is remembered after its exporter was last scraped; while it is, a node
    # with fewer GPUs than it had lost one.
    count_baseline_window: str = "6h"
    # How often the fleet overview's attention records (each GPU's XID and ECC counts over a day) are evaluated:
    # reading every GPU's day of samples is the costliest fleet record, and a table a minute late loses nothing
    # (the alerts page on their own, every evaluation).
    attention_interval: str = "1m"
    # A node whose health checks (fleetscope_gpu_health_state, fleetscope_node_health_state) or paging XIDs say unfit
    # pages after this long; one merely degraded opens a ticket after health_degraded_for.
    health_unfit_for: str = "2m"
    health_degraded_for: str = "1h"


@dataclass(frozen=True)
class WasteConfig:
    idle_utilization: float = 0.05
    idle_window: str = "30m"  # mean utilization over this window...
    idle_for: str = "2h"  # ...stays below idle_utilization for this long


@dataclass(frozen=True)
class ExporterConfig:
    down_for: str = "5m"
    collector_failing_for: str = "15m"


@dataclass(frozen=True)
class NcclConfig:
    bandwidth_ratio: float = 0.5  # alert below this share of the communicator's own median
    bandwidth_baseline_window: str = "6h"
    bandwidth_min_baseline_samples: int = 30  # evaluations of the baseline before it is trusted
    bandwidth_for: str = "10m"
    straggler_lateness_seconds: float = 0.02
    straggler_for: str = "10m"
    hang_after: str = "5m"
    # ...and for this long more: a checkpoint, an evaluation or a data-loader stall is quiet for minutes too.
    # PyTorch's own NCCL watchdog gives up after 10 minutes by default.
    no_progress_for: str = "10m"
    ras_hung_for: str = "1m"


@dataclass(frozen=True)
class FabricConfig:
    link_down_for: str = "2m"
    # A port that has been active is expected active until it is again, while its exporter has been scraped
    # within this window; a port never seen active is not cabled, not down.
    link_baseline_window: str = "1d"
    link_flap_window: str = "1h"
    symbol_errors_per_hour: float = 10.0
    port_errors_per_second: float = 0.1
    errors_for: str = "15m"


@dataclass(frozen=True)
class NormalizationConfig:
    """How the inference recording rules put every engine's telemetry into one schema (alerts/inference.py)."""
    rate_window: str = "5m"
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    # The windows of the SRE Workbook's multi-window, multi-burn-rate alerts.
    slo_windows: tuple[str, ...] = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    slo_interval: str = "1m"  # the SLO ratios over long windows are costly; they are evaluated this often
    slo_thresholds: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("request_duration", (1.0, 2.5, 5.0, 10.0)),
        ("time_to_first_token", (0.25, 0.5, 1.0, 2.5)),
    )
    # The engines (alerts/engines.py names) whose rules are recorded; empty for every one. Rules over engines
    # a fleet does not run cost little each, but there are dozens per engine.
    engines: tuple[str, ...] = ()


@dataclass(frozen=True)
class LatencySlo:
    """A latency objective: `objective` of requests (matched by `selector`) at or under `threshold`."""
    selector: str = 'model!=""'
    latency: str = "request_duration"
    threshold: float = 2.5
    objective: float = 0.99


@dataclass(frozen=True)
class InferenceConfig:
    slos: tuple[LatencySlo, ...] = (LatencySlo(),)
    # The SRE Workbook's multi-window, multi-burn-rate alerts: (urgency, long, short, burn rate, for).
    burn_rates: tuple[tuple[str, str, str, float, str], ...] = (
        ("page", "1h", "5m", 14.4, "2m"),
        ("page", "6h", "30m", 6.0, "15m"),
        ("ticket", "1d", "2h", 3.0, "1h"),
        ("ticket", "3d", "6h", 1.0, "3h"),
    )
    min_requests_per_second: float = 0.05  # below this, ratios are noise
    error_ratio: float = 0.05
    error_ratio_for: str = "10m"
    queue_p90_seconds: float = 5.0
    time_to_first_token_p90_seconds: float = 2.0
    latency_for: str = "15m"
    # Saturation, which warns before latency degrades.
    kv_cache_usage_ratio: float = 0.95  # of the fullest replica's KV cache
    kv_cache_for: str = "15m"
    preemptions_per_second: float = 0.05
    preemptions_for: str = "15m"
    queue_waiting: float = 10.0  # requests waiting, growing for queue_growing_for
    queue_growing_for: str = "15m"
    # A prefix-cache hit ratio fallen below this share of its own mean over the baseline window (serving_signals.py):
    # prompts recomputed that were cached, so time to first token and GPU time rise next.
    prefix_cache_collapse_factor: float = 0.5
    prefix_cache_baseline_window: str = "1d"
    prefix_cache_min_baseline: float = 0.1  # a baseline under this is no cache to lose
    prefix_cache_collapse_for: str = "15m"
    # A speculative-decoding acceptance ratio fallen below this share of its own mean over the baseline window
    # (serving_signals.py): the target model rejects most drafts, so drafting costs more GPU time than it saves.
    spec_decode_collapse_factor: float = 0.6
    spec_decode_baseline_window: str = "1d"
    spec_decode_min_baseline: float = 0.2  # a baseline under this is drafting already not worth its cost
    spec_decode_collapse_for: str = "15m"
    # Serving efficiency (efficiency.py): energy per output token against the model's own baseline...
    energy_per_token_factor: float = 1.3  # worse than the baseline by this factor
    energy_baseline_window: str = "7d"  # the baseline: the median over this window
    energy_per_token_for: str = "1h"
    # ...and serving GPUs kept nearly idle: over-provisioned replicas.
    underused_utilization: float = 0.1  # mean utilization of the model's GPUs over underused_window
    underused_window: str = "1h"
    underused_for: str = "6h"
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)


# Model-quality measures where lower is better: their objective is a maximum.
LOWER_IS_BETTER = ("mae", "rmse", "mape", "log_loss")
ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")  # what CBPE estimates


@dataclass(frozen=True)
class QualityObjective:
    """A quality objective for the models `selector` matches: `metric` (fleetscope_model_quality's label) at least
    `objective`, or at most for the errors (LOWER_IS_BETTER)."""
    selector: str = 'model!=""'
    metric: str = "accuracy"
    objective: float = 0.8


@dataclass(frozen=True)
class DriftConfig:
    detected_for: str = "30m"
    column_detected_for: str = "1h"
    evaluation_stale_after: str = "15m"
    evaluation_failing_for: str = "15m"
    rejected_ratio: float = 0.05
    rejected_for: str = "15m"
    service_down_for: str = "5m"
    client_dropping_for: str = "15m"
    # Data quality of the current window against the reference, per column.
    missing_ratio: float = 0.2
    new_category_ratio: float = 0.05
    out_of_range_ratio: float = 0.05
    quality_for: str = "30m"
    # Model quality (ground truth joined to outputs). One rule per objective: where a model has its own, narrow the
    # default's selector (model!~"fraud") so that one objective judges it.
    quality_objectives: tuple[QualityObjective, ...] = (QualityObjective(),)
    quality_objective_for: str = "30m"
    min_label_coverage: float = 0.05  # below this share of labelled outputs, realized quality is not judged
    label_coverage_for: str = "2h"
    labels_stopped_after: str = "6h"  # no label for this long while outputs arrive


@dataclass(frozen=True)
class SelfMonitoringConfig:
    """fleetscope watching itself: every process it runs serves process_* and fleetscope_build_info
    (fleetscope.self_metrics); these are the bounds its own alerts (alerts/self_monitoring.py) hold them to."""
    # The scrape interval of fleetscope's jobs (deploy/: 15s): a scrape taking most of it is about to time out.
    scrape_interval: str = "15s"
    scrape_duration_ratio: float = 0.8
    scrape_slow_for: str = "15m"
    restarts: int = 3  # process restarts within restart_window: a crash loop
    restart_window: str = "1h"
    # Resident memory against the bound each process runs under: deploy/kubernetes.py's container limits.
    exporter_memory_limit_bytes: float = 256 * 2**20
    drift_memory_limit_bytes: float = 2 * 2**30
    memory_ratio: float = 0.8
    memory_for: str = "15m"
    # The drift store against storage.max_bytes, while it deletes nothing (with storage.when_full: refuse, the
    # writes past it are refused with 507; with drop_oldest, eviction starting ends the alert).
    storage_ratio: float = 0.9
    storage_for: str = "30m"


@dataclass(frozen=True)
class TrainingConfig:
    """Training goodput (alerts/training.py), from the jobs' own pages (the training SDK)."""
    # Which scrape jobs are training jobs' pages, e.g. 'job="training"'; empty reads the training SDK's series
    # wherever they come from (only training jobs serve them).
    selector: str = ""
    goodput_objective: float = 0.9  # productive share of the ranks' time, averaged over goodput_window
    goodput_window: str = "1h"
    goodput_for: str = "30m"
    checkpoint_stale_after: str = "2h"  # no checkpoint saved (or, before the first, since the start) this long
    checkpoint_stale_for: str = "10m"
    step_time_ratio: float = 1.25  # mean step time over the median of the job's own over the baseline window
    step_time_baseline_window: str = "6h"
    step_time_min_baseline_samples: int = 30  # evaluations of the baseline before it is trusted
    step_time_for: str = "15m"
    stalled_after: str = "10m"  # no rank finished a step this long: stalled (and its time badput, not productive)
    stalled_for: str = "5m"
    # The node to blame (alerts/training.py, lemon nodes): per-node increments are recorded once per lemon_interval
    # (a rule group of that interval, so that they never overlap) and summed over 7 and 30 days. A job that
    # restarted is blamed on a node that ran one of its ranks and had a hardware XID within two increments.
    lemon_interval: str = "1h"
    # The lemon score over 30 days: each job the node failed or stalled counts lemon_job_weight, each job a
    # straggling rank on it slowed lemon_lag_weight, each hardware XID (gpu.xid_page, gpu.xid_ticket)
    # lemon_xid_weight, each increment in which the driver asked for a recovery action lemon_recovery_weight.
    lemon_job_weight: float = 1.0
    lemon_lag_weight: float = 0.25
    lemon_xid_weight: float = 0.25
    lemon_recovery_weight: float = 0.5
    lemon_score_threshold: float = 3.0  # e.g. three jobs failed or stalled in 30 days: propose the node for repair


@dataclass(frozen=True)
class RayConfig:
    """Ray's own cluster metrics (alerts/ray.py), scraped through Ray's discovery file or the KubeRay PodMonitor."""
    # A node that served its metrics within node_lost_window and serves none now, beyond the nodes the autoscaler
    # stopped in that window: it died. The alert lasts the window, as the lost node is forgotten after it.
    node_lost_window: str = "10m"
    node_lost_for: str = "1m"
    # Replicas the Serve controller started beyond the deployment's target, within replica_restart_window.
    replica_restarts: int = 3
    replica_restart_window: str = "30m"
    replica_restart_for: str = "5m"
    # Tasks waiting for a node that has the resources they ask for (PENDING_NODE_ASSIGNMENT).
    pending_tasks: float = 0.0  # more than this many...
    pending_for: str = "15m"  # ...at every evaluation for this long
    # Bytes a node's object store spills to disk per second, averaged over spill_window.
    spill_bytes_per_second: float = 0.0
    spill_window: str = "10m"
    spill_for: str = "15m"


@dataclass(frozen=True)
class Severities:
    """The `severity` label of each urgency. kube-prometheus-stack's and the mixins' words by default, so that
    routes keyed on critical page for fleetscope's alerts too, and its InfoInhibitor mutes our info alerts
    only where no warning or critical alert fires beside them, as it does its own."""
    page: str = "critical"
    ticket: str = "warning"
    info: str = "info"
    watchdog: str = "none"  # kube-prometheus-stack's Watchdog is severity none: no severity route takes it

    def of(self, urgency: str) -> str:
        return getattr(self, urgency)


@dataclass(frozen=True)
class Receivers:
    """Where each team's notifications go; every secret is a file Alertmanager reads. Write the files
    without a trailing newline (printf %s): Alertmanager 0.25 sends the Opsgenie key file's newline in
    the Authorization header, and Opsgenie refuses every notification."""
    secrets_dir: str = "/etc/alertmanager/secrets"  # <team>-pagerduty, <team>-opsgenie, <team>-slack
    webhook_url: str = "http://fleetscope-webhook.monitoring.svc:8080/alerts"
    webhook_token_file: str = "/etc/alertmanager/secrets/webhook-token"
    slack_channel_prefix: str = "#alerts-"
    # A dead man's switch outside this cluster (healthchecks.io, Dead Man's Snitch, PagerDuty's heartbeat...)
    # that raises its own alarm when FleetscopeWatchdog stops arriving. Empty: the Watchdog is routed to a
    # receiver that notifies nothing, as kube-prometheus-stack does, until one is set.
    watchdog_url: str = ""


@dataclass(frozen=True)
class Routing:
    # By host too: a second node's fault is a new incident, and pages, rather than joining one already open.
    group_by: tuple[str, ...] = ("alertname", "cluster", "team", "instance")
    group_wait: str = "30s"
    group_interval: str = "5m"
    watchdog_repeat_interval: str = "1m"  # how often the dead man's switch hears that all is well
    repeat_interval: dict[str, str] = field(default_factory=lambda: {"page": "4h", "ticket": "1d", "info": "3d"})
    # Alerts meaning a node is unreachable; they silence that node's GPU alerts.
    node_down_alerts: tuple[str, ...] = ("FleetscopeExporterDown",)
    receivers: Receivers = field(default_factory=Receivers)
    # Alertmanager's `global` section as is, e.g. {pagerduty_url: https://events.eu.pagerduty.com/v2/enqueue}.
    global_settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringConfig:
    # Where every alert's runbook_url points: <runbook_url>/<alertname>.md. The default is the runbooks' path in
    # the repository and in the installed package (`fleetscope runbook NAME` prints one, offline); set your wiki or
    # your fork's URL, e.g. https://git.example.com/fleetscope/blob/v0.1.0/alerts/runbooks (docs/alerts.md).
    runbook_url: str = "alerts/runbooks"
    # Where on-call opens Grafana: every alert's dashboard_url links to its dashboard there, on its host or model.
    grafana_url: str = "http://localhost:3000"
    kubernetes_namespace: str = "monitoring"
    # kube-prometheus-stack's Prometheus picks up PrometheusRules labelled with its release name.
    prometheus_rule_labels: dict[str, str] = field(default_factory=lambda: {"release": "kube-prometheus-stack"})
    selectors: Selectors = field(default_factory=Selectors)
    severities: Severities = field(default_factory=Severities)
    teams: dict[str, str] = field(default_factory=lambda: {
        "exporter": "gpu-infra", "gpu": "gpu-infra", "fabric": "gpu-infra", "waste": "ml-platform",
        "nccl": "ml-platform", "serving": "serving", "drift": "ml-platform", "training": "ml-platform",
        "ray": "ml-platform"})
    exporter: ExporterConfig = field(default_factory=ExporterConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    waste: WasteConfig = field(default_factory=WasteConfig)
    nccl: NcclConfig = field(default_factory=NcclConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    self_monitoring: SelfMonitoringConfig = field(default_factory=SelfMonitoringConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    routing: Routing = field(default_factory=Routing)

    def __post_init__(self) -> None:
        check(self)

    def team(self, area: str) -> str:
        return self.teams[area]


def load(path: str | Path | None) -> MonitoringConfig:
    """The defaults, with what a YAML file sets over them; ConfigError naming the setting otherwise."""
    if path is None:
        return MonitoringConfig()
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read alerts config {path}: {error}") from None
    return from_mapping(document)


def from_mapping(document: Any) -> MonitoringConfig:
    return _build(MonitoringConfig, document, "")


def _build(cls: type, document: Any, where: str) -> Any:
    if not isinstance(document, dict):
        raise ConfigError(f"{where or 'the alerts config'} must be a mapping, got {type(document).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = set(fields)
    unknown = sorted(set(document) - names)
    if unknown:
        raise ConfigError(f"unknown setting {_join(where, unknown[0])}: known are {', '.join(sorted(names))}")
    values = {name: _value(hints[name], value, _join(where, name)) for name, value in document.items()}
    for name, value in values.items():
        if isinstance(value, dict):  # a mapping (teams, repeat intervals) adds to its defaults
            default = fields[name].default_factory
            values[name] = {**(default() if callable(default) else {}), **value}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'alerts config'}: {error}") from None


def _value(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0]
        if len(args) != 2 or args[1] is not Ellipsis:  # a fixed-length tuple, such as a burn-rate row
            if len(value) != len(args):
                raise ConfigError(f"{where} must have {len(args)} items, got {value!r}")
            return tuple(_value(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, value, strict=True)))
        return tuple(_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {str(k): _value(typing.get_args(hint)[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str) and type(value) is hint:
        return value
    if hint is float or hint in (int, str):
        raise ConfigError(f"{where} must be a {hint.__name__}, got {value!r}")
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check(config: MonitoringConfig) -> None:
    """Raises ConfigError for values no rule can use. What only the alerts know (the engines, the latencies their
    schema records) is checked by the alerts generator (alerts/checks.py)."""
    for section in (config.exporter, config.gpu, config.waste, config.nccl, config.fabric, config.inference,
                    config.drift, config.self_monitoring, config.training, config.ray):
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if f.name.endswith(("_for", "_window", "_within", "_after", "_interval")) and isinstance(value, str):
                _duration(value, f"{type(section).__name__}.{f.name}")
    for severity, long, short, rate, for_ in config.inference.burn_rates:
        if severity not in URGENCIES:
            raise ConfigError(f"inference.burn_rates: urgency {severity!r} is not one of {', '.join(URGENCIES)}")
        for window in (long, short):
            if window not in config.inference.normalization.slo_windows:
                raise ConfigError(f"inference.burn_rates: window {window} has no recorded SLO ratio; recorded are "
                                  f"{', '.join(config.inference.normalization.slo_windows)}")
        if not rate > 0:
            raise ConfigError(f"inference.burn_rates: burn rate must be above 0, got {rate}")
        _duration(for_, "inference.burn_rates")
    for slo in config.inference.slos:
        if not 0 < slo.objective < 1:
            raise ConfigError(f"inference.slos: objective must be between 0 and 1, got {slo.objective}")
    for objective in config.drift.quality_objectives:
        if objective.metric not in ("accuracy", "precision", "recall", "f1", "roc_auc", "r2") + LOWER_IS_BETTER:
            raise ConfigError(f"drift.quality_objectives: metric {objective.metric!r} is not one "
                              "fleetscope_model_quality serves with a direction (accuracy, precision, recall, f1, "
                              "roc_auc, r2, mae, rmse, mape, log_loss)")
    _duration(config.self_monitoring.scrape_interval, "SelfMonitoringConfig.scrape_interval")
    for name in ("scrape_duration_ratio", "memory_ratio", "storage_ratio"):
        if not 0 < getattr(config.self_monitoring, name) <= 1:
            raise ConfigError(f"self_monitoring.{name} must be a share above 0, at most 1")
    for name in ("prefix_cache_collapse_factor", "prefix_cache_min_baseline", "spec_decode_collapse_factor",
                 "spec_decode_min_baseline"):
        share = getattr(config.inference, name)
        if not 0 < share < 1:  # NaN fails too
            raise ConfigError(f"inference.{name} must be a share between 0 and 1, got {share}")
    if not 0 <= config.drift.min_label_coverage <= 1:
        raise ConfigError("drift.min_label_coverage must be a share from 0 to 1")
    if config.ray.replica_restarts < 1 or config.ray.pending_tasks < 0 or config.ray.spill_bytes_per_second < 0:
        raise ConfigError("ray: replica_restarts must be at least 1, pending_tasks and spill_bytes_per_second "
                          "at least 0")
    if not 0 < config.training.goodput_objective < 1:
        raise ConfigError("training.goodput_objective must be a share between 0 and 1")
    for name in ("lemon_job_weight", "lemon_lag_weight", "lemon_xid_weight", "lemon_recovery_weight"):
        if not getattr(config.training, name) >= 0:
            raise ConfigError(f"training.{name} must be a weight of 0 or more")
    if not config.training.lemon_score_threshold > 0:
        raise ConfigError("training.lemon_score_threshold must be above 0")
    missing = {"exporter", "gpu", "fabric", "waste", "nccl", "serving", "drift", "training", "ray"} - set(config.teams)
    if missing:
        raise ConfigError(f"teams: no team for {', '.join(sorted(missing))}")
    for name, team in config.teams.items():
        if not team or not team.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"teams.{name}: {team!r} must be letters, digits, '-' or '_'")
    for urgency in URGENCIES:
        if urgency not in config.routing.repeat_interval:
            raise ConfigError(f"routing.repeat_interval: no interval for {urgency}")
        _duration(config.routing.repeat_interval[urgency], f"routing.repeat_interval.{urgency}")
    for name in ("group_wait", "group_interval", "watchdog_repeat_interval"):
        _duration(getattr(config.routing, name), f"routing.{name}")
    labels = [config.severities.of(urgency) for urgency in URGENCIES + (WATCHDOG,)]
    if len(set(labels)) != len(labels) or not all(label.isidentifier() for label in labels):
        raise ConfigError(f"severities: {', '.join(labels)} must be distinct words")


def _duration(text: str, where: str) -> None:
    try:
        durations.parse(text)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
