"""Ray cluster: Ray's own metrics (mixin/ray.py, as Ray 2.60.0 serves them), scraped from every node through
Ray's discovery file or the KubeRay PodMonitor (deploy/): nodes and their load, logical resources and their use,
tasks and actors by state, the object store and its spilling, Serve applications and replicas, and the
autoscaler. GPUs are fleetscope's exporter's: the node dashboard shows them."""

from fleetscope.dashboards.build import (
    Query,
    Row,
    dashboard,
    datasource_variable,
    events_panel,
    label_variable,
    table_panel,
    timeseries_panel,
)
from fleetscope.dashboards.common import TITLES, UIDS, links_except
from fleetscope.mixin import ray
from fleetscope.mixin.config import MonitoringConfig
from fleetscope.mixin.matchers import matchers

CLUSTER_FILTER = 'cluster=~"$cluster"'
NODE_FILTER = 'instance=~"$instance"'
NODE = "{{instance}}"


def _states(states: dict[int, str]) -> dict[str, str]:
    return {str(value): name for value, name in states.items()}


def build(config: MonitoringConfig | None = None) -> dict:
    config = config or MonitoringConfig()
    r = config.ray
    cluster = matchers(config.selectors.ray, CLUSTER_FILTER)  # cluster-wide series: the head's, the autoscaler's
    node = matchers(cluster, NODE_FILTER)  # every node's own series

    nodes = Row("Nodes", [
        timeseries_panel("Nodes by type", "Nodes Ray counts active in each node type, from the autoscaler's "
                                          "report on the head (with no autoscaler configured, each node is its own "
                                          "type). A node that stops reporting beyond those the autoscaler stopped "
                                          "pages as FleetscopeRayNodeLost.", "none",
                         Query(f"sum by (node_type) ({ray.CLUSTER_ACTIVE_NODES.select(cluster)})", "{{node_type}}"),
                         min=0, decimals=0, stacked=True, width=8),
        timeseries_panel("CPU utilization by node", "Each node's CPU utilization as its reporter agent measures "
                                                    "it (all processes, not only Ray's).", "percentunit",
                         Query(f"{ray.NODE_CPU_UTILIZATION.select(node)} / 100", NODE), min=0, max=1, width=8),
        timeseries_panel("Memory used by node", "Each node's memory in use over its total, as its reporter agent "
                                                "measures it.", "percentunit",
                         Query(f"{ray.NODE_MEM_USED.select(node)}\n/ on (instance)\n"
                               f"{ray.NODE_MEM_TOTAL.select(node)}", NODE), min=0, max=1, width=8),
    ])
    used = ray.RESOURCES.select(node, 'State="USED"')
    cpus = ray.RESOURCES.select(node, 'Name="CPU"')
    cpus_used = ray.RESOURCES.select(node, 'Name="CPU"', 'State="USED"')
    resources = Row("Resources", [
        timeseries_panel("Logical resources in use", "Share of each logical resource (CPU, GPU, memory, "
                                                     "object_store_memory, custom) that tasks and actors hold, "
                                                     "over the nodes chosen: what Ray schedules by, not what the "
                                                     "hardware does.", "percentunit",
                         Query(f"sum by (Name) ({used})\n/\n"
                               f"(sum by (Name) ({ray.RESOURCES.select(node)}) > 0)", "{{Name}}"),
                         min=0, max=1),
        timeseries_panel("CPUs held and total", "Logical CPUs tasks and actors hold, and the CPUs the nodes "
                                                "offer.", "none",
                         Query(f"sum({cpus_used})", "held"), Query(f"sum({cpus})", "total"), min=0),
    ])
    pending = ray.TASKS.select(cluster, f'State="{ray.WAITING_FOR_A_NODE}"')
    unfinished = ray.TASKS.select(node, 'State!~"FINISHED|FAILED"')
    ended = ray.TASKS.select(node, 'State=~"FINISHED|FAILED"')
    actors = ray.ACTORS.select(cluster, 'Source="gcs"')
    work = Row("Tasks and actors", [
        timeseries_panel("Tasks by state", "Tasks not finished, by state, as their owners, executors and "
                                           "raylets report them: PENDING_* wait for arguments, a node or memory, "
                                           "RUNNING* run.", "none",
                         Query(f"clamp_min(sum by (State) ({unfinished}), 0)", "{{State}}"), min=0, stacked=True),
        timeseries_panel("Tasks waiting for a node", f"Tasks in {ray.WAITING_FOR_A_NODE}: no node has the "
                                                     "resources they ask for, now or ever (an infeasible request). "
                                                     f"More than {r.pending_tasks:g} for {r.pending_for}, "
                                                     "FleetscopeRayTasksPendingNode opens a ticket.", "none",
                         Query(f"sum({pending})", "waiting"), min=0),
        timeseries_panel("Tasks finished and failed", "Tasks that finished or failed since their owners started "
                                                      "(first attempts and retries), by state.", "none",
                         Query(f"sum by (State) ({ended})", "{{State}}"), min=0),
        timeseries_panel("Actors by state", "Actors by state as the GCS keeps them: ALIVE, RESTARTING, DEAD, and "
                                            "waiting (DEPENDENCIES_UNREADY, PENDING_CREATION).", "none",
                         Query(f"sum by (State) ({actors})", "{{State}}"), min=0),
    ])
    spilled = ray.SPILL_MANAGER_OBJECTS_BYTES.select(node, 'State=~"Spilled|Restored"')
    in_store = ray.OBJECT_STORE_MEMORY.select(node, 'Location=~"MMAP_SHM|MMAP_DISK"')
    capacity = ray.RESOURCES.select(node, 'Name="object_store_memory"')
    objects = Row("Object store", [
        timeseries_panel("Object store use by node", "Objects in each node's shared-memory store (and its "
                                                     "fallback on disk) over the store's capacity. Near full, Ray "
                                                     "spills objects to disk.", "percentunit",
                         Query(f"sum by (instance) ({in_store})\n/ on (instance)\n"
                               f"(sum by (instance) ({capacity}) > 0)", NODE),
                         min=0, max=1),
        timeseries_panel("Object memory by location", "Object bytes by where they are: the shared-memory store "
                                                      "(MMAP_SHM), its fallback on disk (MMAP_DISK), spilled to "
                                                      "disk (SPILLED) and small objects in workers' heaps.", "bytes",
                         Query(f"sum by (Location) ({ray.OBJECT_STORE_MEMORY.select(node)})", "{{Location}}"),
                         min=0, stacked=True),
        timeseries_panel("Spilled and restored", "Bytes per second each node spills to disk and restores from "
                                                 f"it. Spilling above {r.spill_bytes_per_second:g} B/s over "
                                                 f"{r.spill_window} for {r.spill_for}, "
                                                 "FleetscopeRayObjectStoreSpilling opens a ticket.", "Bps",
                         Query(f"sum by (instance, State) (rate({spilled}[$__rate_interval]))", NODE + " {{State}}"),
                         min=0),
    ])
    serve_filters = cluster
    statuses = table_panel("Serve applications and deployments", "Each Serve deployment's status and its healthy "
                                                                 "and target replicas, from the Serve controller.",
                           "none",
                           Query(f"max by (application, deployment) "
                                 f"({ray.SERVE_DEPLOYMENT_STATUS.select(serve_filters)})", "status"),
                           Query(f"max by (application, deployment) "
                                 f"({ray.SERVE_REPLICA_HEALTHY.select(serve_filters)})", "healthy replicas"),
                           Query(f"max by (application, deployment) "
                                 f"({ray.SERVE_TARGET_REPLICAS.select(serve_filters)})", "target replicas"),
                           columns=["application", "deployment"],
                           mappings={"status": _states(ray.SERVE_DEPLOYMENT_STATES)}, width=12)
    applications = table_panel("Serve application status", "Each Serve application's status, from the Serve "
                                                           "controller.", "none",
                               Query(f"max by (application) "
                                     f"({ray.SERVE_APPLICATION_STATUS.select(serve_filters)})", "status"),
                               columns=["application"], mappings={"status": _states(ray.SERVE_APPLICATION_STATES)},
                               width=12)
    starts = ray.SERVE_REPLICA_STARTUP_LATENCY.select(serve_filters, suffix="_count")
    serve = Row("Ray Serve", [
        statuses, applications,
        events_panel("Replicas started", "Replicas the Serve controller brought to ready, by deployment: first "
                                         "starts, scale-ups and replacements of failed replicas. More than the "
                                         f"target plus {r.replica_restarts} in {r.replica_restart_window}, "
                                         "FleetscopeRayServeReplicaRestarting opens a ticket.",
                     Query(f"sum by (application, deployment) (round(increase({starts}[$__interval])))",
                           "{{application}}/{{deployment}}")),
        timeseries_panel("HTTP requests", "Requests per second the Serve proxies answered, by application.", "reqps",
                         Query(f"sum by (application) "
                               f"(rate({ray.SERVE_HTTP_REQUESTS.select(serve_filters)}[$__rate_interval]))",
                               "{{application}}"), min=0),
    ])
    autoscaler = Row("Autoscaler", [
        timeseries_panel("Autoscaler nodes", "Nodes the autoscaler counts running and pending launch, by node "
                                             "type (served by the autoscaler's monitor on the head; absent where "
                                             "no autoscaler runs).", "none",
                         Query(f"sum by (NodeType) ({ray.AUTOSCALER_ACTIVE_NODES.select(cluster)})",
                               "{{NodeType}}"),
                         Query(f"sum by (NodeType) ({ray.AUTOSCALER_PENDING_NODES.select(cluster)})",
                               "{{NodeType}} pending"), min=0, decimals=0, width=8),
        events_panel("Nodes started and stopped", "Nodes the autoscaler launched and terminated.",
                     Query(f"sum(round(increase({ray.AUTOSCALER_STARTED_NODES.select(cluster)}[$__interval])))",
                           "started"),
                     Query(f"sum(round(increase({ray.AUTOSCALER_STOPPED_NODES.select(cluster)}[$__interval])))",
                           "stopped"), width=8),
        timeseries_panel("Pending resource demand", "Resources that tasks, actors and placement groups ask for and "
                                                    "no node has free: what the autoscaler scales up for.", "none",
                         Query(f"sum by (resource) ({ray.AUTOSCALER_PENDING_RESOURCES.select(cluster)})",
                               "{{resource}}"), min=0, width=8),
    ])
    variables = [datasource_variable(),
                 label_variable("cluster", "Cluster", ray.NODE_CPU_COUNT.name, config.selectors.ray),
                 label_variable("instance", "Node", ray.NODE_CPU_COUNT.name,
                                matchers(config.selectors.ray, CLUSTER_FILTER))]
    return dashboard(UIDS["ray"], TITLES["ray"],
                     "Ray's own cluster metrics (Ray 2.60.0's names), scraped from every node through Ray's "
                     "discovery file or the KubeRay PodMonitor: nodes, logical resources, tasks and actors, the "
                     "object store and spilling, Serve applications and replicas, and the autoscaler.",
                     variables, [nodes, resources, work, objects, serve, autoscaler], links_except("ray"))

