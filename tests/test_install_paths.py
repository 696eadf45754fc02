"""Each install path starts its command: the bare package runs `exporter`, `fleetscope[drift]` runs
`drift serve` and `fleetscope[example]` runs `model-server`, as the Containerfiles and the README's
bare-metal lines install them.

Instead of a fresh virtual environment per extra (minutes of downloads), each command runs here
with every module refused that the extra's install would not bring: the import names of the
distributions fleetscope's metadata requires for that extra, followed transitively through their
own metadata. That is what a fresh environment holds, so a dependency missing from an extra (as
starlette once was from `drift`) fails here as it fails there."""

from __future__ import annotations

import json
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fleetscope.localstack.process import ManagedProcess, free_port, http_ok

RUN_WITH_ONLY = textwrap.dedent("""
    import json, os, sys, sysconfig
    from importlib.machinery import PathFinder
    allowed = set(json.loads(sys.argv.pop(1)))
    python_itself = [sysconfig.get_paths()["stdlib"], os.path.join(sysconfig.get_paths()["stdlib"], "lib-dynload")]

    class RefuseWhatTheExtraDoesNotInstall:
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in allowed or top in sys.stdlib_module_names or top.startswith(("__editable__", "_distutils")):
                return None
            if path is None and PathFinder.find_spec(name, python_itself) is not None:
                return None  # part of the Python installation (_sysconfigdata_*, ...)
            raise ModuleNotFoundError(f"No module named {name!r} (not installed by this extra)", name=name)

    sys.meta_path.insert(0, RefuseWhatTheExtraDoesNotInstall())
    from fleetscope.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def installed_by(extra: str | None) -> set[str]:
    """Distribution names `pip install fleetscope[extra]` installs (fleetscope's metadata, transitively)."""
    found: set[str] = set()
    pending = [("fleetscope", frozenset([extra] if extra else []))]
    while pending:
        name, extras = pending.pop()
        key = name.lower().replace("_", "-")
        if (key, extras) in found:
            continue
        found.add((key, extras))
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            markers = [{"extra": wanted} for wanted in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in markers):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _ in found}


def import_names(distributions: set[str]) -> list[str]:
    normalized = {name.lower().replace("_", "-") for name in distributions}
    names = {module for module, owners in metadata.packages_distributions().items()
             if any(owner.lower().replace("_", "-") in normalized for owner in owners)}
    # packages_distributions() infers top-level names from .py files only (Python 3.11): a compiled module at
    # the top level, such as datasketches' _datasketches, is added from the distribution's files.
    for distribution in metadata.distributions():
        if distribution.metadata["Name"].lower().replace("_", "-") in normalized:
            names |= {file.name.split(".")[0] for file in distribution.files or ()
                      if len(file.parts) == 1 and file.suffix in (".so", ".pyd")}
    return sorted(names)


@pytest.mark.parametrize(("extra", "command"), [
    (None, ["exporter", "--simulate"]),
    ("drift", ["drift", "serve"]),
    ("example", ["model-server"]),
])
def test_each_install_path_starts_its_command(extra, command, tmp_path):
    allowed = import_names(installed_by(extra)) + ["fleetscope"]
    port = free_port()
    argv = [sys.executable, "-c", RUN_WITH_ONLY, json.dumps(allowed), *command,
            f"--web.listen-address=127.0.0.1:{port}"]
    if extra == "drift":
        argv.append(f"--storage.path={tmp_path / 'drift.sqlite'}")
    process = ManagedProcess(argv, tmp_path / "command.log", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"))
    try:
        process.start(timeout=120)
    finally:
        process.stop()


def test_the_check_would_catch_a_dependency_an_extra_lacks(tmp_path):
    """The drift service without starlette, as `fleetscope[drift]` installed it before it listed starlette."""
    allowed = [name for name in import_names(installed_by("drift")) if name != "starlette"] + ["fleetscope"]
    import subprocess

    result = subprocess.run([sys.executable, "-c", RUN_WITH_ONLY, json.dumps(allowed), "drift", "serve",
                             f"--storage.path={tmp_path / 'drift.sqlite'}", "--web.listen-address=127.0.0.1:0"],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "starlette" in result.stderr, result.stderr[-2000:]


def test_the_containerfiles_install_the_extras_tested_here():
    containers = Path(__file__).resolve().parent.parent / "deploy" / "containers"
    assert "'fleetscope[drift]'" in (containers / "drift.Containerfile").read_text()
    assert "'fleetscope[example]'" in (containers / "model-server.Containerfile").read_text()
    assert "fleetscope[" not in (containers / "exporter.Containerfile").read_text().replace("fleetscope[]", "")
