"""The drift service: live model outputs compared with reference windows, as metrics.

`compare()` is the statistics library (Evidently's DataDriftPreset, exactly, and faster);
`compare_profiles()` scores the same drift from mergeable profiles (fleetscope.drift.profiles), exact where
counts allow and within a stated bound where sketches stand in for rows;
`fleetscope drift serve` is the service; `fleetscope.drift.client` batches outputs from
model servers to it.
"""

from __future__ import annotations

import importlib
from typing import Any

# Where each public name lives. They are imported on first use, so that model servers importing
# fleetscope.drift.client or the catalog load neither pandas nor SciPy (the `drift` extra).
_EXPORTS = {"ColumnKind": "fleetscope.drift.columns", "ColumnDrift": "fleetscope.drift.comparison",
            "DriftResult": "fleetscope.drift.comparison", "PreparedReference": "fleetscope.drift.comparison",
            "compare": "fleetscope.drift.comparison",
            "compare_profiles": "fleetscope.drift.profile_comparison", "Profile": "fleetscope.drift.profiles"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
