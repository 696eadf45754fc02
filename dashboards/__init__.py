"""Generated Grafana dashboards (issue: dashboards). Nothing is built here yet."""
