"""The drift service: live model outputs compared with reference windows, as metrics.

`compare()` is the statistics library (Evidently's DataDriftPreset, exactly, and faster);
`fleetscope drift serve` is the service; `fleetscope.drift.client` batches outputs from
model servers to it.
"""

try:
    from fleetscope.drift.columns import ColumnKind
    from fleetscope.drift.compare import ColumnDrift, DriftResult, PreparedReference, compare
except ModuleNotFoundError as error:
    # Without the `drift` extra, model servers still import the client and the catalog.
    if (error.name or "").split(".")[0] not in {"pandas", "scipy", "evidently", "pyarrow"}:
        raise

__all__ = ["ColumnDrift", "ColumnKind", "DriftResult", "PreparedReference", "compare"]
