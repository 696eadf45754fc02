"""fleetscope itself: which versions run where, each process's uptime, memory, CPU and file descriptors, how long
scrapes of it take, and the drift store's fill. Every fleetscope process serves fleetscope_build_info beside
prometheus_client's process_* and python_* series (fleetscope.self_metrics), so the job variable offers exactly
fleetscope's jobs, whatever they are called."""

from fleetscope import durations, self_metrics
from fleetscope.dashboards.build import (
    RATE,
    Query,
    Row,
    dashboard,
    datasource_variable,
    label_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import TITLES, UIDS, links_except, m
from fleetscope.drift import catalog as drift
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.matchers import matchers

BUILD_INFO = self_metrics.BUILD_INFO.name
PROCESS = 'cluster=~"$cluster",job=~"$job",instance=~"$instance"'
LEGEND = "{{job}} {{instance}}"


def build(config: MonitoringConfig | None = None) -> dict:
    config = config or MonitoringConfig()
    c = config.self_monitoring
    slow = c.scrape_duration_ratio * durations.parse(c.scrape_interval)
    processes = Row("Processes", [
        stat_panel("Processes", "fleetscope processes Prometheus scrapes: exporters, drift service instances, "
                                "remediators and model servers.", "none", Query(f"count({BUILD_INFO}{{{PROCESS}}})"),
                   width=6),
        table_panel("Versions", "Processes by service (scrape job), fleetscope version and Python version: a "
                                "rollout half done shows two versions of one service.", "none",
                    # `job` shown as `service`: a table shows named columns, never raw target labels
                    Query(f'label_replace(count by (job, version, python_version) ({BUILD_INFO}{{{PROCESS}}}), '
                          f'"service", "$1", "job", "(.*)")', "processes"),
                    columns=["service", "version", "python_version"], decimals=0, width=18),
        timeseries_panel("Uptime", "Time since each process started; a fall to zero is a restart "
                                   "(FleetscopeProcessRestarting counts them).", "s",
                         Query(f"time() - {self_metrics.PROCESS_START_TIME}{{{PROCESS}}}", LEGEND), min=0),
        timeseries_panel("Scrape duration", f"How long Prometheus takes to scrape each process; past {slow:g}s "
                                            f"({c.scrape_duration_ratio:.0%} of the {c.scrape_interval} interval) "
                                            "FleetscopeScrapeSlow opens a ticket.", "s",
                         Query(f"scrape_duration_seconds{{{PROCESS}}}", LEGEND), min=0,
                         thresholds=[(slow, "orange")]),
    ])
    resources = Row("Resources", [
        timeseries_panel("Resident memory", "Memory each process holds in RAM (RSS). The exporter runs under "
                                            f"{c.exporter_memory_limit_bytes / 2**20:g} MiB and the drift service "
                                            f"under {c.drift_memory_limit_bytes / 2**20:g} MiB "
                                            "(self_monitoring.*_memory_limit_bytes).", "bytes",
                         Query(f"{self_metrics.PROCESS_RESIDENT_MEMORY}{{{PROCESS}}}", LEGEND), min=0),
        timeseries_panel("CPU", "CPU time each process uses per second: 1 is one core busy.", "percentunit",
                         Query(f"rate({self_metrics.PROCESS_CPU}{{{PROCESS}}}[{RATE}])", LEGEND), min=0),
        timeseries_panel("File descriptors used", "Open file descriptors (connections, the drift store's files) "
                                                  "as a share of the process's limit.", "percentunit",
                         Query(f"{self_metrics.PROCESS_OPEN_FDS}{{{PROCESS}}} / "
                               f"{self_metrics.PROCESS_MAX_FDS}{{{PROCESS}}}", LEGEND), min=0, max=1),
        timeseries_panel("Garbage collections", "Python's garbage collections per second, by generation: a "
                                                "process collecting generation 2 often is allocating hard.", "ops",
                         Query(f"sum by (job, instance, generation) "
                               f"(rate(python_gc_collections_total{{{PROCESS}}}[{RATE}]))",
                               "{{job}} {{instance}} gen {{generation}}"), min=0),
    ])
    store = matchers(config.selectors.drift_service, 'cluster=~"$cluster",instance=~"$instance"')
    whole_store = matchers(store, 'scope="store"')
    storage = Row("Drift store", [
        timeseries_panel("Drift store used", "The drift store's bytes as a share of storage.max_bytes; past "
                                             f"{c.storage_ratio:.0%} while nothing is evicted, "
                                             "FleetscopeDriftServiceStorageNearFull opens a ticket.", "percentunit",
                         Query(f"{m(drift.STORAGE_USED, store)} / on (job, instance) "
                               f"{m(drift.STORAGE_LIMIT, whole_store)}", "{{instance}}"),
                         min=0, max=1, thresholds=[(c.storage_ratio, "orange")], width=24),
    ])
    variables = [datasource_variable(), label_variable("cluster", "Cluster", BUILD_INFO),
                 label_variable("job", "Job", BUILD_INFO, 'cluster=~"$cluster"'),
                 label_variable("instance", "Instance", BUILD_INFO, 'cluster=~"$cluster",job=~"$job"')]
    return dashboard(UIDS["self"], TITLES["self"],
                     "fleetscope watching itself: versions, uptime and restarts, memory, CPU and file descriptors "
                     "of every fleetscope process, how long scrapes of them take, and the drift store's fill.",
                     variables, [processes, resources, storage], links_except("self"))
