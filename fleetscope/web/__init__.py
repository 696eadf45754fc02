"""HTTP serving shared by fleetscope's services: exporter-toolkit web config, TLS, basic auth."""
