"""The drift quick start (docs/quickstart.md) and the ground-truth example (docs/drift.md) run as written.

The marked blocks are run by bash in a copy of example/drift-quickstart/ (beside a `.venv` that is this
environment), the service on a free port of 127.0.0.1 instead of 9840; the service is stopped and the copy
removed at the end."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleetscope.localstack.process import ManagedProcess, http_ok, start_on_free_port
from tests.docs.blocks import ROOT, block

EXAMPLE = Path("example") / "drift-quickstart"
DOC_PORT = "127.0.0.1:9840"


def _example_files() -> list[Path]:
    """The example's files as a clean clone holds them (not the tokens or store a local run wrote)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", str(EXAMPLE)],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout.split("\0")
    return [Path(name) for name in listed if name]


@pytest.fixture(scope="module")
def checkout() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fleetscope-quickstart-") as directory:
        root = Path(directory)
        (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        files = _example_files()
        assert {path.name for path in files} >= {"drift.yaml", "prepare.py"}, files
        for path in files:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, root / path)
        yield root


def run(text: str, cwd: Path, port: int | None = None) -> subprocess.CompletedProcess[str]:
    if port is not None:
        assert DOC_PORT in text, text
        text = text.replace(DOC_PORT, f"127.0.0.1:{port}")
    return subprocess.run(["bash", "-e", "-u", "-o", "pipefail", "-c", text], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def service(checkout) -> Iterator[int]:
    prepared = run(block("docs/quickstart.md", "drift-prepare"), checkout)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    for name in ("drift-write-tokens", "drift-read-tokens", "iris-reference.parquet"):
        assert (checkout / EXAMPLE / name).is_file(), name
    serve = block("docs/quickstart.md", "drift-serve").strip()
    assert "\n" not in serve and DOC_PORT in serve, serve

    def make(port: int) -> ManagedProcess:
        command = serve.replace(DOC_PORT, f"127.0.0.1:{port}")
        return ManagedProcess(["bash", "-c", f"cd {shlex.quote(str(checkout))} && exec {command}"],
                              checkout / "serve.log", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"))

    process, port = start_on_free_port(make, timeout=90)
    try:
        yield port
    finally:
        process.stop()


@pytest.mark.integration
def test_the_quick_start_sends_outputs_evaluates_and_serves_scores(checkout, service):
    result = run(block("docs/quickstart.md", "drift-outputs"), checkout, service)
    assert result.returncode == 0, result.stdout + result.stderr
    accepted, evaluation, *scores = result.stdout.splitlines()
    assert json.loads(accepted) == {"accepted": 2, "first_row": 0}
    evaluated = json.loads(evaluation)
    assert evaluated["model"] == "iris" and evaluated["outcome"] == "success", evaluated
    assert evaluated["reference"]["rows"] == 150  # the iris data set, as prepare.py wrote it
    assert scores and all(line.startswith('fleetscope_drift_score{') for line in scores), scores
    assert any('model="iris"' in line and 'column="confidence"' in line for line in scores), scores


@pytest.mark.integration
def test_the_ground_truth_example_joins_labels_to_the_example_models_outputs(checkout, service):
    result = run(block("docs/drift.md", "drift-labels"), checkout, service)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs, labels = result.stdout.splitlines()
    assert json.loads(outputs) == {"accepted": 2, "first_row": 0}
    assert json.loads(labels) == {"joined": 2, "prejoined": 0, "unknown_request": 0, "beyond_horizon": 0,
                                  "duplicate": 0}


def test_the_documented_fraud_model_is_the_one_the_example_defines():
    documented = yaml.safe_load(block("docs/drift.md", "fraud-config"))
    example = yaml.safe_load((ROOT / EXAMPLE / "drift.yaml").read_text())
    assert documented["models"]["fraud"] == example["models"]["fraud"]


def test_the_quick_start_includes_the_labels_example_it_describes():
    text = (ROOT / "docs" / "quickstart.md").read_text()
    assert '--8<-- "docs/drift.md:labels"' in text
    drift = (ROOT / "docs" / "drift.md").read_text()
    start, end = drift.index("[start:labels]"), drift.index("[end:labels]")
    assert "<!-- test: drift-labels -->" in drift[start:end]
