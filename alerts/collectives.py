"""Alerts on NCCL collectives (bandwidth against their own baseline, stragglers, hangs) and on
the InfiniBand / RoCE fabric under them."""

from __future__ import annotations

from fleetscope.alerts.fleet import NODE, TOP
from fleetscope.alerts.rule import Alert, extremes, group, record, seconds
from fleetscope.exporters.catalog import fabric, gpu, nccl
from fleetscope.mixin.config import MonitoringConfig

# Job-wide records: every node's ranks of a communicator together, per operation and message size. The
# collectives dashboard reads these (and the per-node ones below), so that its cost follows jobs and nodes, not
# ranks and ports; the raw series are read for the one node it shows in detail.
_JOB = "cluster, comm_id, comm_name, operation, size"
_COMMUNICATOR = "cluster, comm_id, comm_name"
BUS_BYTES = "fleetscope:nccl_bus_bytes:rate5m"
BUSY_SECONDS = "fleetscope:nccl_seconds:rate5m"
BUS_BANDWIDTH = "fleetscope:nccl_bus_bandwidth_bytes_per_second:rate5m"
COLLECTIVES = "fleetscope:nccl_collectives:rate5m"
DURATION_BUCKETS = "fleetscope:nccl_duration_seconds_bucket:rate5m"
SKEW = "fleetscope:nccl_comm_skew_seconds:max"  # the node with the worst skew
OLDEST_PROGRESS = "fleetscope:nccl_comm_last_progress_timestamp_seconds:min"  # the node that progressed least recently
NODE_LATENESS = "fleetscope:node_nccl_rank_lateness_seconds:max"  # by NODE and communicator: its latest rank
# Hangs named: in a communicator no node has seen progress in for nccl.hang_after, the ranks at the lowest sequence
# number of an operation, valued by how many of it they are behind the furthest rank, with their hostname: the rank
# the others wait on. Absent where the ranks agree (a hang inside one collective leaves them equal: nothing to name).
LAGGING_RANK = "fleetscope:nccl_comm_lagging_rank:behind"
# Each communicator's latest nodes and latest ranks (per communicator, so that a panel filtered to some jobs
# still finds its top ones there), and each cluster's busiest and noisiest nodes: the extremes panels read these.
NODE_LATEST = "fleetscope:node_nccl_rank_lateness_seconds:max_top10"
STRAGGLERS = "fleetscope:nccl_rank_lateness_seconds:top5"
STRAGGLERS_SHOWN = 5
# Per node: the fabric's throughput, its busiest port in the busier direction, and its port errors by type.
NODE_FABRIC_TRANSMIT = "fleetscope:node_fabric_transmit_bytes:rate5m"
NODE_FABRIC_RECEIVE = "fleetscope:node_fabric_receive_bytes:rate5m"
NODE_FABRIC_UTILIZATION = "fleetscope:node_fabric_port_utilization_ratio:max"
NODE_FABRIC_ERRORS = "fleetscope:node_fabric_port_errors:rate5m"
NODE_FABRIC_BUSIEST = "fleetscope:node_fabric_port_utilization_ratio:max_top10"
NODE_FABRIC_NOISIEST = "fleetscope:node_fabric_port_errors:rate5m_top10"  # all types together
CLUSTER_FABRIC_TRANSMIT = "fleetscope:cluster_fabric_transmit_bytes:rate5m"
CLUSTER_FABRIC_RECEIVE = "fleetscope:cluster_fabric_receive_bytes:rate5m"
CLUSTER_PORTS_DOWN = "fleetscope:cluster_fabric_ports_down:count"
_COMM = "communicator {{ $labels.comm_name }} ({{ $labels.comm_id }})"
_PORT = "port {{ $labels.device }}/{{ $labels.port }} of {{ $labels.hostname }}"
ACTIVE = 4  # fabric.PORT_STATE: 1 down, 2 init, 3 armed, 4 active, 5 active deferred
# 1 for every port that has been active, remembered while its exporter has been scraped within the baseline window:
# a rule that reads its own last value, so a port that went down stays down until it is active again.
PORT_EXPECTED_ACTIVE = "fleetscope:fabric_port:expected_active"


