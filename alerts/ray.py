"""Alerts on Ray's own cluster metrics (mixin/ray.py names them, as Ray 2.60.0 serves them): a node that died,
a Serve deployment whose replicas keep being replaced, tasks no node can take, and an object store spilling.

Ray drops a node it has declared dead from its discovery file (and KubeRay deletes its Pod), so a dead node's
target disappears rather than failing its scrapes: `up == 0` would miss it. A node is lost instead when its
reporter stops serving within node_lost_window, beyond the nodes the autoscaler stopped in that window (its
counter, where an autoscaler runs; where none runs, every node that goes is lost). A node is known by its `ip`,
so a head restarted in a new session on the same host is not lost.
"""

from __future__ import annotations

from fleetscope.alerts.rule import Alert, group
from fleetscope.mixin import ray
from fleetscope.mixin.config import MonitoringConfig, RayConfig

CLUSTER = "cluster"
DEPLOYMENT = "cluster, application, deployment"
NODE = "cluster, instance"


def lost_nodes(selector: str, window: str) -> str:
    """The nodes (by ip) that served Ray's node metrics within window and serve none now, counted by cluster."""
    nodes = ray.NODE_CPU_COUNT.select(selector)
    return f"count by ({CLUSTER}) (\n  max by ({CLUSTER}, ip) (last_over_time({nodes}[{window}]))\n" \
           f"  unless on ({CLUSTER}, ip)\n  {nodes}\n)"


def node_lost(r: RayConfig, selector: str) -> str:
    """Lost nodes less those the autoscaler stopped (none where no autoscaler serves its counter), above 0."""
    lost = lost_nodes(selector, r.node_lost_window)
    stopped = ray.AUTOSCALER_STOPPED_NODES.select(selector)
    indented = lost.replace("\n", "\n  ")
    return (f"{lost}\n- on ({CLUSTER})\n(\n  round(sum by ({CLUSTER}) (increase({stopped}[{r.node_lost_window}])))\n"
            f"  or\n  {indented} * 0\n)\n> 0")


def replica_starts_beyond_target(r: RayConfig, selector: str) -> str:
    """Replicas the Serve controller brought to ready within the window (rounded: increase() extrapolates), less
    the deployment's target replicas: a deployment (re)deployed or scaled up starts at most its target; each
    replacement of a failed replica adds one more."""
    starts = ray.SERVE_REPLICA_STARTUP_LATENCY.select(selector, suffix="_count")
    return (f"round(sum by ({DEPLOYMENT}) (increase({starts}[{r.replica_restart_window}])))\n- on ({DEPLOYMENT})\n"
            f"max by ({DEPLOYMENT}) ({ray.SERVE_TARGET_REPLICAS.select(selector)})")


def tasks_waiting_for_a_node(selector: str) -> str:
    waiting = ray.TASKS.select(selector, f'State="{ray.WAITING_FOR_A_NODE}"')
    return f"sum by ({CLUSTER}) ({waiting})"


def spilled_bytes_rate(r: RayConfig, selector: str) -> str:
    spilled = ray.SPILL_MANAGER_OBJECTS_BYTES.select(selector, 'State="Spilled"')
    return f"sum by ({NODE}) (rate({spilled}[{r.spill_window}]))"


def alerts(config: MonitoringConfig) -> list[Alert]:
    r, selector = config.ray, config.selectors.ray
    return [
        Alert("FleetscopeRayNodeLost", node_lost(r, selector), "page", for_=r.node_lost_for,
              summary="{{ $value }} Ray node(s) stopped reporting in the last " + r.node_lost_window,
              description=f"{{{{ $value }}}} Ray node(s) served their metrics within the last {r.node_lost_window} "
                          "and serve none now, more than the autoscaler stopped: they died, or the head did "
                          "(then every node goes). Tasks and actors on them are retried or lost, and objects "
                          "they held are reconstructed or lost."),
        Alert("FleetscopeRayServeReplicaRestarting", f"{replica_starts_beyond_target(r, selector)}\n"
              f">= {r.replica_restarts}", "ticket", for_=r.replica_restart_for,
              summary="Replicas of Ray Serve deployment {{ $labels.application }}/{{ $labels.deployment }} keep "
                      "being replaced",
              description="The Serve controller started {{ $value }} more replicas of deployment "
                          "{{ $labels.deployment }} (application {{ $labels.application }}) than its target in the "
                          f"last {r.replica_restart_window}: its replicas keep failing (crashes, failed health "
                          "checks, out of memory) and being replaced."),
        Alert("FleetscopeRayTasksPendingNode", f"{tasks_waiting_for_a_node(selector)} > {r.pending_tasks:g}",
              "ticket", for_=r.pending_for,
              summary="Ray tasks have waited for a node for " + r.pending_for,
              description=f"{{{{ $value }}}} Ray tasks wait for a node with the resources they ask for "
                          f"({ray.WAITING_FOR_A_NODE}), and more than {r.pending_tasks:g} have for {r.pending_for}: "
                          "the cluster is too small for its work, the autoscaler cannot add nodes, or a task asks "
                          "for resources no node type has."),
        Alert("FleetscopeRayObjectStoreSpilling", f"{spilled_bytes_rate(r, selector)} > {r.spill_bytes_per_second:g}",
              "ticket", for_=r.spill_for,
              summary="Ray node {{ $labels.instance }} keeps spilling objects to disk",
              description="The object store of Ray node {{ $labels.instance }} has spilled "
                          f"{{{{ $value | humanize1024 }}}}B/s to disk on average over {r.spill_window}, for "
                          f"{r.spill_for}: it is full, and tasks that read spilled objects wait for disk."),
    ]


def rule_groups(config: MonitoringConfig) -> dict:
    return {"groups": [group("fleetscope-ray", config.team("ray"), config, alerts(config), "ray")]}
