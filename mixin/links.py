"""Where each fleetscope dashboard lives in Grafana and which variables filter it: shared by the dashboards,
which are built with these uids, and the alerts, whose dashboard_url opens the dashboard on the alert's
own host, GPU or model."""

from __future__ import annotations

UIDS = {
    "fleet": "fleetscope-fleet-overview",
    "gpu": "fleetscope-node-gpu-detail",
    "collectives": "fleetscope-collectives",
    "inference": "fleetscope-inference",
    "drift": "fleetscope-drift",
    "self": "fleetscope-self",
    "training": "fleetscope-training",
    "ray": "fleetscope-ray",
}
# (variable, the alert label that sets it) for each dashboard.
FILTERS = {
    "fleet": (("cluster", "cluster"), ("hostname", "hostname")),
    "gpu": (("cluster", "cluster"), ("hostname", "hostname"), ("gpu", "gpu")),
    "collectives": (("cluster", "cluster"), ("hostname", "hostname"), ("comm", "comm_name")),
    "inference": (("cluster", "cluster"), ("namespace", "namespace"), ("model", "model"), ("engine", "engine")),
    "drift": (("cluster", "cluster"), ("model", "model")),
    "self": (("cluster", "cluster"), ("job", "job"), ("instance", "instance")),
    "training": (("cluster", "cluster"), ("training_job", "training_job")),
    "ray": (("cluster", "cluster"), ("instance", "instance")),
}


def alert_dashboard_url(grafana_url: str, dashboard: str) -> str:
    """A Go template for an alert's dashboard_url annotation: each variable set from the alert's label where
    the alert has it, so that the link opens on what the alert is about."""
    variables = "".join(f"{{{{ with $labels.{label} }}}}&var-{variable}={{{{ . | urlquery }}}}{{{{ end }}}}"
                        for variable, label in FILTERS[dashboard])
    return f"{grafana_url.rstrip('/')}/d/{UIDS[dashboard]}?orgId=1{variables}"
