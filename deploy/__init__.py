"""Deployment onto Kubernetes GPU clusters and bare-metal nodes, generated: `python -m fleetscope.deploy.generate`."""
