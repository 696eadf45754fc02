"""Lint and types as tests, so that CI enforces them: ruff as pyproject.toml configures it, and mypy
(strict on the modules users import: the inference SDK, the drift client, compare())."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing(tmp_path):
    # mypy reads the package through a tree of links with the installed layout (pyproject.toml's package-dir).
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    package = tmp_path / "tree" / "fleetscope"
    package.mkdir(parents=True)
    for entry in (ROOT / package_dirs["fleetscope"]).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in package_dirs.items():
        if name != "fleetscope":
            (package / name.removeprefix("fleetscope.")).symlink_to(ROOT / folder)
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                             "--cache-dir", str(tmp_path / "cache"), "-p", "fleetscope"],
                            cwd=tmp_path / "tree", capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout
