"""Which way knowledge flows: every module of every room is held to its row of docs/architecture.md's table "What may
import what", read from the doc itself, with no exceptions."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
# Each room: its folder, and the package pyproject.toml installs it as (fleetscope.<room>, or fleetscope itself).
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
ROOMS = {package.removeprefix("fleetscope").removeprefix(".") or "fleetscope": folder
         for package, folder in PACKAGE_DIRS.items()}


def _import_rules(text: str) -> dict[str, set[str]]:
    """{room: the rooms its modules never import}, from the table under "What may import what:"."""
    table = text.split("What may import what:", 1)[1].split("\n\n", 2)[1]
    rules = {}
    for row in table.splitlines()[2:]:
        module_in, _may, never = (cell.strip() for cell in row.strip("|").split("|"))
        room = re.match(r"`([a-z_]+)/`", module_in)
        assert room, f"a row of the import table names no room: {row}"
        rules[room.group(1)] = set(re.findall(r"`([a-z_]+)`", never.split(";")[0]))
    return rules


RULES = _import_rules(ARCHITECTURE)


def _imported_rooms(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "fleetscope" and len(parts) > 1 and parts[1] in ROOMS:
                found.add(parts[1])
    return found


def test_every_room_has_a_row_and_every_row_a_room():
    assert set(RULES) == set(ROOMS), f"rooms without a row: {sorted(set(ROOMS) - set(RULES))}; " \
                                     f"rows without a room: {sorted(set(RULES) - set(ROOMS))}"
    assert all(forbidden <= set(ROOMS) for forbidden in RULES.values())


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_no_module_imports_what_its_room_must_not(room):
    wrong = {str(path.relative_to(ROOT)): sorted(_imported_rooms(path) & RULES[room])
             for path in sorted((ROOT / ROOMS[room]).rglob("*.py"))}
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
    exists."""
    components = ARCHITECTURE.split("## Components", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| \[`([a-z_]+)/`\]", components, flags=re.MULTILINE))
    installed = set(ROOMS.values())
    assert installed <= named, f"rooms the doc does not name: {sorted(installed - named)}"
    assert all((ROOT / folder).is_dir() for folder in named), sorted(f for f in named if not (ROOT / f).is_dir())


def test_the_check_sees_imports_and_reads_the_table():
    assert _imported_rooms(ROOT / "dashboards" / "gpu.py") >= {"exporters"}
    assert RULES["exporters"] >= {"drift", "simulation", "example"} and RULES["example"] == set()
    assert "fleetscope.exporters.catalog.gpu" in _imported_modules(ROOT / "dashboards" / "gpu.py")
