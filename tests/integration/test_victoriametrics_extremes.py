"""The fleet overview's panel of the least busy nodes, on the VictoriaMetrics the global path uses (Debian's 1.79):
an extremes record's series come and go as nodes enter and leave a cluster's ten, and that release's bottomk,
over a range, keeps the gaps and drops values (VictoriaMetrics#5506). The panel answers every node the record
holds at each step all the same."""

from __future__ import annotations

import time
import urllib.request

import pytest

from fleetscope.alerts import fleet
from fleetscope.dashboards import queries
from fleetscope.dashboards.common import UIDS
from fleetscope.localstack.victoriametrics import VictoriaMetrics

pytestmark = pytest.mark.integration

SAMPLE = 15  # seconds between a record's evaluations
PHASE = 600  # seconds each set of ten nodes holds
STEP = 60


def _members(phase: int) -> list[int]:
    """The ten nodes a cluster's record of its least busy holds in each phase: node 0 leaves for node 10 in the
    second and comes back in the third."""
    return list(range(1, 11)) if phase == 1 else list(range(10))


def _utilization(node: int) -> float:
    return round(0.05 * (node + 1), 2)


def test_the_least_busy_nodes_panel_answers_every_node_of_the_record_at_each_step(tmp_path):
    start = int(time.time()) // STEP * STEP - 3 * PHASE - 300
    lines = [f'{fleet.NODE_LEAST_BUSY}{{cluster="c",hostname="n{node:02d}"}} {_utilization(node)} {at * 1000}'
             for phase in range(3) for at in range(start + phase * PHASE, start + (phase + 1) * PHASE, SAMPLE)
             for node in _members(phase)]
    board = next(board for board in queries.load() if board["uid"] == UIDS["fleet"])
    [panel] = [panel for panel in queries.panel_queries(board) if panel.title.startswith("Least busy nodes")]
    [expr] = [queries.concrete(expr, queries.defaults(board) | {"cluster": "c"}, "1m") for expr in panel.exprs]
    with VictoriaMetrics(tmp_path / "vm") as store:
        request = urllib.request.Request(f"{store.url}/api/v1/import/prometheus", data="\n".join(lines).encode())
        urllib.request.urlopen(request, timeout=10).close()
        urllib.request.urlopen(f"{store.url}/internal/force_flush", timeout=10).close()
        answer = store.api("query_range", query=expr, start=str(start), end=str(start + 3 * PHASE), step=str(STEP))
    held: dict[int, set[str]] = {}
    for series in answer["result"]:
        for at, value in series["values"]:
            assert float(value) == _utilization(int(series["metric"]["hostname"][1:]))
            held.setdefault(int(at), set()).add(series["metric"]["hostname"])
    for phase in range(3):
        # Steps well inside a phase: a node that left is a minute (a step) gone from the record.
        for at in range(start + phase * PHASE + 2 * STEP, start + (phase + 1) * PHASE - STEP, STEP):
            assert held.get(at) == {f"n{node:02d}" for node in _members(phase)}, (phase, at, held.get(at))
