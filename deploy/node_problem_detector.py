"""node-problem-detector's custom plugin monitor config for `fleetscope check` (pkg/custompluginmonitor of
kubernetes/node-problem-detector): NPD runs the check every few minutes and sets the node condition GPUNodeUnfit
from its exit status (0 OK, 1 NonOK, 2 Unknown) and the first line it prints, which `--output=npd` keeps within
max_output_length. Pass the file to NPD with --config.custom-plugin-monitor."""

from __future__ import annotations

import json

CONDITION = "GPUNodeUnfit"
# The fleetscope command on the node (the exporter's image puts it here; a host install puts it on PATH).
COMMAND = "/usr/local/bin/fleetscope"


def config(invoke_interval: str = "5m", timeout: str = "1m") -> dict:
    return {
        "plugin": "custom",
        "pluginConfig": {"invoke_interval": invoke_interval, "timeout": timeout, "max_output_length": 80,
                         "concurrency": 1, "enable_message_change_based_condition_update": False},
        "source": "fleetscope-check",
        "metricsReporting": True,
        "conditions": [{"type": CONDITION, "reason": "FleetscopeCheckPassed",
                        "message": "fleetscope check finds the node fit for work"}],
        "rules": [{"type": "permanent", "condition": CONDITION, "reason": "FleetscopeCheckFailed",
                   "path": COMMAND, "args": ["check", "--output=npd"], "timeout": timeout}],
    }


def text() -> str:
    """JSON has no comments: the generator's header is left out; tests compare the file with this."""
    return json.dumps(config(), indent=2) + "\n"
