"""The drift service: live model outputs compared with reference windows, as metrics.

`compare()` is the statistics library (Evidently's DataDriftPreset, exactly, and faster);
`fleetscope drift serve` is the service; `fleetscope.drift.client` batches outputs from
model servers to it.
"""

from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.compare import ColumnDrift, DriftResult, PreparedReference, compare

__all__ = ["ColumnDrift", "ColumnKind", "DriftResult", "PreparedReference", "compare"]
