"""The Triton lab (scripts/engines.sh triton): a real Triton Inference Server from nvidia-pytriton serving tiny
numpy models, a scripted traffic mix, its page recorded after every phase into
tests/fixtures/engines/triton-<version>/ with the ground truth beside it, then replayed through the generated
rules into a real Prometheus and every schema series compared with that ground truth."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.engines.replay import FIXTURES, assert_agree, replay

REPOSITORY = Path(__file__).resolve().parents[2]
PYTHON = REPOSITORY / ".engines" / "triton" / "bin" / "python"
LAB = Path(__file__).with_name("triton_lab.py")
PHASES = ["successes", "streams", "client-errors", "backend-errors", "overload", "queue-timeouts", "cancelled"]

# Triton starts in seconds here; the phases take about twenty, the replay one more minute at most.
pytestmark = [pytest.mark.engines, pytest.mark.integration, pytest.mark.timeout(600)]


def test_triton_pages_recorded_and_read_as_the_ground_truth_says(tmp_path, prometheus):
    if not PYTHON.exists():
        pytest.fail(f"no Triton environment at {PYTHON.parent.parent}: run `bash scripts/engines.sh triton`")
    # The lab runs in the engine's environment (pytriton and tritonclient), apart from fleetscope's.
    run = subprocess.run([str(PYTHON), str(LAB), str(FIXTURES), str(tmp_path)], capture_output=True, text=True,
                         timeout=300, cwd=REPOSITORY)
    assert run.returncode == 0, run.stderr[-4000:]
    folder = Path(run.stdout.strip().splitlines()[-1])
    assert folder.parent == FIXTURES and folder.name.startswith("triton-"), run.stdout
    assert [p.stem.split("-", 1)[1] for p in sorted(folder.glob("*.prom"))] == PHASES
    rows = replay(folder, prometheus, tmp_path)
    print("\n" + "\n".join(str(row) for row in rows))
    assert_agree(rows)
