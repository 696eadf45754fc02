"""The extremes records (each cluster's or communicator's top and bottom few) that the fleet-level panels read:
on a fleet of two clusters, promtool evaluates the generated rules, and topk/bottomk over a record answers what
the same topk/bottomk over every node (or rank) answers, filtered to some clusters or jobs or not."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import yaml

from fleetscope.alerts import collectives, fleet, generate
from fleetscope.mixin.promql import bottom

ALERTS = Path(generate.__file__).resolve().parent
JOB = 'job="fleetscope-exporter"'
NODES = {"a": 13, "b": 4}  # more nodes than an extremes record keeps in one cluster, fewer in the other
RANKS = {("0x1", "DP Group 0"): 9, ("0x2", "TP Group 1"): 3}  # ranks on each node of cluster a


def _node(cluster: str, index: int) -> str:
    host = f"{cluster}-node-{index:02d}"
    return f'{JOB},cluster="{cluster}",instance="{host}:9835",hostname="{host}"'


def _fleet() -> tuple[list[dict], dict[str, dict[str, float]], dict[tuple[str, str, int], float]]:
    """Input series for promtool (one GPU a node), each node's readings, and each rank's lateness."""
    rng = random.Random(7)
    series, readings, lateness = [], {}, {}
    for cluster, count in NODES.items():
        for index in range(count):
            node = _node(cluster, index)
            values = {"temperature": round(rng.uniform(40, 90), 2), "utilization": round(rng.random(), 3),
                      "used": round(rng.uniform(1, 80), 2), "total": 80.0}
            readings[node] = values
            for metric, value in (("temperature_celsius", values["temperature"]),
                                  ("utilization_ratio", values["utilization"]),
                                  ("memory_used_bytes", values["used"]), ("memory_total_bytes", values["total"])):
                series.append({"series": f'fleetscope_gpu_{metric}{{{node},gpu="0"}}', "values": f"{value}x5"})
            if cluster == "a":
                for (comm_id, comm_name), ranks in RANKS.items():
                    for rank in range(ranks):
                        value = round(rng.random(), 4)
                        lateness[(node, comm_name, rank)] = value
                        labels = f'{node},comm_id="{comm_id}",comm_name="{comm_name}",rank="{rank}"'
                        series.append({"series": f"fleetscope_nccl_rank_lateness_seconds{{{labels}}}",
                                       "values": f"{value}x5"})
    return series, readings, lateness


def _labels(name: str, node: str, **extra: str) -> str:
    return f"{name}{{{node}" + "".join(f',{key}="{value}"' for key, value in extra.items()) + "}"


def _expected(name: str, ranked: list[tuple[str, float]], k: int) -> list[dict]:
    return [{"labels": _labels(name, node), "value": value} for node, value in ranked[:k]]


def test_topk_over_an_extremes_record_answers_what_it_does_over_every_node(tmp_path):
    series, readings, lateness = _fleet()
    k = fleet.TOP
    hottest = sorted(((node, values["temperature"]) for node, values in readings.items()), key=lambda x: -x[1])
    least_busy = sorted(((node, values["utilization"]) for node, values in readings.items()), key=lambda x: x[1])
    fullest_in_b = sorted(((node, values["used"] / values["total"]) for node, values in readings.items()
                           if 'cluster="b"' in node), key=lambda x: -x[1])
    dp_latest = sorted(((node, rank, value) for (node, comm, rank), value in lateness.items() if comm == "DP Group 0"),
                       key=lambda x: -x[2])
    tests = [
        {"expr": f"count by (cluster) ({fleet.NODE_HOTTEST})", "eval_time": "1m",
         "exp_samples": [{"labels": '{cluster="a"}', "value": k}, {"labels": '{cluster="b"}', "value": NODES["b"]}]},
        {"expr": f"topk({k}, {fleet.NODE_HOTTEST})", "eval_time": "1m",
         "exp_samples": _expected(fleet.NODE_HOTTEST, hottest, k)},
        {"expr": bottom(k, fleet.NODE_LEAST_BUSY), "eval_time": "1m",  # as the panel asks (-topk: no name)
         "exp_samples": _expected("", least_busy, k)},
        {"expr": f'topk({k}, {fleet.NODE_FULLEST_MEMORY}{{cluster=~"b"}})', "eval_time": "1m",
         "exp_samples": [{"labels": _labels(fleet.NODE_FULLEST_MEMORY, node), "value": value}
                         for node, value in fullest_in_b]},
        # The five latest ranks of one job of many: a panel filtered to that job finds all five in the record.
        {"expr": f'topk by (comm_name) ({collectives.STRAGGLERS_SHOWN}, '
                 f'{collectives.STRAGGLERS}{{comm_name=~"DP Group 0"}})', "eval_time": "1m",
         "exp_samples": [{"labels": _labels(collectives.STRAGGLERS, node, comm_id="0x1", comm_name="DP Group 0",
                                            rank=str(rank)), "value": value}
                         for node, rank, value in dp_latest[:collectives.STRAGGLERS_SHOWN]]},
    ]
    # A ranked list with ties would make the expected top k ambiguous.
    for ranked in (hottest[:k + 1], least_busy[:k + 1]):
        assert len({value for _, value in ranked}) == len(ranked)
    spec = {"rule_files": [str(ALERTS / "rules" / "gpu.yaml"), str(ALERTS / "rules" / "collectives.yaml")],
            "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    path = tmp_path / "extremes.test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
