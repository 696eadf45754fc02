"""Ray's own cluster metrics, as Ray 2.60.0 serves them, and where it serves them: the one place the Ray dashboard
(dashboards/ray.py), the Ray alerts (alerts/ray.py) and the scrape configs (deploy/) read Ray's names from.

Each name cites the file that defines it as Ray's repository names it (python/ray/..., the `ray` package that pip
installs); names defined in Ray's C++ core cite the binary of the wheel, which carries their HELP text.
tests/alerts/test_ray_metric_names.py holds every name to pages recorded from a real head (tests/fixtures/ray-2.60.0/)
with its type and labels; tests/ray/test_ray_cluster_prometheus.py runs the dashboard and the rules against a live
one.

Three endpoints on the head, one on every other node:
- each node's metrics export port (`ray start --metrics-export-port`, KubeRay's container port `metrics`, 8080):
  its raylet, workers, GCS (on the head) and reporter agent, aggregated by the dashboard agent (ray_*);
- the autoscaler's monitor on the head (AUTOSCALER_METRIC_PORT, 44217, KubeRay's `as-metrics`): autoscaler_*,
  with no ray_ prefix (python/ray/autoscaler/_private/prom_metrics.py, namespace "autoscaler");
- the dashboard's own process on the head (DASHBOARD_METRIC_PORT, 44227, KubeRay's `dash-metrics`): ray_dashboard_*.
With the dashboard running, the head lists all of them, for live nodes only, in a Prometheus file-SD file that it
rewrites every 5 s (Ray's python/ray/_private/metrics_agent.py, PrometheusServiceDiscoveryWriter). Without the dashboard
(`--include-dashboard=false`) no file is written: list the nodes' metrics export ports yourself.

Labels worth knowing: node-level series carry `ip`, `RayNodeType` (head, worker) and `IsHeadNode`; core series
carry `NodeAddress`, `Component` and `WorkerId`; every series carries `SessionName` and `Version`. Ray drops
`WorkerId` from ray_tasks and ray_actors by default, and their `Name` too at RAY_metric_cardinality_level=low
(python/ray/_private/telemetry/metric_cardinality.py): nothing here groups by either.
"""

from __future__ import annotations

from dataclasses import dataclass

RAY_VERSION = "2.60.0"  # the release every name below was read from and seen on a live page of

# Where the head writes its discovery file: the session directory, with a link to it in the temporary root
# (--temp-dir, /tmp/ray by default) that Ray keeps for Prometheus configs that point there (ray_constants.py
# PROMETHEUS_SERVICE_DISCOVERY_FILE; metrics_agent.py). The link's path outlives sessions; the session's does not.
DISCOVERY_FILE = "prom_metrics_service_discovery.json"
DEFAULT_TEMP_DIR = "/tmp/ray"
DISCOVERY_JOB = "ray"  # the `job` label Ray's file gives every target
METRICS_EXPORT_PORT = 8080  # KubeRay's default for the `metrics` container port
AUTOSCALER_METRICS_PORT = 44217  # python/ray/autoscaler/_private/constants.py AUTOSCALER_METRIC_PORT
DASHBOARD_METRICS_PORT = 44227  # python/ray/dashboard/consts.py DASHBOARD_METRIC_PORT
# KubeRay's names for those ports (it adds `metrics` to every Ray container itself; the head's container declares
# the other two, as KubeRay's ray-cluster.embed-grafana.yaml sample does), and its Pod labels.
KUBERAY_PORTS = ("metrics", "as-metrics", "dash-metrics")
KUBERAY_NODE_TYPE_LABEL = "ray.io/node-type"
KUBERAY_CLUSTER_LABEL = "ray.io/cluster"
# Ray Serve LLM's engines serve vLLM's series through Ray's metrics, vllm:x renamed ray_vllm_x (vLLM 0.32's
# vllm/v1/metrics/ray_wrappers.py swaps the colon, Ray adds its prefix; seen at Ray 2.60): the generated `ray` jobs
# rename them back, so that the vllm mapping of the inference schema reads them. Ray's own Grafana panels for
# Serve LLM read the ray_vllm_ names, and go empty under this rename.
SERVE_LLM_VLLM_NAMES = ("ray_vllm_(.+)", "vllm:$1")

_REPORTER = "python/ray/dashboard/modules/reporter/reporter_agent.py (METRICS_GAUGES)"
_RAYLET = "python/ray/core/src/ray/raylet/raylet (src/ray/stats/metric_defs.cc)"
_AUTOSCALER = "python/ray/autoscaler/_private/prom_metrics.py (AutoscalerPrometheusMetrics)"


