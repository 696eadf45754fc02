"""Ray Serve on a real Ray head, read through the generated inference rules: the example's applications
(example/ray_serve.py) and a failing one take scripted traffic (successes, 400s, application errors, Serve's
request timeout, client disconnects, backpressure), and

- each phase's page, recorded with its ground truth as the vLLM lab records its own, replayed into a real
  Prometheus with the generated rules: every fleetscope:inference_* series of each phase equals the truth;
- a real Prometheus scraping the live node with the committed rules (alerts/rules/inference.yaml) records
  each application with the outcomes it really had.

FLEETSCOPE_RECORD_RAY=1 also writes the pages to tests/fixtures/engines/ray-serve-<version>/, which
tests/engines/test_recorded_pages.py replays without Ray."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from fleetscope.alerts import inference
from fleetscope.example import load
from fleetscope.example.model import IrisModel
from tests.drift.support import call
from tests.engines.replay import FIXTURES, assert_agree, replay
from tests.ray.serve_lab import PHASES, ServeLab, _together, record, settle, version

RULES = FIXTURES.parents[2] / "alerts" / "rules" / "inference.yaml"
PREFIX = inference.PREFIX

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The lab after every phase, and the folder its pages and ground truth were recorded in."""
    workdir = tmp_path_factory.mktemp("serve")
    with ServeLab(workdir) as lab:
        folder = workdir / f"ray-serve-{version()}"
        record(lab, folder)
        if os.environ.get("FLEETSCOPE_RECORD_RAY"):
            shutil.copytree(folder, FIXTURES / folder.name, dirs_exist_ok=True)
        yield lab, folder


def test_every_phase_is_read_as_its_ground_truth(recorded, prometheus, tmp_path):
    _, folder = recorded
    assert sorted(path.stem for path in folder.glob("*.json")) == [f"{i:02d}-{name}" for i, (name, _) in
                                                                   enumerate(PHASES, start=1)]
    assert_agree(replay(folder, prometheus, tmp_path))


def _by_application(server, record: str) -> dict[str, float]:
    return {sample["metric"]["model"]: float(sample["value"][1])
            for sample in server.query(f'{PREFIX}{record}{{engine="ray-serve"}}')}


def test_the_live_node_is_read_with_the_outcomes_each_application_had(recorded, prometheus):
    lab, folder = recorded
    truth = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    seen: dict[str, set[int]] = {}
    for request in (request for phase in truth for request in phase["requests"]):
        seen.setdefault(request["application"], set()).add(request["counted_as"])
    assert seen == {"iris": {200, 400}, "tokens": {200, 400, 408, 499, 503}, "failing": {500}}

    server = prometheus([{"job_name": "ray", "static_configs": [{"targets": [lab.head.metrics_url.split("/")[2]]}]}],
                        rule_files=[RULES])
    # Serve creates a series at its first count, which a rate cannot see: the traffic runs again once
    # Prometheus holds every series the first round made.
    server.wait_for(f'count({PREFIX}requests:rate5m{{engine="ray-serve"}}) == 3', timeout=60)
    sent = sum(phase["counts"]["sent"] for phase in truth)
    for _, drive in PHASES:
        sent += len(drive(lab))
    settle(lab, sent)
    server.wait_for(f'{PREFIX}rejected:rate5m{{engine="ray-serve", model="tokens"}} > 0', timeout=60)
    for gauge in ("requests_running", "requests_waiting"):
        server.wait_for(f'{PREFIX}{gauge}{{engine="ray-serve"}}', lambda result: len(result) == len(seen) and all(
            float(sample["value"][1]) == 0 for sample in result), timeout=30)
    assert server.query(f'{PREFIX}not_measured{{engine="ray-serve", signal=~"errors|rejected|cancelled|'
                        f'client_errors"}}') == []
    # Each outcome is read where the application had it and is zero where it had none. failing failed every
    # request, iris none (a 400 is the client's): ratios of rates over the same scrapes, so exact.
    ratio = _by_application(server, "error_ratio:rate5m")
    assert ratio["failing"] == 1.0 and ratio["iris"] == 0.0 and 0 < ratio["tokens"] < 1, ratio
    for outcome, statuses in (("errors", {500, 408}), ("rejected", {503}), ("cancelled", {499}),
                              ("client_errors", {400})):
        rates = _by_application(server, f"{outcome}:rate5m")
        assert set(rates) == set(seen), (outcome, rates)
        assert {app for app, rate in rates.items() if rate > 0} == {app for app, had in seen.items()
                                                                     if had & statuses}, (outcome, rates)


