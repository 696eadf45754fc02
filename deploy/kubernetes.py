"""Kubernetes manifests for a GPU cluster running the Prometheus Operator (kube-prometheus-stack):

    exporter.yaml       the node exporter: ServiceAccount and DaemonSet on every GPU node
    drift.yaml          the drift service: ConfigMap, StatefulSet (a shard a pod), headless Service
    monitors.yaml       PodMonitor for the exporters and for instrumented model servers, ServiceMonitor
                        for the drift service, PodMonitor for Ray's own metrics on KubeRay's Pods
    alertmanager.yaml   the generated Alertmanager configuration as the Secret kube-prometheus-stack's
                        Alertmanager reads (alertmanager.alertmanagerSpec.configSecret)
    prometheusrule.yaml and dashboards.yaml come from the alerts and dashboards generators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from fleetscope import __version__
from fleetscope.mixin import ray
from fleetscope.mixin.config import MonitoringConfig

EXPORTER, DRIFT = "fleetscope-exporter", "fleetscope-drift"
EXPORTER_PORT, DRIFT_PORT = 9835, 9840
# Not DRIFT: the drift dashboard's ConfigMap is named by its uid, fleetscope-drift.
DRIFT_CONFIG_MAP = f"{DRIFT}-config"
# The Secret of on-call keys that the Alertmanager resource mounts (alertmanagerSpec.secrets);
# the Prometheus Operator mounts it at /etc/alertmanager/secrets/<name>.
ONCALL_SECRET = "fleetscope-oncall"


@dataclass(frozen=True)
class KubernetesConfig:
    namespace: str = "monitoring"
    image_registry: str = "ghcr.io/fleetscope"
    version: str = __version__
    monitor_labels: tuple[tuple[str, str], ...] = (("release", "kube-prometheus-stack"),)
    scrape_interval: str = "15s"
    gpu_node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    runtime_class: str = "nvidia"
    nccl_inspector_dir: str = "/var/log/nccl-inspector"
    drift_storage: str = "20Gi"
    # Drift service instances the models are spread over (fleetscope.drift.sharding): the StatefulSet's replicas.
    drift_shards: int = 1
    # Model server pods to scrape carry this label and name their metrics port "metrics".
    model_server_label: tuple[str, str] = ("fleetscope.io/scrape", "inference")


def _labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "fleetscope"}


def _metadata(name: str, config: KubernetesConfig, component: str, **extra: dict) -> dict:
    return {"name": name, "namespace": config.namespace, "labels": _labels(name, component), **extra}


def _image(config: KubernetesConfig, service: str) -> str:
    return f"{config.image_registry}/{service}:{config.version}"


def _restricted(read_only_root: bool = True) -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": read_only_root,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _probe(port: str, path: str = "/-/healthy", period: int = 10) -> dict:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "timeoutSeconds": 5}


def exporter(config: KubernetesConfig) -> list[dict]:
    labels = _labels(EXPORTER, "node-exporter")
    host_paths = {
        # The kubelet's pod-resources socket: which pod holds which GPU.
        "pod-resources": "/var/lib/kubelet/pod-resources",
        # InfiniBand / RoCE counters.
        "sys": "/sys",
        # NCCL Inspector output of the jobs on the node.
        "nccl-inspector": config.nccl_inspector_dir,
    }
    container = {
        "name": "exporter",
        "image": _image(config, "exporter"),
        "args": [f"--web.listen-address=:{EXPORTER_PORT}", "--collector.hostname=$(NODE_NAME)",
                 "--path.sysfs=/host/sys", f"--collector.nccl.inspector-dir=/host{config.nccl_inspector_dir}",
                 "--collector.gpu.pod-resources-socket=/var/lib/kubelet/pod-resources/kubelet.sock",
                 "--log.format=json"],
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            # The NVIDIA runtime mounts the driver's NVML library and every GPU, for monitoring only.
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"},
        ],
        "ports": [{"name": "metrics", "containerPort": EXPORTER_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("metrics", "/-/ready"),
        "livenessProbe": _probe("metrics", period=30),
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
        # The kubelet's socket is root's alone; everything else about the container is locked down.
        "securityContext": {**_restricted(), "runAsUser": 0, "runAsNonRoot": False},
        "volumeMounts": [
            {"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True},
            {"name": "sys", "mountPath": "/host/sys", "readOnly": True},
            {"name": "nccl-inspector", "mountPath": f"/host{config.nccl_inspector_dir}", "readOnly": True},
        ],
    }
    daemonset = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": _metadata(EXPORTER, config, "node-exporter"),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": EXPORTER,
                    "automountServiceAccountToken": False,
                    # Host PID: process IDs NVML reports are the host's, so attribution needs its namespace.
                    "hostPID": True,
                    "runtimeClassName": config.runtime_class,
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": dict(config.gpu_node_selector),
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": [{"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"
                                                            if name == "nccl-inspector" else "Directory"}}
                                for name, path in host_paths.items()],
                },
            },
        },
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(EXPORTER, config, "node-exporter"),
               "automountServiceAccountToken": False}
    return [account, daemonset]


DRIFT_CONFIG = f"""\
# The drift service's configuration (see drift/service/config.py for every setting).
listen_address: ":{DRIFT_PORT}"
evaluation_interval: 1m
storage: {{path: /var/lib/fleetscope-drift/drift.sqlite, retention: 7d}}
auth:
  read_tokens_file: /etc/fleetscope/tokens/read
  write_tokens_file: /etc/fleetscope/tokens/write
