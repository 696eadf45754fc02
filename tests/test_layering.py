"""Which way knowledge flows (docs/architecture.md): producers never import consumers, the two
producers never import each other, and the core imports no component."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ("exporters", "drift", "mixin", "dashboards", "alerts", "deploy")
# component: the fleetscope.<component> packages it must not import
FORBIDDEN = {
    "exporters": {"drift", "mixin", "dashboards", "alerts", "deploy"},
    "drift": {"exporters", "mixin", "dashboards", "alerts", "deploy"},
    # The shared config: the core and the producers' catalogs (checked below) only.
    "mixin": {"dashboards", "alerts", "deploy"},
    "alerts": {"dashboards", "deploy"},
    "dashboards": {"deploy"},
    "fleetscope": set(COMPONENTS),
}
# The core's modules that wire the components together.
WIRING = {"cli.py", "demo.py", "example"}


def _imported_components(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "fleetscope" and len(parts) > 1 and parts[1] in COMPONENTS:
                found.add(parts[1])
    return found


def _modules(component: str) -> list[Path]:
    folder = ROOT / component
    return [path for path in folder.rglob("*.py")
            if component != "fleetscope" or path.relative_to(folder).parts[0] not in WIRING]


@pytest.mark.parametrize("component", sorted(FORBIDDEN))
def test_no_component_imports_what_it_must_not(component):
    wrong = {str(path.relative_to(ROOT)): sorted(_imported_components(path) & FORBIDDEN[component])
             for path in _modules(component)}
    assert {path: names for path, names in wrong.items() if names} == {}


# What consumers may read of a producer: its catalog (docs/architecture.md, "What may import what").
CATALOGS = ("fleetscope.exporters.catalog", "fleetscope.drift.catalog")


def _imported_modules(path: Path) -> set[str]:
    """Every fleetscope module a file imports, `from package import module` read as package.module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("fleetscope.")}


@pytest.mark.parametrize("consumer", ["mixin", "alerts", "dashboards", "deploy"])
def test_consumers_read_the_producers_through_their_catalogs_only(consumer):
    """A consumer that imported a producer's module beyond its catalog (alerts/engines.py imported the inference
    SDK's buckets, which loaded opentelemetry and numpy) would tie rules to the SDK's code."""
    wrong = {}
    for path in (ROOT / consumer).rglob("*.py"):
        producers = {name for name in _imported_modules(path)
                     if name.split(".")[1] in ("exporters", "drift") and len(name.split(".")) > 2}
        beyond = sorted(name for name in producers if not name.startswith(CATALOGS))
        if beyond:
            wrong[str(path.relative_to(ROOT))] = beyond
    assert wrong == {}


def test_the_architecture_doc_names_every_room_and_only_rooms_that_exist():
    """docs/architecture.md's component table lists each folder pyproject.toml installs, and every folder it lists
    exists; its import table has a row for every component this test checks."""
    import re
    import tomllib

    text = (ROOT / "docs" / "architecture.md").read_text()
    components = text.split("## Components", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| \[`([a-z_]+)/`\]", components, flags=re.MULTILINE))
    installed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    assert installed <= named, f"rooms the doc does not name: {sorted(installed - named)}"
    assert all((ROOT / folder).is_dir() for folder in named), sorted(f for f in named if not (ROOT / f).is_dir())
    rules = text.split("What may import what:", 1)[1].split("\n\n", 2)[1]
    for component in (*COMPONENTS, "fleetscope"):
        assert f"| `{component}/`" in rules, f"no import rule for {component}/"


def test_the_check_sees_imports():
    assert _imported_components(ROOT / "dashboards" / "gpu.py") >= {"exporters"}
    assert "fleetscope.exporters.catalog.gpu" in _imported_modules(ROOT / "dashboards" / "gpu.py")