@dataclass(frozen=True)
class RayMetric:
    name: str  # as served, suffixes of a histogram's series left off
    type: str  # the page's TYPE: gauge, counter or histogram
    # Labels every series of it carries, scrape labels aside. Ray writes some labels empty on some series (JobId,
    # WorkerId, ObjectState): Prometheus keeps no empty label, so those are not among them.
    labels: tuple[str, ...]
    source: str  # the file of the installed ray package that defines it

    def select(self, *matchers: str, suffix: str = "") -> str:
        """A PromQL selector: TASKS.select('job="ray"', 'State="RUNNING"') -> ray_tasks{job="ray",State="RUNNING"}."""
        joined = ",".join(matcher for matcher in matchers if matcher)
        return f"{self.name}{suffix}{{{joined}}}" if joined else self.name + suffix


_NODE = ("ip", "RayNodeType", "IsHeadNode", "SessionName", "Version")
_CORE = ("Component", "NodeAddress", "SessionName", "Version")
_SERVE = ("application", "deployment", *_CORE)
_SERVE_CONTROLLER = "python/ray/serve/_private/deployment_state.py"  # Ray Serve's controller

# Nodes, from each node's reporter agent.
NODE_CPU_COUNT = RayMetric("ray_node_cpu_count", "gauge", _NODE, _REPORTER)
NODE_CPU_UTILIZATION = RayMetric("ray_node_cpu_utilization", "gauge", _NODE, _REPORTER)  # percent, 0-100
NODE_MEM_USED = RayMetric("ray_node_mem_used", "gauge", _NODE, _REPORTER)  # bytes
NODE_MEM_TOTAL = RayMetric("ray_node_mem_total", "gauge", _NODE, _REPORTER)  # bytes
# Per node type, from the autoscaler's report (head only): with no autoscaler configured, each node is its own type.
CLUSTER_ACTIVE_NODES = RayMetric("ray_cluster_active_nodes", "gauge", ("node_type", "SessionName", "Version"),
                                 _REPORTER)
# Logical resources (CPU, GPU, memory, object_store_memory, custom) by State AVAILABLE or USED, per raylet:
# "Logical Ray resources broken per state {AVAILABLE, USED}".
RESOURCES = RayMetric("ray_resources", "gauge", ("Name", "State", *_CORE), _RAYLET)
# "Current number of tasks currently in a particular state": by State (PENDING_*, RUNNING*, FINISHED, FAILED...),
# reported by owners, executors and the raylet's dependency manager (Source); also in python/ray/_raylet.so.
TASKS = RayMetric("ray_tasks", "gauge", ("State", "Source", "IsRetry", *_CORE), _RAYLET)
# "An actor can be in one of DEPENDENCIES_UNREADY, PENDING_CREATION, ALIVE, ... RESTARTING, or DEAD states";
# reported by the GCS (Source="gcs") and by executors.
ACTORS = RayMetric("ray_actors", "gauge", ("State", "Source", *_CORE),
                   "python/ray/core/src/ray/gcs/gcs_server and python/ray/_raylet.so (src/ray/stats/metric_defs.cc)")
# "Object store memory by various sub-kinds on this node": by Location (MMAP_SHM, MMAP_DISK, SPILLED,
# WORKER_HEAP) and ObjectState (SEALED, UNSEALED); SPILLED is what is on disk now.
OBJECT_STORE_MEMORY = RayMetric("ray_object_store_memory", "gauge", ("Location", *_CORE), _RAYLET)
# "Byte size of local objects broken per state {Pinned, PendingSpill}": State="Spilled" and "Restored" are the
# bytes spilled and restored since the raylet started, which only grow.
SPILL_MANAGER_OBJECTS_BYTES = RayMetric("ray_spill_manager_objects_bytes", "gauge", ("State", *_CORE), _RAYLET)
# "Number of {spill, restore} requests", by Type (Spilled, Restored, FailedDeletion): cumulative, typed gauge.
SPILL_MANAGER_REQUESTS = RayMetric("ray_spill_manager_request_total", "gauge", ("Type", *_CORE), _RAYLET)

# Ray Serve: the controller's series (one process, stable labels) and the proxies'.
# A number per state: SERVE_APPLICATION_STATES and SERVE_DEPLOYMENT_STATES below.
SERVE_APPLICATION_STATUS = RayMetric("ray_serve_application_status", "gauge", ("application", *_CORE),
                                     "python/ray/serve/_private/application_state.py")
