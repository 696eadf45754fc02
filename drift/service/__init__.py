"""`fleetscope drift serve`: ingest, windows, storage, evaluation and the HTTP API."""
