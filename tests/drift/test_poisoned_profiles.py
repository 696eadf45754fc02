"""Crafted profiles against the drift service as a real process (issue 35): each is refused 400 with its reason,
short, counted, and stores nothing; honest replicas' profiles of the same model, segment and minute are still
taken and evaluated; a seeded fuzz of header fields and sketch bytes never gets a 5xx or takes the service down;
and an evaluation that meets a stored interval it cannot use leaves it out and evaluates the rest."""

from __future__ import annotations

import json
import math
import os
import random
import sqlite3
import threading
import time
import urllib.parse

from fleetscope.drift.profiles import MAX_COUNT
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import PROFILE_CONTENT_TYPE, DriftService
from tests.drift import profile_bodies as bodies
from tests.drift.fuzz import send_mutations
from tests.drift.support import PROFILES_MODEL, call, outputs
from tests.support.clock import Clock
from tests.support.exposition import value

SECONDS = float(os.environ.get("FLEETSCOPE_FUZZ_SECONDS", "4"))
SEED = int(os.environ.get("FLEETSCOPE_FUZZ_SEED", "20261206"))


def send(address: str, body: bytes, start: float, replica: str = "r1", seconds: float | str = 60,
         segment: str = "region=eu") -> tuple[int, dict | str, dict]:
    query = urllib.parse.urlencode({"replica": replica, "start": start, "seconds": seconds, "segment": segment})
    return call(address, "POST", f"/v1/models/chat/profiles?{query}", body, PROFILE_CONTENT_TYPE)


def crafted() -> dict[str, bytes]:
    """What a replica holding a write token sent in the audit, and more of the same kind."""
    plain, many = bodies.honest(), bodies.honest(distinct_labels=1500)
    rows = bodies.parts(plain)[0]["columns"][0]["rows"]
    kll, frequent = bodies.sketch_index(plain, "score"), bodies.sketch_index(many, "label")
    return {
        "a numerical column said to hold strings": bodies.with_column(plain, "score", family="string"),
        "rows = Infinity": bodies.with_column(plain, "score", rows=math.inf),
        "missing = Infinity": bodies.with_column(plain, "label", missing=math.inf),
        "k = Infinity": bodies.with_header_text(plain, lambda text: text.replace('"k": 200', '"k": Infinity')),
        "missing = 1e30": bodies.with_column(plain, "score", missing=1e30),
        "missing = 10^30": bodies.with_column(plain, "score", missing=10 ** 30),
        "a count past MAX_COUNT": bodies.with_column(plain, "label", missing=MAX_COUNT + 1),
        "a 4,000-digit count": bodies.with_header_text(
            plain, lambda text: text.replace(f'"rows": {rows}', '"rows": 1' + "0" * 3999, 1)),
        "k = 0": bodies.with_header_text(plain, lambda text: text.replace('"k": 200', '"k": 0')),
        "k = 10^9": bodies.with_header_text(plain, lambda text: text.replace('"k": 200', '"k": 1000000000')),
        "a NaN minimum": bodies.with_column(plain, "score", minimum=math.nan),
        "an infinite maximum": bodies.with_column(plain, "score", maximum=math.inf),
        "a NaN mean": bodies.with_column(plain, "score", mean=math.nan),
        "a mean above the maximum": bodies.with_column(plain, "score", mean=1e6),
        "negative squared deviations": bodies.with_column(plain, "score", squared_deviations=-1.0),
        "a minimum the sketch does not hold": bodies.with_column(plain, "score", minimum=-1e6),
        "rows that disagree with the sketch": bodies.with_column(plain, "score", rows=rows + 1, missing=0),
        "columns counting different rows": bodies.with_column(plain, "label", missing=5),
        "a KLL sketch with its levels out of order": bodies.with_blob(plain, kll, bodies.kll_levels_swapped),
        "a frequent-items sketch of 2^30 slots": bodies.with_blob(many, frequent, bodies.frequent_map_of(30)),
        "a column the model does not have, named in 15 MB": bodies.with_header_text(
            plain, lambda text: text.replace('"name": "label"', '"name": "' + "x" * 15_000_000 + '"')),
        "a category of 10,000 characters": bodies.with_column(plain, "label", counts=[["y" * 10_000], [rows]]),
        "a category that is a list": bodies.with_column(plain, "label", counts=[[["a"]], [rows]]),
        "a count of true": bodies.with_column(plain, "label", counts=[["a"], [True]]),
    }


