"""What users install is the wheel: it is built from this checkout with its sdist, installed into a
fresh virtual environment, and run from there, away from the repository, so that nothing can be
found in the checkout instead of in the package.

The wheel is installed without its dependencies; the fresh environment reaches them through a .pth
file naming this environment's site-packages, so that the test needs no network and installs only
what the wheel holds (the editable install's import hook is a .pth of that directory, which Python
does not run for a directory added by a .pth line)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from fleetscope.localstack.process import fleetscope_server

ROOT = Path(__file__).resolve().parent.parent
# Every data file a command reads, by the folder it lives in and where it lands in the package.
DATA = {"alerts/rules": "*.yaml", "alerts/runbooks": "*.md", "alerts/alertmanager": "*.yml",
        "alerts/tests": "*.yaml", "dashboards/json": "*.json", "dashboards/provisioning": "*.yaml",
        "deploy/kubernetes": "*.yaml", "deploy/systemd": "*.service", "deploy/prometheus": "**/*.y*ml",
        "deploy/containers": "*", "deploy/fleet": "*.yml", "deploy/node-problem-detector": "*.json",
        "simulation/recordings": "*.json"}


def _data_files() -> set[str]:
    """The data files under the package's name: alerts/rules/gpu.yaml is fleetscope/alerts/rules/gpu.yaml."""
    found = set()
    for folder, pattern in DATA.items():
        for path in (ROOT / folder).glob(pattern):
            if path.is_file():
                relative = path.relative_to(ROOT).as_posix()
                found.add(relative if relative.startswith("fleetscope/") else f"fleetscope/{relative}")
    return found


def test_every_file_a_generator_writes_is_package_data():
    """What `fleetscope generate` writes into the package is what the wheel must carry: each generated file is
    among DATA's, which test_every_data_file_the_commands_read_is_packaged finds in the wheel and the sdist."""
    from fleetscope.alerts import generate as alerts
    from fleetscope.dashboards import generate as dashboards
    from fleetscope.deploy import generate as deploy

    generated = {f"fleetscope/{room}/{name}" for room, module in (("alerts", alerts), ("dashboards", dashboards),
                                                                  ("deploy", deploy)) for name in module.files()}
    assert generated - _data_files() == set()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    # Built from a copy of the files git knows, as a clean clone holds them: setuptools reuses build/ in
    # the source tree, whose leftovers would hide a file the package data no longer names.
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel; returns its python."""
    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(built["wheel"])],
                   check=True, capture_output=True, timeout=300)
    return python


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_every_data_file_the_commands_read_is_packaged(built, kind):
    expected = _data_files()
    assert len(expected) > 40
    if kind == "wheel":
        with zipfile.ZipFile(built["wheel"]) as wheel:
            names = set(wheel.namelist())
        assert expected - names == set()
    else:
        with tarfile.open(built["sdist"]) as sdist:
            members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        in_repository = {name.removeprefix("fleetscope/") if not (ROOT / name).exists() else name
                         for name in expected}
        assert in_repository - members == set()


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    where = _run(installed, "-c", "import fleetscope.alerts, fleetscope.exporters; "
                                  "print(fleetscope.alerts.__file__); print(fleetscope.exporters.__file__)",
                 cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).is_relative_to(installed.parent.parent), line
    version = _run(installed.parent / "fleetscope", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("fleetscope "), version.stdout + version.stderr


def test_the_generators_write_from_the_installed_package_what_the_checkout_commits(installed, tmp_path):
    for module, committed in (("fleetscope.alerts.generate", ROOT / "alerts" / "rules" / "inference.yaml"),
                              ("fleetscope.dashboards.generate", ROOT / "dashboards" / "json" /
                               "fleetscope-inference.json"),
                              ("fleetscope.deploy.generate", ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml")):
        out = tmp_path / module
        result = _run(installed, "-m", module, str(out), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        written = [path for path in out.rglob(committed.name)]
        assert written, f"{module} wrote no {committed.name}"
        assert written[0].read_text() == committed.read_text(), module


@pytest.mark.integration
def test_the_installed_exporter_serves_a_simulated_node(installed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `python -m` puts the working directory first on sys.path
    process, address = fleetscope_server(["exporter", "--simulate"], tmp_path, python=str(installed))
    process.start(timeout=60)
    try:
        page = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
        assert "fleetscope_gpu_up" in page and "fleetscope_exporter_collector_success" in page
    finally:
        process.stop()
