"""Tests that start a real Ray head (fleetscope.localstack.ray.RayHead): skipped, with the reason, where Ray is
not installed (the `ray` extra). Each module starts at most one head; drivers run in subprocesses, so the
pytest process never imports Ray."""

from __future__ import annotations

import pytest

from fleetscope.localstack.ray import ray_installed


def pytest_collection_modifyitems(config, items):
    if ray_installed():
        return
    skip = pytest.mark.skip(reason="Ray is not installed: pip install 'fleetscope[ray]'")
    for item in items:
        if "tests/ray/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