defaults:
  window: {{type: sliding, duration: 10m, rows: 100000}}
"""


def drift_service(config: KubernetesConfig) -> list[dict]:
    labels = _labels(DRIFT, "drift-service")
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": _metadata(DRIFT_CONFIG_MAP, config, "drift-service"),
                 "data": {"drift.yaml": DRIFT_CONFIG}}
    claim = {"metadata": {"name": "data", "labels": labels},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": config.drift_storage}}}}
    container = {
        "name": "drift",
        "image": _image(config, "drift"),
        # Each pod is one shard, its index the ordinal ending its name (fleetscope-drift-0, -1, ...).
        "args": ["--config.file=/etc/fleetscope/drift.yaml", "--log.format=json",
                 f"--shard.count={config.drift_shards}", "--shard.index=hostname"],
        "ports": [{"name": "http", "containerPort": DRIFT_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("http", "/-/ready"),
        "livenessProbe": _probe("http", period=30),
        # About 200 MiB idle, flat under load (benchmarks/drift_ingest.py); more with many models.
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": _restricted(),
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/fleetscope/drift.yaml", "subPath": "drift.yaml", "readOnly": True},
            {"name": "tokens", "mountPath": "/etc/fleetscope/tokens", "readOnly": True},
            {"name": "data", "mountPath": "/var/lib/fleetscope-drift"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": _metadata(DRIFT, config, "drift-service"),
        "spec": {
            "replicas": config.drift_shards,
            # Stable names (the shard index) and a volume each; a pod is replaced by stopping it first, so its
            # SQLite store on a ReadWriteOnce volume never has two writers.
            "serviceName": DRIFT,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "volumeClaimTemplates": [claim],
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                        "fsGroup": 65532},
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": DRIFT_CONFIG_MAP}},
                        # Create it with read and write tokens, one per line:
                        #   kubectl -n monitoring create secret generic fleetscope-drift-tokens \
                        #     --from-file=read --from-file=write
                        {"name": "tokens", "secret": {"secretName": f"{DRIFT}-tokens"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    # Headless: each shard is reached by its own name, fleetscope-drift-N.fleetscope-drift.NAMESPACE.svc, which
    # clients build from http://fleetscope-drift-{shard}.fleetscope-drift.NAMESPACE.svc:9840.
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(DRIFT, config, "drift-service"),
               "spec": {"clusterIP": "None", "selector": labels,
                        "ports": [{"name": "http", "port": DRIFT_PORT, "targetPort": "http"}]}}
    return [configmap, statefulset, service]


def monitors(config: KubernetesConfig) -> list[dict]:
    def monitor(kind: str, name: str, component: str, spec: dict) -> dict:
        metadata = _metadata(name, config, component)
        metadata["labels"].update(dict(config.monitor_labels))
        return {"apiVersion": "monitoring.coreos.com/v1", "kind": kind, "metadata": metadata, "spec": spec}

    endpoint = {"interval": config.scrape_interval}
    # jobLabel makes `job` the app name, which the alert selectors match (mixin/config.py: selectors).
    # honorLabels keeps the namespace, pod and container the exporter puts on each GPU (the pod that
    # holds it) instead of renaming them exported_* under the exporter's own pod: the idle-GPU alert
    # and the serving-efficiency join read them.
    exporter_monitor = monitor("PodMonitor", EXPORTER, "node-exporter", {
        "jobLabel": "app.kubernetes.io/name", "selector": {"matchLabels": _labels(EXPORTER, "node-exporter")},
        "podMetricsEndpoints": [{"port": "metrics", "honorLabels": True, **endpoint}]})
    key, value = config.model_server_label
    model_servers = monitor("PodMonitor", "fleetscope-model-servers", "model-server", {
        "namespaceSelector": {"any": True}, "selector": {"matchLabels": {key: value}},
        "podMetricsEndpoints": [{"port": "metrics", **endpoint, "relabelings": [
            {"action": "replace", "sourceLabels": ["__meta_kubernetes_namespace"], "targetLabel": "namespace"}]}]})
    drift_monitor = monitor("ServiceMonitor", DRIFT, "drift-service", {
        "jobLabel": "app.kubernetes.io/name", "selector": {"matchLabels": _labels(DRIFT, "drift-service")},
        "endpoints": [{"port": "http", **endpoint}]})
    return [exporter_monitor, model_servers, drift_monitor, ray_monitor(config, monitor)]


def ray_monitor(config: KubernetesConfig, monitor: Callable[[str, str, str, dict], dict]) -> dict:
    """Ray's own metrics from KubeRay's Pods, in any namespace: every node's `metrics` port, and the head's
    `as-metrics` (the autoscaler's) and `dash-metrics` (the dashboard's), which worker Pods do not have. The job
    is `ray`, as Ray's own discovery file names it, so that one selector (mixin/config.py selectors.ray) reads
    both; `ray_io_cluster` names the RayCluster, as KubeRay's documentation does. Ray Serve LLM's vLLM series are
    renamed to vLLM's own names (mixin/ray.py SERVE_LLM_VLLM_NAMES)."""
    regex, replacement = ray.SERVE_LLM_VLLM_NAMES
    return monitor("PodMonitor", "fleetscope-ray", "ray", {
        "namespaceSelector": {"any": True},
        "selector": {"matchExpressions": [
            {"key": ray.KUBERAY_NODE_TYPE_LABEL, "operator": "In", "values": ["head", "worker"]}]},
        "podMetricsEndpoints": [{"port": port, "interval": config.scrape_interval, "relabelings": [
            {"action": "replace", "targetLabel": "job", "replacement": ray.DISCOVERY_JOB},
            {"action": "replace", "sourceLabels": [_pod_label(ray.KUBERAY_CLUSTER_LABEL)],
             "targetLabel": "ray_io_cluster"}],
            "metricRelabelings": [{"action": "replace", "sourceLabels": ["__name__"], "regex": regex,
                                   "targetLabel": "__name__", "replacement": replacement}]}
            for port in ray.KUBERAY_PORTS]})


def _pod_label(name: str) -> str:
    """The service-discovery meta label of a Pod label: ray.io/cluster -> __meta_kubernetes_pod_label_ray_io_cluster."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in name)


def alertmanager_alerts_config(alerts: MonitoringConfig) -> MonitoringConfig:
    """The alerts config with its secret files where the Operator mounts the on-call Secret."""
    directory = f"/etc/alertmanager/secrets/{ONCALL_SECRET}"
    receivers = replace(alerts.routing.receivers, secrets_dir=directory,
                        webhook_token_file=f"{directory}/webhook-token")
    return replace(alerts, routing=replace(alerts.routing, receivers=receivers))


def alertmanager_secret(config: KubernetesConfig, alertmanager_yaml: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata("alertmanager-fleetscope", config, "alertmanager"),
            "stringData": {"alertmanager.yaml": alertmanager_yaml}}
