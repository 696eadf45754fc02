"""The Dynamo lab (scripts/engines.sh dynamo): Dynamo's frontend in front of its mocker engine, a scripted traffic
mix, the frontend's page recorded after every phase into tests/fixtures/engines/dynamo-<version>/ with the ground
truth beside it, then replayed through the generated rules into a real Prometheus and every schema series compared
with that ground truth."""

from __future__ import annotations

import pytest

from tests.engines import dynamo_lab
from tests.engines.replay import FIXTURES, assert_agree, replay
from tests.engines.traffic import emptied

pytestmark = [pytest.mark.engines, pytest.mark.integration, pytest.mark.timeout(900)]


def test_dynamo_pages_recorded_and_read_as_the_ground_truth_says(tmp_path, prometheus):
    if not dynamo_lab.PYTHON.exists():
        pytest.fail(f"no Dynamo environment at {dynamo_lab.PYTHON.parent.parent}: run `bash scripts/engines.sh dynamo`")
    folder = emptied(FIXTURES / f"dynamo-{dynamo_lab.version()}")
    phases = dynamo_lab.record(folder, tmp_path)
    assert [name.split("-", 1)[1] for name in phases] == [phase for phase, _ in dynamo_lab.PHASES]
    rows = replay(folder, prometheus, tmp_path)
    print("\n" + "\n".join(str(row) for row in rows))
    assert_agree(rows)
