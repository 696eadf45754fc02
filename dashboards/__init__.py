"""Grafana dashboards, generated with grafana-foundation-sdk from the metric catalogs:
`python -m fleetscope.dashboards.generate` writes json/ and provisioning/ (the dashboards' ConfigMaps go to
deploy/kubernetes/dashboards.yaml, written by `python -m fleetscope.deploy.generate`)."""
