"""`fleetscope remediate`: an Alertmanager webhook receiver that drains Slurm nodes or cordons Kubernetes nodes for
the alerts its config names, within rate limits, with every decision audited."""
