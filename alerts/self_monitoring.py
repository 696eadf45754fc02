"""Alerts on fleetscope's own processes: scrapes nearing their interval, crash loops, memory near the bound each
runs under, and the drift store filling. Every fleetscope process serves fleetscope_build_info beside its process_*
series (fleetscope.self_metrics), so `and on (job, instance)` it picks fleetscope's processes out of every job's."""

from __future__ import annotations

from fleetscope import self_metrics
from fleetscope.alerts.rule import Alert, group, seconds
from fleetscope.drift import catalog as drift
from fleetscope.mixin.config import MonitoringConfig

OURS = f"and on (job, instance) {self_metrics.BUILD_INFO.name}"
_HEADROOM = "{{ $value | humanize1024 }}B resident"


def process_alerts(config: MonitoringConfig) -> list[Alert]:
    c, e = config.self_monitoring, config.selectors.exporter
    slow = c.scrape_duration_ratio * float(seconds(c.scrape_interval))
    return [
        Alert("FleetscopeScrapeSlow", f"scrape_duration_seconds > {slow:g}\n{OURS}", "ticket", for_=c.scrape_slow_for,
              summary="Scraping {{ $labels.instance }} ({{ $labels.job }}) takes {{ $value | humanizeDuration }}",
              description=f"Each scrape of {{{{ $labels.instance }}}} has taken over {slow:g}s for "
                          f"{c.scrape_slow_for}, {c.scrape_duration_ratio:.0%} of the {c.scrape_interval} scrape "
                          "interval: scrapes are about to time out, and a timed-out scrape marks every series of "
                          "the target stale."),
        Alert("FleetscopeProcessRestarting",
              f"changes({self_metrics.PROCESS_START_TIME}[{c.restart_window}]) >= {c.restarts}\n{OURS}", "ticket",
              summary="{{ $labels.job }} on {{ $labels.instance }} restarted {{ $value }} times in "
                      f"{c.restart_window}",
              description="The fleetscope process behind {{ $labels.instance }} (job {{ $labels.job }}) started "
                          f"{{{{ $value }}}} times in {c.restart_window}: it is crash-looping or being killed "
                          "(out of memory, a failing probe); what it serves has gaps."),
        _memory("FleetscopeExporterMemoryHigh", "exporter", e, c.exporter_memory_limit_bytes, config),
    ]


def drift_service_alerts(config: MonitoringConfig) -> list[Alert]:
    c, s = config.self_monitoring, config.selectors.drift_service
    used = drift.STORAGE_USED.select(s)
    limit = drift.STORAGE_LIMIT.select(s, 'scope="store"')
    evicted = drift.STORAGE_EVICTED.select(s)
    return [
        _memory("FleetscopeDriftServiceMemoryHigh", "drift service", s, c.drift_memory_limit_bytes, config),
        Alert("FleetscopeDriftServiceStorageNearFull",
              f"(\n  {used}\n  / on (job, instance)\n  {limit}\n  > {c.storage_ratio:g}\n)\n"
              f"unless on (job, instance)\n(sum by (job, instance) (increase({evicted}[{c.storage_for}])) > 0)",
              "ticket", for_=c.storage_for,
              summary="The drift store on {{ $labels.instance }} is {{ $value | humanizePercentage }} full",
              description="The drift service on {{ $labels.instance }} holds {{ $value | humanizePercentage }} of "
                          f"storage.max_bytes and has deleted nothing for {c.storage_for}: past the limit, writes "
                          "are refused with 507 (storage.when_full: refuse) and model servers' drift clients drop "
                          "rows."),
    ]


def _memory(name: str, what: str, selector: str, limit: float, config: MonitoringConfig) -> Alert:
    c = config.self_monitoring
    bound = c.memory_ratio * limit
    return Alert(name, f"{self_metrics.PROCESS_RESIDENT_MEMORY}{{{selector}}} > {bound:.0f}", "ticket",
                 for_=c.memory_for,
                 summary=f"The {what} on {{{{ $labels.instance }}}} is near its memory limit",
                 description=f"The {what} on {{{{ $labels.instance }}}} has held {_HEADROOM}, over "
                             f"{c.memory_ratio:.0%} of the {_size(limit)} it runs under, for "
                             f"{c.memory_for}: next it is killed for memory and restarts.")


def _size(limit: float) -> str:
    return f"{limit / 2**30:g} GiB" if limit >= 2**30 else f"{limit / 2**20:g} MiB"


def rule_groups(config: MonitoringConfig) -> dict:
    return {"groups": [
        group("fleetscope-self", config.team("exporter"), config, process_alerts(config), "self"),
        group("fleetscope-self-drift", config.team("drift"), config, drift_service_alerts(config), "self"),
    ]}
