"""The attention records (each GPU's XID and double-bit ECC counts over a day, its latest XID, its row remaps),
recorded only for the GPUs that need someone: promtool evaluates the generated rules over a first event, a
second, an exporter restart (a counter reset) and events leaving the day, and the fleet overview's table, which
reads the records, answers what the raw query over every GPU's counters answered."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from fleetscope.alerts import fleet, generate
from fleetscope.dashboards import fleet as fleet_dashboard
from fleetscope.dashboards import queries
from fleetscope.dashboards.common import UIDS
from fleetscope.exporters.catalog import gpu
from fleetscope.mixin.config import MonitoringConfig

ALERTS = Path(generate.__file__).resolve().parent
NODE = 'job="fleetscope-exporter",cluster="c",instance="n:9835",hostname="n"'
DAY = 24 * 60  # minutes; the input series are a sample a minute


def _gpu(index: int, **extra: str) -> str:
    return f'{NODE},gpu="{index}",uuid="GPU-{index}"' + "".join(f',{k}="{v}"' for k, v in extra.items())


def _steps(*runs: tuple[float, int]) -> str:
    """promtool's series notation for a value held for a number of minutes, run after run, the last one held to
    two days."""
    total = sum(minutes for _, minutes in runs)
    runs = runs[:-1] + ((runs[-1][0], runs[-1][1] + 2 * DAY - total),)
    return " ".join(f"{value:g}x{minutes - 1}" if minutes > 1 else f"{value:g}" for value, minutes in runs)


SERIES = {
    # gpu 0: well all along; gpu 1: a first XID at 30m, a second at 60m; gpu 2: three XIDs at 10m, its exporter
    # restarted at 20m (every counter from 0), one more XID at 30m; gpu 3: two double-bit ECC errors at 60m, among
    # many corrected ones, and a row remap pending since.
    gpu.XID_EVENTS: {0: _steps((0, 1)), 1: _steps((0, 30), (1, 30), (2, 1)),
                     2: _steps((0, 10), (3, 10), (0, 10), (1, 1)), 3: _steps((0, 1))},
    gpu.LAST_XID: {0: _steps((0, 1)), 1: _steps((0, 30), (79, 1)), 2: _steps((0, 10), (48, 10), (0, 10), (13, 1)),
                   3: _steps((0, 1))},
    gpu.ROW_REMAP_PENDING: {0: _steps((0, 1)), 1: _steps((0, 1)), 2: _steps((0, 1)), 3: _steps((0, 60), (1, 1))},
    gpu.ROW_REMAP_FAILED: {index: _steps((0, 1)) for index in range(4)},
}
ECC = {(index, "single_bit"): _steps((0, 1)) for index in range(3)} | {
    (index, "double_bit"): _steps((0, 1)) for index in range(3)} | {
    (3, "single_bit"): f"0+5x{2 * DAY}", (3, "double_bit"): _steps((0, 60), (2, 1))}


def _input() -> list[dict]:
    series = [{"series": f"{metric.name}{{{_gpu(index)}}}", "values": values}
              for metric, by_gpu in SERIES.items() for index, values in by_gpu.items()]
    return series + [{"series": f"{gpu.ECC_ERRORS.name}{{{_gpu(index, type=kind)}}}", "values": values}
                     for (index, kind), values in ECC.items()]


def _samples(name: str, values: dict[int, float], labels: str = NODE) -> list[dict]:
    return [{"labels": f'{name}{{{labels},gpu="{index}"}}', "value": value} for index, value in values.items()]


def _recorded(name: str, eval_time: str, values: dict[int, float]) -> dict:
    return {"expr": name, "eval_time": eval_time, "exp_samples": _samples(name, values)}


# The raw query over every GPU's counters that the table's first query replaced.
RAW_XIDS = (f"sum by ({fleet_dashboard.GPU_COLUMNS}) (round(increase({gpu.XID_EVENTS.name}"
            f'{{job="fleetscope-exporter"}}[{fleet.ATTENTION_WINDOW}]))) > 0')


def _table_queries() -> list[str]:
    """The attention table's queries with cluster c chosen: XID events, latest XID, double-bit ECC, row remaps."""
    board = next(board for board in queries.load() if board["uid"] == UIDS["fleet"])
    panel = next(panel for panel in queries.panel_queries(board) if panel.title == fleet_dashboard.ATTENTION)
    chosen = queries.defaults(board) | {"cluster": "c"}
    return [queries.concrete(expr, chosen, "1m") for expr in panel.exprs]


def _answers(eval_time: str, expected: list[tuple[str, dict[int, float]]]) -> list[dict]:
    """Each query's rows (one per GPU, by the table's columns) at one time."""
    return [{"expr": expr, "eval_time": eval_time, "exp_samples": _samples("", values, 'cluster="c",hostname="n"')}
            for expr, values in expected]


def test_the_attention_records_hold_only_the_gpus_that_need_someone_and_the_table_reads_them(tmp_path):
    late, gone = f"{DAY + 45}m", f"{DAY + 90}m"
    tests = [
        # Every event counts, the first included (XID_EVENTS is there at 0 before it) and those before a restart.
        _recorded(fleet.GPU_XIDS, "2h", {1: 2, 2: 4}),
        _recorded(fleet.GPU_DOUBLE_BIT_ECC, "2h", {3: 2}),
        _recorded(fleet.GPU_LAST_XID, "2h", {1: 79, 2: 13}),
        _recorded(fleet.GPU_ROW_REMAPS, "2h", {3: 1}),
        # A day after the first XID of gpu 1 only its second is counted; a day after gpu 2's last, nothing is.
        _recorded(fleet.GPU_XIDS, late, {1: 1}),
        _recorded(fleet.GPU_XIDS, gone, {}),
        _recorded(fleet.GPU_DOUBLE_BIT_ECC, gone, {}),
    ]
    xids, last_xid, ecc, remaps = _table_queries()
    tests += _answers("2h", [(xids, {1: 2, 2: 4}), (RAW_XIDS, {1: 2, 2: 4}), (last_xid, {1: 79, 2: 13}),
                             (ecc, {3: 2}), (remaps, {3: 1})])
    tests += _answers(late, [(xids, {1: 1}), (RAW_XIDS, {1: 1})]) + _answers(gone, [(xids, {}), (RAW_XIDS, {})])
    spec = {"rule_files": [str(ALERTS / "rules" / "gpu.yaml")], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": _input(), "promql_expr_test": tests}]}
    path = tmp_path / "attention.test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_attention_records_are_evaluated_in_their_own_slower_group():
    """A day of every GPU's counters is the costliest fleet read: once gpu.attention_interval, not every round."""
    groups = {group["name"]: group for group in fleet.rule_groups(MonitoringConfig())}
    attention = groups["fleetscope-fleet-attention"]
    assert attention["interval"] == "1m"
    assert {rule["record"] for rule in attention["rules"]} == {
        fleet.GPU_XIDS, fleet.GPU_DOUBLE_BIT_ECC, fleet.GPU_LAST_XID, fleet.GPU_ROW_REMAPS}
    assert "interval" not in groups["fleetscope-fleet-recording"]
