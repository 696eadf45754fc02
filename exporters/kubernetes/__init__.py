"""Kubernetes attribution: which pod holds which GPU."""