def test_crafted_profiles_are_refused_and_honest_replicas_and_evaluations_are_unaffected(drift_service):
    address = drift_service(PROFILES_MODEL)
    assert call(address, "PUT", "/v1/models/chat/reference", outputs(600, seed=1))[0] == 200
    start = (time.time() // 60 - 2) * 60  # a past minute, as the attacker chose one
    cases = crafted()
    for what, body in cases.items():
        status, answer, _ = send(address, body, start, replica="attacker")
        assert (status, answer["reason"]) == (400, "bad_profile"), (what, status, answer)
        assert len(answer["error"]) <= 400, (what, answer["error"][:500])
    for what, query in {"start = Infinity": {"start": "Infinity"}, "start = nan": {"start": "nan"},
                        "seconds = 1e400": {"seconds": "1e400"}, "start of 400 digits": {"start": "1" * 400},
                        "start of 5,000 digits": {"start": "1" * 5000}}.items():
        status, answer, _ = send(address, bodies.honest(), **{"start": start, **query})
        assert (status, answer["reason"]) == (400, "bad_interval"), (what, status, answer)
    for replica in ("r1", "r2"):  # the attacker's minute, model and segment
        assert send(address, bodies.honest(seed=int(replica[1])), start, replica)[0] == 202
    status, evaluation, _ = call(address, "POST", "/v1/models/chat/evaluate")
    assert status == 200 and evaluation["outcome"] == "success", evaluation
    assert evaluation["current"] == {"rows": 4000, "intervals": 1, "unusable_intervals": 0}
    page = call(address, "GET", "/metrics")[1]
    assert value(page, "fleetscope_drift_batches_rejected_total", model="chat", reason="bad_profile") == len(cases)
    assert value(page, "fleetscope_drift_profiles_accepted_total", model="chat") == 2
    assert drift_service.processes[-1].running


def _fuzz(address: str, body: bytes, start: float, deadline: float, number: int, statuses: dict[int, int],
          failures: list[str]) -> None:
    query = urllib.parse.urlencode({"replica": f"fuzz{number}", "start": start, "seconds": 60,
                                    "segment": "region=eu"})
    send_mutations(address, f"/v1/models/chat/profiles?{query}", PROFILE_CONTENT_TYPE,
                   lambda rng: bodies.mutated(body, rng), random.Random(f"{SEED}-{number}"), deadline, statuses,
                   failures)


def test_mutated_profiles_never_crash_the_service_or_get_a_5xx(drift_service):
    address = drift_service(PROFILES_MODEL)
    assert call(address, "PUT", "/v1/models/chat/reference", outputs(600, seed=1))[0] == 200
    start = (time.time() // 60 - 5) * 60
    statuses: dict[int, int] = {}
    failures: list[str] = []
    for body in (bodies.honest(), bodies.honest(distinct_labels=1500)):
        deadline = time.monotonic() + SECONDS
        clients = [threading.Thread(target=_fuzz, args=(address, body, start, deadline, number, statuses, failures))
                   for number in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(SECONDS + 60)
        assert drift_service.processes[-1].running, "the service died fuzzing profiles"
        assert not failures, failures[:3]
        start -= 60
    print("profile fuzz answers:", statuses)
    assert sum(statuses.values()) > 40 and statuses.get(400, 0) > 10, statuses
    status, evaluation, _ = call(address, "POST", "/v1/models/chat/evaluate")
    assert status == 200 and evaluation["outcome"] == "success", evaluation


def test_a_stored_interval_that_cannot_be_used_is_left_out_and_the_rest_evaluated(tmp_path):
    start = 1_800_000_000.0
    clock = Clock(start + 120)
    document = {"storage": {"path": str(tmp_path / "store.sqlite")},
                "models": {"chat": {"mode": "profiles", "columns": {"score": "numerical", "label": "categorical"},
                                    "window": {"type": "sliding", "duration": "10m"}}}}
    service = DriftService(service_config.parse(document), clock=clock)
    assert service.put_reference("chat", _rows_json(), "application/json") == 600
    assert service.ingest_profile("chat", bodies.honest(seed=1), "r1", start, 60) == (2000, False)
    assert service.ingest_profile("chat", bodies.honest(seed=2), "r1", start + 60, 60) == (2000, False)
    service.close()
    # As an older fleetscope stored it: an interval whose numerical column holds strings, which merges with nothing.
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        db.execute("UPDATE profile_intervals SET data = ? WHERE start = ?",
                   (bodies.with_column(bodies.honest(seed=2), "score", family="string"), start + 60))
    service = DriftService(service_config.parse(document), clock=clock)  # the upgraded service, on that store
    evaluation = service.evaluate("chat")
    assert evaluation.outcome == "success", evaluation.message
    assert (evaluation.current_rows, evaluation.current_intervals, evaluation.unusable_intervals) == (2000, 1, 1)
    assert evaluation.to_json()["current"]["unusable_intervals"] == 1
    page = MetricsPage(service).render().decode()
    assert value(page, "fleetscope_drift_profile_intervals_unusable_total", model="chat") == 1
    # A replica's profile of that interval is taken, and replaces what no evaluation could use.
    assert service.ingest_profile("chat", bodies.honest(seed=3), "r2", start + 60, 60) == (2000, False)
    evaluation = service.evaluate("chat")
    assert (evaluation.current_rows, evaluation.current_intervals, evaluation.unusable_intervals) == (4000, 2, 0)
    # Rolled up into an hour with an interval nothing can use: the rest is kept.
    assert service.ingest_profile("chat", bodies.honest(seed=4), "r1", start + 180, 60) == (2000, False)
    service.close()
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        db.execute("UPDATE profile_intervals SET data = ? WHERE start = ?", (b"FSPF\x01damaged", start + 180))
    service = DriftService(service_config.parse(document), clock=clock)
    assert service.store.roll_up(start + 3600) == 3
    clock.now = start + 240
    evaluation = service.evaluate("chat")
    assert evaluation.outcome == "success", evaluation.message
    assert (evaluation.current_rows, evaluation.current_intervals, evaluation.unusable_intervals) == (4000, 1, 0)
    service.close()


def _rows_json() -> bytes:
    return json.dumps([{"score": row["score"], "label": row["label"]} for row in outputs(600, seed=1)]).encode()
