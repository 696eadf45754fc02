"""The vLLM lab (scripts/engines.sh vllm): a real vLLM on a tiny random Llama, a scripted traffic mix,
its page recorded after every phase into tests/fixtures/engines/vllm-<version>/ with the ground truth
beside it, then replayed through the generated rules into a real Prometheus and every schema series
compared with that ground truth."""

from __future__ import annotations

import pytest

from tests.engines import vllm_lab
from tests.engines.replay import FIXTURES, assert_agree, replay
from tests.engines.traffic import emptied

# The engine's start takes one to three minutes on two shared cores, the traffic and the replay two more.
pytestmark = [pytest.mark.engines, pytest.mark.integration, pytest.mark.timeout(900)]


def test_vllm_pages_recorded_and_read_as_the_ground_truth_says(tmp_path, prometheus):
    if not vllm_lab.PYTHON.exists():
        pytest.fail(f"no vLLM environment at {vllm_lab.PYTHON.parent.parent}: run `bash scripts/engines.sh vllm`")
    folder = emptied(FIXTURES / f"vllm-{vllm_lab.version()}")
    phases = vllm_lab.record(folder, tmp_path)
    assert [name.split("-", 1)[1] for name in phases] == [phase for phase, _ in vllm_lab.PHASES]
    rows = replay(folder, prometheus, tmp_path)
    print("\n" + "\n".join(str(row) for row in rows))
    assert_agree(rows)
