"""Collectives and fabric: NCCL bus bandwidth by job, operation and message size, rank skew
and stragglers, progress, and the InfiniBand/RoCE ports underneath."""

from fleetscope.alerts.config import AlertsConfig
from fleetscope.alerts.rule import matchers
from fleetscope.dashboards.build import (
    RATE,
    Query,
    Row,
    dashboard,
    datasource_variable,
    events_panel,
    label_variable,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import NODE_FILTERS, TITLES, UIDS, links_except, m
from fleetscope.exporters.catalog import fabric, nccl

COMM_FILTERS = NODE_FILTERS + ',comm_name=~"$comm"'
PORT = "{{hostname}} {{device}}/{{port}}"


def _bus_bandwidth(by: str, comm: str) -> str:
    """Bus bytes over the time spent in collectives: NCCL's busbw, averaged over ranks."""
    return (f"sum by ({by}) (rate({m(nccl.BUS_BYTES, comm)}[{RATE}])) / "
            f"sum by ({by}) (rate({m(nccl.SECONDS, comm)}[{RATE}]))")


def build(config: AlertsConfig | None = None) -> dict:
    exporter = (config or AlertsConfig()).selectors.exporter
    node, comm = matchers(exporter, NODE_FILTERS), matchers(exporter, COMM_FILTERS)
    bandwidth = Row("Bus bandwidth", [
        timeseries_panel("Bus bandwidth by job and operation", "NCCL bus bandwidth (busbw): bus bytes over time "
                                                               "spent, averaged over the job's ranks.", "Bps",
                         Query(_bus_bandwidth("comm_name, operation", comm), "{{comm_name}} {{operation}}")),
        timeseries_panel("Bus bandwidth by message size", "Bus bandwidth per message-size bucket; small messages "
                                                          "are latency-bound.", "Bps",
                         Query(_bus_bandwidth("operation, size", comm), "{{operation}} {{size}}")),
        timeseries_panel("Collectives per second", "Collectives completed per second, by job and operation.",
                         "ops", Query(f"sum by (comm_name, operation) (rate({m(nccl.COLLECTIVES, comm)}[{RATE}]))",
                                      "{{comm_name}} {{operation}}")),
        timeseries_panel("Collective duration p50 and p99", "Time per collective from the duration histogram.",
                         "s", Query("histogram_quantile(0.5, sum by (le, comm_name, operation) "
                                    f"(rate({m(nccl.DURATION, comm, '_bucket')}[{RATE}])))",
                                    "p50 {{comm_name}} {{operation}}"),
                         Query("histogram_quantile(0.99, sum by (le, comm_name, operation) "
                               f"(rate({m(nccl.DURATION, comm, '_bucket')}[{RATE}])))",
                               "p99 {{comm_name}} {{operation}}")),
    ])
    skew = Row("Rank skew and stragglers", [
        timeseries_panel("Skew between ranks", "Spread of the ranks' arrival at the same collective: high skew "
                                               "means some rank holds the others up.", "s",
                         Query(m(nccl.SKEW, comm), "{{comm_name}}")),
        timeseries_panel("Lateness by rank", "How far each rank's GPU arrives behind the median local rank: from "
                                             "its kernels' start times in verbose Inspector dumps, else from how "
                                             "little it waits.", "s",
                         Query(m(nccl.LATENESS, comm), "{{comm_name}} rank {{rank}}")),
        table_panel("Stragglers", "The five latest ranks of each job now, latest first.", "s",
                    Query(f"topk by (comm_name) (5, {m(nccl.LATENESS, comm)})", "lateness"),
                    columns=["comm_name", "hostname", "rank"]),
        timeseries_panel("Time since last progress", "Seconds since each job last completed a collective; a "
                                                     "steady climb is a hang.", "s",
                         Query(f"time() - {m(nccl.LAST_PROGRESS, comm)}", "{{comm_name}}"), min=0),
    ])
    ports = Row("Fabric ports", [
        timeseries_panel("Port throughput", "Bytes per second through each InfiniBand/RoCE port, transmitted (+) "
                                            "and received (-).", "Bps",
                         Query(f"rate({m(fabric.TRANSMIT_BYTES, node)}[{RATE}])", PORT + " tx"),
                         Query(f"-rate({m(fabric.RECEIVE_BYTES, node)}[{RATE}])", PORT + " rx")),
        timeseries_panel("Port utilization", "Throughput over the port's link rate, in the busier direction.",
                         "percentunit",
                         Query(f"max by (hostname, device, port) (\n"
                               f'  label_replace(rate({m(fabric.TRANSMIT_BYTES, node)}[{RATE}]), "direction", '
                               '"transmit", "", "")\n  or\n'
                               f'  label_replace(rate({m(fabric.RECEIVE_BYTES, node)}[{RATE}]), "direction", '
                               '"receive", "", "")\n) / '
                               f"max by (hostname, device, port) ({m(fabric.PORT_RATE, node)})", PORT),
                         min=0, max=1),
        timeseries_panel("Port errors", "Port error counters per second, by type.", "none",
                         Query(f"sum by (hostname, device, port, type) (rate({m(fabric.ERRORS, node)}[{RATE}]))",
                               PORT + " {{type}}"),
                         Query(f"rate({m(fabric.SYMBOL_ERRORS, node)}[{RATE}])", PORT + " symbol")),
        events_panel("Link down and recoveries", "Times each port's link went down or recovered from errors.",
                     Query(f"round(increase({m(fabric.LINK_DOWNED, node)}[$__interval]))", PORT + " down"),
                     Query(f"round(increase({m(fabric.LINK_ERROR_RECOVERIES, node)}[$__interval]))",
                           PORT + " recovered")),
    ])
    in_cluster = matchers(exporter, 'cluster=~"$cluster"')
    variables = [datasource_variable(), label_variable("cluster", "Cluster", nccl.COMM_RANKS.name, exporter),
                 label_variable("hostname", "Host", fabric.PORT_STATE.name, in_cluster),
                 label_variable("comm", "Job (communicator)", nccl.COMM_RANKS.name, in_cluster,
                                label_name="comm_name")]
    return dashboard(UIDS["collectives"], TITLES["collectives"],
                     "NCCL collectives by job, operation and message size: bus bandwidth, duration, skew, "
                     "stragglers and progress; and the fabric ports they run over.",
                     variables, [bandwidth, skew, ports], links_except("collectives"))
