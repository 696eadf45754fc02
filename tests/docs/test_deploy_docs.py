"""The deploy pages' steps run as written (docs/deploy/): the bare-metal install from a wheel, the
generated rules where the shipped prometheus.yml reads them, and the Kubernetes overlay that takes the
images from another registry.

The bare-metal blocks run in a copy of the files git holds (a clean clone, beside a `.venv` that is this
environment), with /opt and /etc moved under a temporary directory. pip installs the wheel from dist/ offline
and without its dependencies (PIP_NO_INDEX, PIP_NO_DEPS), which the fresh environment reaches through a .pth
of this one's site-packages, as tests/test_packaging.py does."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.docs.blocks import ROOT, block, commands

ABSOLUTE = re.compile(r"(?<![\w./-])/(opt|etc)/")


def _clean_clone(into: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)


def _rooted(command: str, root: Path) -> str:
    """The command with /opt/... and /etc/... under root."""
    return ABSOLUTE.sub(lambda match: f"{root}/{match.group(1)}/", command)


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[Path, Path]]:
    """(the checkout, the node's root) after the three bare-metal blocks ran."""
    with tempfile.TemporaryDirectory(prefix="fleetscope-baremetal-") as directory:
        checkout, root = Path(directory) / "checkout", Path(directory) / "root"
        checkout.mkdir()
        root.mkdir()
        _clean_clone(checkout)
        (checkout / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        environment = {"PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin", "HOME": directory,
                       "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        for name in ("bare-metal-build", "bare-metal-install", "bare-metal-config"):
            for command in commands(block("docs/deploy/bare-metal.md", name)):
                result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", _rooted(command, root)], cwd=checkout,
                                        env=environment, capture_output=True, text=True, timeout=300)
                assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
                if command.startswith("python3 -m venv "):  # the fresh environment reaches the dependencies
                    venv = root / "opt" / "fleetscope"
                    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                                           "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                          check=True, capture_output=True, text=True).stdout.strip()
                    (Path(site) / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
        yield checkout, root


@pytest.mark.integration
def test_the_wheel_installs_into_a_fresh_environment_and_runs(node):
    _, root = node
    fleetscope = root / "opt" / "fleetscope" / "bin" / "fleetscope"
    version = subprocess.run([str(fleetscope), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("fleetscope "), version.stdout + version.stderr
    where = subprocess.run([str(root / "opt" / "fleetscope" / "bin" / "python"), "-c",
                            "import fleetscope.alerts; print(fleetscope.alerts.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=root)
    assert Path(where.stdout.strip()).is_relative_to(root / "opt" / "fleetscope"), where.stdout + where.stderr
    for unit in ("fleetscope-exporter.service", "fleetscope-drift.service"):  # the units start what was installed
        text = (root / "etc" / "systemd" / "system" / unit).read_text()
        assert re.search(r"^ExecStart=/opt/fleetscope/bin/fleetscope ", text, re.M), unit


@pytest.mark.integration
def test_prometheus_finds_every_generated_rule_file_where_the_shipped_config_reads_them(node):
    checkout, root = node
    config = root / "etc" / "prometheus" / "prometheus.yml"
    generated = sorted(path.name for path in (root / "etc" / "fleetscope" / "rules").glob("*.yaml"))
    assert generated == sorted(path.name for path in (ROOT / "alerts" / "rules").glob("*.yaml"))
    assert (root / "etc" / "fleetscope" / "alertmanager" / "alertmanager.yml").is_file()
    document = yaml.safe_load(config.read_text())
    (pattern,) = document["rule_files"]
    assert pattern.startswith("/etc/")
    found = sorted(path.name for path in root.glob(pattern.lstrip("/")))
    assert found == generated, f"{pattern} finds {found}"
    rooted = root / "prometheus-rooted.yml"
    rooted.write_text(_rooted(config.read_text(), root))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed; run scripts/setup.sh"
    checked = subprocess.run([promtool, "check", "config", str(rooted)], capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(generated)} rule files found" in checked.stdout + checked.stderr


OVERLAY = ROOT / "deploy" / "overlays" / "my-registry"


def _images(rendered: str) -> list[str]:
    return sorted({container["image"] for document in yaml.safe_load_all(rendered) if document
                   for container in _containers(document)})


def _containers(document: dict) -> list[dict]:
    spec = document.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def test_the_registry_overlay_renders_with_the_overridden_images():
    command = block("docs/deploy/kubernetes.md", "kustomize-overlay").strip()
    assert command == "kubectl kustomize deploy/overlays/my-registry | grep 'image:'"
    shown = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    rendered = subprocess.run(["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    expected = sorted(f"{image['newName']}:{image['newTag']}" for image in overlay["images"])
    assert _images(rendered.stdout) == expected
    assert sorted(line.split("image:")[1].strip() for line in shown.stdout.splitlines()) == expected
    base = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / "kubernetes")], capture_output=True,
                          text=True, timeout=120)
    assert sorted(image["name"] for image in overlay["images"]) == sorted(
        image.split(":")[0] for image in _images(base.stdout))  # every image the manifests run is overridden
    assert len(list(yaml.safe_load_all(rendered.stdout))) == len(list(yaml.safe_load_all(base.stdout)))


def test_the_documented_image_builds_name_what_the_overlay_runs():
    builds = commands(block("docs/deploy/containers.md", "container-builds"))
    tagged = {}
    for command in builds:
        build = re.fullmatch(r"podman build -f (\S+) -t (\S+) \.", command)
        if build:
            assert (ROOT / build.group(1)).is_file(), build.group(1)
            tagged[Path(build.group(1)).name.removesuffix(".Containerfile")] = build.group(2)
    assert set(tagged) == {path.name.removesuffix(".Containerfile")
                           for path in (ROOT / "deploy" / "containers").glob("*.Containerfile")}
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    for image in overlay["images"]:
        component = image["name"].rsplit("/", 1)[1]
        assert tagged[component] == f"{image['newName']}:{image['newTag']}", component
        assert f"podman push {tagged[component]}" in builds
    assert builds[0] == "cp deploy/containers/dockerignore .dockerignore"
    assert (ROOT / "deploy" / "containers" / "dockerignore").is_file()
