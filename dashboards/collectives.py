"""Collectives and fabric: NCCL bus bandwidth by job, operation and message size, rank skew
and stragglers, progress, and the InfiniBand/RoCE ports underneath."""

from fleetscope.alerts import collectives as records
from fleetscope.dashboards.build import (
    RATE,
    Query,
    Row,
    dashboard,
    datasource_variable,
    events_panel,
    label_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import TITLES, UIDS, links_except, m
from fleetscope.exporters.catalog import fabric, nccl
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.matchers import matchers

JOB_FILTERS = 'cluster=~"$cluster",comm_name=~"$comm"'
HOST_FILTERS = 'cluster=~"$cluster",hostname=~"$hostname"'  # one node: the variable has no All
PORT = "{{device}}/{{port}}"
TOP = records.TOP  # nodes shown in the fleet-wide per-node panels: the extremes, not a line per node


def _recorded(record: str, filters: str) -> str:
    return f"{record}{{{filters}}}"


def _bus_bandwidth(by: str) -> str:
    """Bus bytes over the time spent in collectives: NCCL's busbw, averaged over the job's ranks."""
    return (f"sum by ({by}) ({_recorded(records.BUS_BYTES, JOB_FILTERS)}) / "
            f"sum by ({by}) ({_recorded(records.BUSY_SECONDS, JOB_FILTERS)})")


def _duration(quantile: float) -> Query:
    return Query(f"histogram_quantile({quantile:g}, sum by (le, comm_name, operation) "
                 f"({_recorded(records.DURATION_BUCKETS, JOB_FILTERS)}))",
                 f"p{quantile * 100:g} {{{{comm_name}}}} {{{{operation}}}}")


def build(config: MonitoringConfig | None = None) -> dict:
    """The jobs' and the fleet's panels read the records of alerts/collectives.py, so that their cost follows jobs
    and nodes, not ranks and ports; the last row reads the raw series of the one node chosen."""
    exporter = (config or MonitoringConfig()).selectors.exporter
    host, job_on_host = matchers(exporter, HOST_FILTERS), matchers(exporter, HOST_FILTERS, 'comm_name=~"$comm"')
    in_cluster = 'cluster=~"$cluster"'
    bandwidth = Row("Bus bandwidth", [
        timeseries_panel("Bus bandwidth by job and operation", "NCCL bus bandwidth (busbw): bus bytes over time "
                                                               "spent, averaged over the job's ranks (5m rate).",
                         "Bps", Query(_bus_bandwidth("comm_name, operation"), "{{comm_name}} {{operation}}")),
        timeseries_panel("Bus bandwidth by message size", "Bus bandwidth per message-size bucket; small messages "
                                                          "are latency-bound.", "Bps",
                         Query(_bus_bandwidth("operation, size"), "{{operation}} {{size}}")),
        timeseries_panel("Collectives per second", "Collectives completed per second, by job and operation, over "
                                                   "all their ranks.", "ops",
                         Query(f"sum by (comm_name, operation) ({_recorded(records.COLLECTIVES, JOB_FILTERS)})",
                               "{{comm_name}} {{operation}}")),
        timeseries_panel("Collective duration p50 and p99", "Time per collective from the duration histogram, over "
                                                            "all the job's ranks.", "s",
                         _duration(0.5), _duration(0.99)),
    ])
    skew = Row("Rank skew and stragglers", [
        timeseries_panel("Skew between ranks", "Spread of the ranks' arrival at the same collective, on the job's "
                                               "worst node: high skew means some rank holds the others up.", "s",
                         Query(f"max by (comm_name) ({_recorded(records.SKEW, JOB_FILTERS)})", "{{comm_name}}")),
        timeseries_panel(f"Latest nodes ({TOP})", f"The {TOP} nodes whose latest rank arrives furthest behind its "
                                                  "node's median rank, by job.", "s",
                         Query(f"topk({TOP}, {_recorded(records.NODE_LATEST, JOB_FILTERS)})",
                               "{{hostname}} {{comm_name}}"), links=[("Node / GPU detail", f"/d/{UIDS['gpu']}")]),
        table_panel("Stragglers", f"The {records.STRAGGLERS_SHOWN} latest ranks of each job now, latest first.", "s",
                    Query(f"topk by (comm_name) ({records.STRAGGLERS_SHOWN}, "
                          f"{_recorded(records.STRAGGLERS, JOB_FILTERS)})", "lateness"),
                    columns=["comm_name", "hostname", "rank"]),
        timeseries_panel("Time since last progress", "Seconds since each job last completed a collective on its "
                                                     "least recent node; a steady climb is a hang.", "s",
                         Query(f"time() - min by (comm_name) ({_recorded(records.OLDEST_PROGRESS, JOB_FILTERS)})",
                               "{{comm_name}}"), min=0),
    ])
    fabric_fleet = Row("Fabric", [
        timeseries_panel("Fabric throughput by cluster", "Bytes per second through every InfiniBand/RoCE port of "
                                                         "each cluster, transmitted (+) and received (-).", "Bps",
                         Query(_recorded(records.CLUSTER_FABRIC_TRANSMIT, in_cluster), "{{cluster}} tx"),
                         Query(f"-{_recorded(records.CLUSTER_FABRIC_RECEIVE, in_cluster)}", "{{cluster}} rx")),
        timeseries_panel(f"Busiest ports ({TOP} nodes)", f"The {TOP} nodes with the busiest port: its throughput "
                                                         "over its link rate, in the busier direction.",
                         "percentunit", Query(f"topk({TOP}, {_recorded(records.NODE_FABRIC_BUSIEST, in_cluster)})",
                                              "{{hostname}}"), min=0, max=1),
        timeseries_panel(f"Port errors ({TOP} nodes)", f"The {TOP} nodes counting the most port errors per second, "
                                                       "symbol errors included.", "none",
                         Query(f"topk({TOP}, {_recorded(records.NODE_FABRIC_NOISIEST, in_cluster)})", "{{hostname}}"),
                         min=0),
        stat_panel("Ports down", "Ports that have been active and are not now: the ports "
                                 "FleetscopeFabricPortDown alerts on.",
                   "none", Query(f"sum({_recorded(records.CLUSTER_PORTS_DOWN, in_cluster)}) or vector(0)"),
                   thresholds=[(1, "red")], width=12, height=8),
    ])
    ports = Row("Ranks and fabric ports of $hostname", [
        timeseries_panel("Lateness by rank", "How far each rank's GPU on this node arrives behind the node's median "
                                             "local rank: from its kernels' start times in verbose Inspector dumps, "
                                             "else from how little it waits.", "s",
                         Query(m(nccl.LATENESS, job_on_host), "{{comm_name}} rank {{rank}}")),
        timeseries_panel("Port throughput", "Bytes per second through each InfiniBand/RoCE port of this node, "
                                            "transmitted (+) and received (-).", "Bps",
                         Query(f"rate({m(fabric.TRANSMIT_BYTES, host)}[{RATE}])", PORT + " tx"),
                         Query(f"-rate({m(fabric.RECEIVE_BYTES, host)}[{RATE}])", PORT + " rx")),
        timeseries_panel("Port utilization", "Throughput over the port's link rate, in the busier direction.",
                         "percentunit",
                         Query(records.busier_direction("device, port",
                                                        f"rate({m(fabric.TRANSMIT_BYTES, host)}[{RATE}])",
                                                        f"rate({m(fabric.RECEIVE_BYTES, host)}[{RATE}])")
                               + f" / max by (device, port) ({m(fabric.PORT_RATE, host)})", PORT),
                         min=0, max=1),
        timeseries_panel("Port errors", "Port error counters per second, by type.", "none",
                         Query(f"sum by (device, port, type) (rate({m(fabric.ERRORS, host)}[{RATE}]))",
                               PORT + " {{type}}"),
                         Query(f"rate({m(fabric.SYMBOL_ERRORS, host)}[{RATE}])", PORT + " symbol")),
        events_panel("Link down and recoveries", "Times each port's link went down or recovered from errors.",
                     Query(f"round(increase({m(fabric.LINK_DOWNED, host)}[$__interval]))", PORT + " down"),
                     Query(f"round(increase({m(fabric.LINK_ERROR_RECOVERIES, host)}[$__interval]))",
                           PORT + " recovered"), width=24),
    ])
    variables = [datasource_variable(), label_variable("cluster", "Cluster", nccl.COMM_RANKS.name, exporter),
                 label_variable("comm", "Job (communicator)", nccl.COMM_RANKS.name,
                                matchers(exporter, in_cluster), label_name="comm_name"),
                 label_variable("hostname", "Host", fabric.PORT_STATE.name, matchers(exporter, in_cluster),
                                one=True)]  # the node shown in detail in the last row
    return dashboard(UIDS["collectives"], TITLES["collectives"],
                     "NCCL collectives by job, operation and message size: bus bandwidth, duration, skew, "
                     "stragglers and progress; the fabric across the fleet; and one node's ranks and ports in "
                     "detail.", variables, [bandwidth, skew, fabric_fleet, ports], links_except("collectives"))
