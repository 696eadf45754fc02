"""Engine lab tests (marked `engines`) run a real serving engine from its own virtual environment under
.engines/ and need minutes of CPU: skipped unless asked for, with `-m engines` or FLEETSCOPE_ENGINES=1
(scripts/engines.sh asks). CI installs no engine; it replays the pages the lab recorded."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if "engines" in (config.option.markexpr or "") or os.environ.get("FLEETSCOPE_ENGINES"):
        return
    skip = pytest.mark.skip(reason="engine lab: run scripts/engines.sh, or pytest -m engines")
    for item in items:
        if item.get_closest_marker("engines") is not None:
            item.add_marker(skip)
