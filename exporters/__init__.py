"""The fleetscope node exporter: collectors, the HTTP server, and their metric catalog."""
