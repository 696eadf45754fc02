"""Bare metal: systemd units for the exporter and the drift service, sandboxed, and a Prometheus
configuration that finds them, and Ray's nodes, through file-based service discovery."""

from __future__ import annotations

from collections.abc import Sequence

from fleetscope.deploy.kubernetes import DRIFT, DRIFT_PORT, EXPORTER, EXPORTER_PORT
from fleetscope.mixin import ray

PREFIX = "/opt/fleetscope"  # python3 -m venv /opt/fleetscope && /opt/fleetscope/bin/pip install 'fleetscope[drift]'

# What the services need of the system: nothing beyond reading it and their own state.
SANDBOX = """\
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
UMask=0077
"""

EXPORTER_UNIT = f"""\
[Unit]
Description=fleetscope node exporter: GPU (NVML), fabric and NCCL telemetry for Prometheus
Documentation=https://github.com/fleetscope/fleetscope
Wants=network-online.target
After=network-online.target nvidia-persistenced.service

[Service]
Type=simple
ExecStart={PREFIX}/bin/fleetscope exporter --web.listen-address=:{EXPORTER_PORT} --log.format=json \\
    --collector.nccl.inspector-dir=/var/log/nccl-inspector
Restart=on-failure
RestartSec=5s
{SANDBOX}# NVML opens /dev/nvidiactl, /dev/nvidia<N> and, for MIG, /dev/nvidia-caps; nothing else.
PrivateDevices=no
DevicePolicy=closed
DeviceAllow=char-nvidia-frontend rw
DeviceAllow=char-nvidia-caps r
# Process attribution: NVML names the processes on each GPU by host PID.
ProtectProc=default
ReadOnlyPaths=/var/log/nccl-inspector
# ctypes (NVML's bindings) needs writable and executable memory for its callbacks.
MemoryDenyWriteExecute=no

[Install]
WantedBy=multi-user.target
"""

DRIFT_UNIT = f"""\
[Unit]
Description=fleetscope drift service: model outputs against references, as Prometheus metrics
Documentation=https://github.com/fleetscope/fleetscope
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={PREFIX}/bin/fleetscope drift serve --config.file=/etc/fleetscope/drift.yaml \\
    --web.listen-address=:{DRIFT_PORT} --storage.path=/var/lib/fleetscope-drift/drift.sqlite --log.format=json
Restart=on-failure
RestartSec=5s
# SIGTERM lets acknowledged batches finish; the store is durable at every 202 anyway.
TimeoutStopSec=30s
{SANDBOX}PrivateDevices=yes
MemoryDenyWriteExecute=yes
StateDirectory=fleetscope-drift
StateDirectoryMode=0700
ConfigurationDirectory=fleetscope
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""

FILE_SD = "/etc/prometheus/file_sd"


def scrape_config(job: str, files: Sequence[str], interval: str = "") -> dict:
    """A scrape job whose targets come from files, reloaded by Prometheus as they change."""
    config: dict = {"job_name": job}
    if interval:
        config["scrape_interval"] = interval
    config["file_sd_configs"] = [{"files": list(files), "refresh_interval": "1m"}]
    return config


def scrape_configs() -> list[dict]:
    """fleetscope's jobs, each reading its targets from file_sd/<job>/*.yaml (one file per cluster, rack or
    whatever the fleet's inventory writes)."""
    return [scrape_config(job, [f"{FILE_SD}/{job}/*.yaml"], "15s") for job in (EXPORTER, DRIFT, "model-servers")]


RAY_DISCOVERY_FILE = f"{ray.DEFAULT_TEMP_DIR}/{ray.DISCOVERY_FILE}"


def ray_scrape_config(discovery_file: str = RAY_DISCOVERY_FILE) -> dict:
    """Ray's own metrics: every live node's metrics export port, and the head's autoscaler and dashboard, from the
    file the head writes while its dashboard runs (mixin/ray.py), where the head writes it: Prometheus runs on the
    head, or reads a copy kept in step with it. The file labels every target job="ray", as this job is named. With
    the dashboard off (`--include-dashboard=false`) Ray writes no file: list each node's `--metrics-export-port` in a
    static job named `ray` instead (docs/ray.md). Ray Serve LLM's vLLM series are renamed to vLLM's own names."""
    config = scrape_config(ray.DISCOVERY_JOB, [discovery_file], "15s")
    # Ray replaces the file every 5 s in the session's folder, behind the link named here: a change there raises
    # no event where Prometheus watches, so it reads the file again at this interval.
    config["file_sd_configs"][0]["refresh_interval"] = "30s"
    regex, replacement = ray.SERVE_LLM_VLLM_NAMES
    config["metric_relabel_configs"] = [{"source_labels": ["__name__"], "regex": regex, "target_label": "__name__",
                                         "replacement": replacement}]
    return config


def prometheus_config(rules_dir: str = "/etc/prometheus/rules/fleetscope") -> dict:
    """fleetscope's scrape jobs and the generated rules."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [f"{rules_dir}/*.yaml"],
        "alerting": {"alertmanagers": [{"file_sd_configs": [{"files": [f"{FILE_SD}/alertmanager/*.yaml"]}]}]},
        "scrape_configs": scrape_configs() + [ray_scrape_config()],
    }


def example_targets() -> dict[str, list[dict]]:
    """What the inventory writes under file_sd/<job>/, one file per group of targets."""
    return {
        EXPORTER: [{"targets": [f"gpu-node-{n:03d}:{EXPORTER_PORT}" for n in range(1, 5)],
                    "labels": {"cluster": "train-a"}}],
        DRIFT: [{"targets": [f"drift.internal:{DRIFT_PORT}"], "labels": {"cluster": "train-a"}}],
        "model-servers": [{"targets": ["llm-0.internal:8000", "llm-1.internal:8000"],
                           "labels": {"cluster": "train-a", "namespace": "chat"}}],
        "alertmanager": [{"targets": ["alertmanager.internal:9093"]}],
    }