def nccl_alerts(config: MonitoringConfig) -> list[Alert]:
    e, n = config.selectors.exporter, config.nccl
    baseline = f"quantile_over_time(0.5, {BUS_BANDWIDTH}[{n.bandwidth_baseline_window}])"
    gpu_processes = f"count by (cluster, instance) ({gpu.PROCESS_MEMORY.select(e)})"
    return [
        Alert("FleetscopeNCCLBusBandwidthLow",
              f"{BUS_BANDWIDTH} / {baseline} < {n.bandwidth_ratio:g}\n"
              f"and\ncount_over_time({BUS_BANDWIDTH}[{n.bandwidth_baseline_window}]) >= "
              f"{n.bandwidth_min_baseline_samples}", "ticket", for_=n.bandwidth_for,
              summary="{{ $labels.operation }} bus bandwidth of {{ $labels.comm_name }} fell below its baseline",
              description=f"{{{{ $labels.operation }}}} ({{{{ $labels.size }}}} messages) on {_COMM} runs at "
                          f"{{{{ $value | humanizePercentage }}}} of its median bus bandwidth over the last "
                          f"{n.bandwidth_baseline_window}. A slow link, a throttled GPU or a straggling rank slows "
                          "every rank of the job."),
        Alert("FleetscopeNCCLStragglerRank", f"{nccl.LATENESS.select(e)} > {n.straggler_lateness_seconds:g}",
              "ticket", for_=n.straggler_for,
              summary="Rank {{ $labels.rank }} of {{ $labels.comm_name }} on {{ $labels.hostname }} straggles",
              description=f"Rank {{{{ $labels.rank }}}} of {_COMM} on {{{{ $labels.hostname }}}} arrives at "
                          "collectives {{ $value | humanizeDuration }} later than the node's median rank, on "
                          f"average, for {n.straggler_for}; every other rank waits for it."),
        Alert("FleetscopeNCCLNoProgress",
              f"time() - {nccl.LAST_PROGRESS.select(e)} > {seconds(n.hang_after)}\n"
              f"and on (cluster, instance)\n{gpu_processes} > 0", "page", for_=n.no_progress_for,
              summary="{{ $labels.comm_name }} has completed no collective for {{ $value | humanizeDuration }}",
              description=f"No rank of {_COMM} on {{{{ $labels.hostname }}}} has completed an operation for "
                          "{{ $value | humanizeDuration }}, while processes still hold that node's GPUs: the job "
                          f"is most likely hung in a collective.{_lagging_ranks()}"),
        Alert("FleetscopeNCCLHung", f"{nccl.RAS_HUNG.select(e)} == 1", "page", for_=n.ras_hung_for,
              summary="NCCL RAS reports communicator {{ $labels.comm_id }} hung",
              description="NCCL's RAS service on {{ $labels.hostname }} reports communicator {{ $labels.comm_id }} "
                          "hung: its ranks disagree on the collectives completed (or some are missing) and the "
                          f"counts have not moved, for {n.ras_hung_for}."),
    ]


def _lagging_ranks() -> str:
    """The ranks the communicator waits on, from LAGGING_RANK (Prometheus' template query); nothing where none is
    behind."""
    query = f'printf "{LAGGING_RANK}{{comm_id=%q}}" $labels.comm_id'
    return (f'{{{{ range query ({query}) | sortByLabel "rank" }}}} It waits on rank {{{{ .Labels.rank }}}} on '
            "{{ .Labels.hostname }}, {{ .Value }} {{ .Labels.operation }} behind the furthest rank.{{ end }}")


def lagging_rank(config: MonitoringConfig) -> str:
    """The ranks at the lowest sequence of each operation of a communicator that stopped, valued by how far behind
    the furthest rank they are."""
    e, n = config.selectors.exporter, config.nccl
    sequence = nccl.SEQUENCE.select(e)
    operation = f"{_COMMUNICATOR}, operation"
    lowest = f"{sequence}\n  == on ({operation}) group_left ()\n  min by ({operation}) ({sequence})"
    stopped = f"time() - max by ({_COMMUNICATOR}) ({nccl.LAST_PROGRESS.select(e)}) > {seconds(n.hang_after)}"
    return (f"(\n  max by ({operation}) ({sequence})\n  - on ({operation}) group_right ()\n  (\n  {lowest}\n  )\n)"
            f" > 0\nand on ({_COMMUNICATOR})\n({stopped})")


def fabric_alerts(config: MonitoringConfig) -> list[Alert]:
    e, f = config.selectors.exporter, config.fabric
    state = fabric.PORT_STATE.select(e)
    return [
        Alert("FleetscopeFabricPortDown", f"{state} < {ACTIVE}\nand\n{PORT_EXPECTED_ACTIVE} == 1", "ticket",
              for_=f.link_down_for,
              summary=f"Fabric {_PORT} is down",
              description=f"Fabric {_PORT} has been in logical state {{{{ $value }}}} (1 down, 2 init, 3 armed) "
                          f"for {f.link_down_for} after being active. Collectives across nodes lose that link's "
                          "bandwidth or fail. The alert lasts until the port is active again."),
        Alert("FleetscopeFabricLinkFlapping",
              f"increase({fabric.LINK_DOWNED.select(e)}[{f.link_flap_window}]) > 0", "ticket",
              summary=f"Fabric {_PORT} went down and came back",
              description=f"Fabric {_PORT} went down {{{{ $value | printf \"%.0f\" }}}} time(s) in the last "
                          f"{f.link_flap_window} after failing to recover from errors. Reseat or replace the cable "
                          "or transceiver."),
        Alert("FleetscopeFabricSymbolErrors",
              f"increase({fabric.SYMBOL_ERRORS.select(e)}[1h]) > {f.symbol_errors_per_hour:g}", "ticket",
              for_=f.errors_for,
              summary=f"Symbol errors rising on fabric {_PORT}",
              description=f"Fabric {_PORT} counted {{{{ $value | printf \"%.0f\" }}}} symbol errors in the last "
                          "hour: a marginal cable, transceiver or port."),
        Alert("FleetscopeFabricPortErrors",
              f"sum without (type) (rate({fabric.ERRORS.select(e)}[5m])) > {f.port_errors_per_second:g}", "ticket",
              for_=f.errors_for,
              summary=f"Errors rising on fabric {_PORT}",
              description=f"Fabric {_PORT} counts {{{{ $value | humanize }}}} port errors a second (receive "
                          f"errors, discards, integrity errors), for {f.errors_for}."),
    ]


