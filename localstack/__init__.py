"""Real Prometheus-ecosystem processes on loopback, for the tests and the demo."""
