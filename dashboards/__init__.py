"""Grafana dashboards, generated with grafana-foundation-sdk from the metric catalogs:
`python -m fleetscope.dashboards.generate` writes json/, provisioning/ and kubernetes/."""