def nccl_records(config: MonitoringConfig) -> list[dict]:
    e = config.selectors.exporter
    return [
        record(BUS_BYTES, f"sum by ({_JOB}) (rate({nccl.BUS_BYTES.select(e)}[5m]))"),
        record(BUSY_SECONDS, f"sum by ({_JOB}) (rate({nccl.SECONDS.select(e)}[5m]))"),
        record(BUS_BANDWIDTH, f"{BUS_BYTES}\n/\n({BUSY_SECONDS} > 0)"),  # NCCL's busbw, over the job's ranks
        record(COLLECTIVES, f"sum by ({_JOB}) (rate({nccl.COLLECTIVES.select(e)}[5m]))"),
        record(DURATION_BUCKETS, f"sum by ({_JOB}, le) (rate({nccl.DURATION.select(e, suffix='_bucket')}[5m]))"),
        record(SKEW, f"max by ({_COMMUNICATOR}) ({nccl.SKEW.select(e)})"),
        record(OLDEST_PROGRESS, f"min by ({_COMMUNICATOR}) ({nccl.LAST_PROGRESS.select(e)})"),
        record(LAGGING_RANK, lagging_rank(config)),
        record(NODE_LATENESS, f"max by ({NODE}, comm_id, comm_name) ({nccl.LATENESS.select(e)})"),
        extremes(NODE_LATEST, NODE_LATENESS, TOP, by=_COMMUNICATOR),
        extremes(STRAGGLERS, nccl.LATENESS.select(e), STRAGGLERS_SHOWN, by=_COMMUNICATOR),
    ]


def busier_direction(by: str, transmit: str, receive: str) -> str:
    """Each port's throughput in its busier direction. The two rates are told apart by a label first: their label
    sets are equal, so `rate(tx) or rate(rx)` would always keep transmit."""
    return (f'max by ({by}) (\n  label_replace({transmit}, "direction", "transmit", "", "")\n  or\n'
            f'  label_replace({receive}, "direction", "receive", "", "")\n)')


def fabric_records(config: MonitoringConfig) -> list[dict]:
    e = config.selectors.exporter
    state, window = fabric.PORT_STATE.select(e), config.fabric.link_baseline_window
    transmit, receive = (f"rate({spec.select(e)}[5m])" for spec in (fabric.TRANSMIT_BYTES, fabric.RECEIVE_BYTES))
    port = f"{NODE}, device, port"
    return [
        record(PORT_EXPECTED_ACTIVE, f"({state} >= bool {ACTIVE}) == 1\nor\n{PORT_EXPECTED_ACTIVE}\n"
                                      f"and on (job, instance)\n(max_over_time(up{{{e}}}[{window}]) == 1)"),
        record(CLUSTER_PORTS_DOWN, f"count by (cluster) ({state} < {ACTIVE}\nand\n{PORT_EXPECTED_ACTIVE} == 1)"),
        record(NODE_FABRIC_TRANSMIT, f"sum by ({NODE}) ({transmit})"),
        record(NODE_FABRIC_RECEIVE, f"sum by ({NODE}) ({receive})"),
        record(NODE_FABRIC_UTILIZATION,
                f"max by ({NODE}) (\n{busier_direction(port, transmit, receive)}\n/\n"
                f"max by ({port}) ({fabric.PORT_RATE.select(e)} > 0)\n)"),
        record(NODE_FABRIC_ERRORS, f"sum by ({NODE}, type) (\n  rate({fabric.ERRORS.select(e)}[5m])\n  or\n"
                                    f'  label_replace(rate({fabric.SYMBOL_ERRORS.select(e)}[5m]), "type", "symbol", '
                                    '"", "")\n)'),
        record(CLUSTER_FABRIC_TRANSMIT, f"sum by (cluster) ({NODE_FABRIC_TRANSMIT})"),
        record(CLUSTER_FABRIC_RECEIVE, f"sum by (cluster) ({NODE_FABRIC_RECEIVE})"),
        extremes(NODE_FABRIC_BUSIEST, NODE_FABRIC_UTILIZATION, TOP),
        extremes(NODE_FABRIC_NOISIEST, f"sum by ({NODE}) ({NODE_FABRIC_ERRORS})", TOP),
    ]


def rule_groups(config: MonitoringConfig) -> dict:
    return {"groups": [
        {"name": "fleetscope-nccl-recording", "rules": nccl_records(config)},
        {"name": "fleetscope-fabric-recording", "rules": fabric_records(config)},
        group("fleetscope-nccl", config.team("nccl"), config, nccl_alerts(config), "collectives"),
        group("fleetscope-fabric", config.team("fabric"), config, fabric_alerts(config), "collectives"),
    ]}
