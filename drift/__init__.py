"""The drift service: live model outputs compared with reference windows, as metrics.

`compare()` is the statistics library (Evidently's DataDriftPreset, exactly, and faster);
`fleetscope drift serve` is the service; `fleetscope.drift.client` batches outputs from
model servers to it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ColumnDrift", "ColumnKind", "DriftResult", "PreparedReference", "compare"]


def __getattr__(name: str) -> Any:
    # Imported on first use: model servers import fleetscope.drift.client and the catalog, which
    # need neither pandas nor scipy (the `drift` extra).
    if name == "ColumnKind":
        return importlib.import_module("fleetscope.drift.columns").ColumnKind
    if name in __all__:
        return getattr(importlib.import_module("fleetscope.drift.compare"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
