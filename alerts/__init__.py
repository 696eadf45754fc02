"""Generated Prometheus rules and Alertmanager routing (issue: alerts). Nothing is built here yet."""