DRIFT_MODEL = """
evaluation_interval: 1h
models:
  iris:
    mode: profiles
    columns: {sepal_length: numerical, sepal_width: numerical, petal_length: numerical, petal_width: numerical,
              label: categorical}
    window: {type: sliding, duration: 1h}
"""
DRIFT_COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width", "label")
DRIFT_INTERVAL = 2.0
DRIFT_DRIVER = """
import logging, sys
import ray
from ray import serve
from fleetscope.example.ray_serve import IrisDeployment

ray.init(address=sys.argv[1], logging_level=logging.ERROR)
app = IrisDeployment.options(num_replicas=2, ray_actor_options={"num_cpus": 0.25}).bind(
    drift_url=sys.argv[2], drift_interval=float(sys.argv[3]))
serve.run_many([serve.RunTarget(app, name="iris-drift", route_prefix="/iris-drift")])
print("deployed", flush=True)
"""


def _predict_together(lab, batches: list[list[list[float]]]) -> None:
    def post(instances):
        return lambda: lab.post("iris", "iris-drift", {"instances": instances})
    assert all(outcome.status == 200 for outcome in _together([post(batch) for batch in batches], gap=0.0))


def _profiles_accepted(address: str) -> float:
    page = urllib.request.urlopen(f"http://{address}/metrics", timeout=30).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith('fleetscope_drift_profiles_accepted_total{model="iris"}'))


def test_two_serve_replicas_profile_their_own_answers_merged_per_interval(recorded, drift_service, tmp_path):
    lab, _ = recorded
    address = drift_service(DRIFT_MODEL)
    model, rng = IrisModel(), random.Random(7)
    reference_features = model.validate(load.instances(rng, 600, shifted=False))
    reference = model.rows(reference_features, model.predict(reference_features))
    assert call(address, "PUT", "/v1/models/iris/reference",
                {"columns": {name: [row[name] for row in reference] for name in DRIFT_COLUMNS}})[0] == 200
    done = subprocess.run([sys.executable, "-c", DRIFT_DRIVER, lab.head.address, f"http://{address}",
                           str(DRIFT_INTERVAL)], env={**os.environ, **lab.head.environment}, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0 and "deployed" in done.stdout, done.stderr[-3000:]

    def evaluated(rows: int) -> dict:
        # A replica sends an interval's profile once the interval is over: wait until the service holds all.
        deadline = time.monotonic() + 30
        while True:
            status, result, _ = call(address, "POST", "/v1/models/iris/evaluate")
            if status == 200 and result.get("current", {}).get("rows") == rows:
                return result
            assert time.monotonic() < deadline, (status, result)
            time.sleep(0.5)

    def stored() -> tuple[list[tuple[str, float]], dict[float, int]]:
        with contextlib.closing(sqlite3.connect(f"file:{tmp_path / 'store.sqlite'}?mode=ro", uri=True)) as store:
            receipts = store.execute("SELECT replica, start FROM profile_receipts WHERE model = 'iris'").fetchall()
            return receipts, dict(store.execute("SELECT start, profiles FROM profile_intervals WHERE model = 'iris'"))

    # Rounds of sixteen requests of 25 flowers at once, within an interval or two, until both replicas answered in
    # one interval (Serve's router, on a loaded machine, may send a round to one replica).
    for rounds in range(1, 4):
        _predict_together(lab, [load.instances(rng, 25, shifted=False) for _ in range(16)])
        before = evaluated(400 * rounds)
        receipts, intervals = stored()
        if len({replica for replica, _ in receipts}) == 2 and max(intervals.values()) == 2:
            break
    accepted = _profiles_accepted(address)
    # One merged window per interval whatever the replicas: more profiles came than intervals were stored, each
    # replica's under its own Serve replica id, and the stored interval counts the profiles merged into it.
    assert 1 <= before["current"]["intervals"] < accepted <= 2 * before["current"]["intervals"], (before, accepted)
    replicas = {replica for replica, _ in receipts}
    assert len(replicas) == 2 and all(re.fullmatch(r"iris-drift\.IrisDeployment\.\w+", r) for r in replicas), replicas
    assert len(receipts) == accepted and sorted(intervals) == sorted({start for _, start in receipts})
    assert sum(intervals.values()) == accepted and max(intervals.values()) == 2, intervals
    assert not before["columns"]["petal_length"]["drifted"], before["columns"]["petal_length"]

    for _ in range(rounds):  # as many shifted rows as unshifted
        _predict_together(lab, [load.instances(rng, 25, shifted=True) for _ in range(16)])
    after = evaluated(800 * rounds)
    assert after["columns"]["petal_length"]["drifted"] and after["columns"]["petal_width"]["drifted"], after
    assert after["columns"]["petal_length"]["score"] != before["columns"]["petal_length"]["score"]