SERVE_DEPLOYMENT_STATUS = RayMetric("ray_serve_deployment_status", "gauge", _SERVE, _SERVE_CONTROLLER)
# Without RAY_SERVE_METRICS_SOURCE_TAGS: the deployment's count of healthy replicas.
SERVE_REPLICA_HEALTHY = RayMetric("ray_serve_deployment_replica_healthy", "gauge", _SERVE, _SERVE_CONTROLLER)
SERVE_TARGET_REPLICAS = RayMetric("ray_serve_autoscaling_target_replicas", "gauge", _SERVE, _SERVE_CONTROLLER)
# One observation each time the controller brings a replica to ready (a first start, a scale-up, a replacement),
# in the controller's own process: its _count counts replica starts across replica restarts. Each replica's own
# ray_serve_deployment_replica_starts_total is 1 in a new series per replica process, so no increase() sees them.
SERVE_REPLICA_STARTUP_LATENCY = RayMetric("ray_serve_replica_startup_latency_ms", "histogram", _SERVE,
                                          _SERVE_CONTROLLER)
_INGRESS = "python/ray/serve/_private/request_ingress_metrics.py"  # Ray Serve's proxies, by protocol
SERVE_HTTP_REQUESTS = RayMetric("ray_serve_num_http_requests_total", "counter", ("application", "method", *_CORE),
                                f"{_INGRESS} (serve_num_{{protocol_name}}_requests)")

# The autoscaler's monitor (the head's port 44217): node counts by NodeType, and nodes started and stopped.
AUTOSCALER_ACTIVE_NODES = RayMetric("autoscaler_active_nodes", "gauge", ("NodeType", "SessionName"), _AUTOSCALER)
AUTOSCALER_PENDING_NODES = RayMetric("autoscaler_pending_nodes", "gauge", ("NodeType", "SessionName"), _AUTOSCALER)
AUTOSCALER_STARTED_NODES = RayMetric("autoscaler_started_nodes_total", "counter", ("SessionName",), _AUTOSCALER)
AUTOSCALER_STOPPED_NODES = RayMetric("autoscaler_stopped_nodes_total", "counter", ("SessionName",), _AUTOSCALER)
AUTOSCALER_PENDING_RESOURCES = RayMetric("autoscaler_pending_resources", "gauge", ("resource", "SessionName"),
                                         _AUTOSCALER)

ALL = (NODE_CPU_COUNT, NODE_CPU_UTILIZATION, NODE_MEM_USED, NODE_MEM_TOTAL, CLUSTER_ACTIVE_NODES, RESOURCES, TASKS,
       ACTORS, OBJECT_STORE_MEMORY, SPILL_MANAGER_OBJECTS_BYTES, SPILL_MANAGER_REQUESTS, SERVE_APPLICATION_STATUS,
       SERVE_DEPLOYMENT_STATUS, SERVE_REPLICA_HEALTHY, SERVE_TARGET_REPLICAS, SERVE_REPLICA_STARTUP_LATENCY,
       SERVE_HTTP_REQUESTS, AUTOSCALER_ACTIVE_NODES, AUTOSCALER_PENDING_NODES, AUTOSCALER_STARTED_NODES,
       AUTOSCALER_STOPPED_NODES, AUTOSCALER_PENDING_RESOURCES)
# Served by the autoscaler's monitor only: absent where no monitor runs (KubeRay without enableInTreeAutoscaling).
FROM_AUTOSCALER = (AUTOSCALER_ACTIVE_NODES, AUTOSCALER_PENDING_NODES, AUTOSCALER_STARTED_NODES,
                   AUTOSCALER_STOPPED_NODES, AUTOSCALER_PENDING_RESOURCES)

# States of ray_tasks a task waits in before it runs. PENDING_NODE_ASSIGNMENT: no node has the resources it asks
# for (yet, or ever: an infeasible request); the others wait on its arguments or on object store memory.
WAITING_FOR_A_NODE = "PENDING_NODE_ASSIGNMENT"
PENDING_STATES = ("PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "PENDING_OBJ_STORE_MEM_AVAIL",
                  "PENDING_ARGS_FETCH", "SUBMITTED_TO_WORKER")
RUNNING_STATES = ("RUNNING", "RUNNING_IN_RAY_GET", "RUNNING_IN_RAY_WAIT", "GETTING_AND_PINNING_ARGS")

# What ray_serve_application_status and ray_serve_deployment_status mean by each value (their HELP texts).
SERVE_APPLICATION_STATES = {0: "UNKNOWN", 1: "DEPLOY_FAILED", 2: "UNHEALTHY", 3: "NOT_STARTED", 4: "DELETING",
                            5: "DEPLOYING", 6: "RUNNING"}
SERVE_DEPLOYMENT_STATES = {0: "UNKNOWN", 1: "DEPLOY_FAILED", 2: "UNHEALTHY", 3: "UPDATING", 4: "UPSCALING",
                           5: "DOWNSCALING", 6: "HEALTHY"}
