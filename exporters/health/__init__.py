"""Node readiness: `fleetscope check` (command.py) and the exporter's health collector (collector.py) judge what a
node has against a policy (policy.py) with the same passive checks (checks.py), read from NVML (gpu_facts.py), the
kernel log (kernel_log.py) and the host (host_facts.py)."""
