"""The drift service fed profiles: merged per interval, idempotent per replica, rolled up, evaluated by window,
refusing bad profiles clearly; and the client's profile mode against the real service."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import zlib

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import compare, compare_profiles
from fleetscope.drift.client import DriftClient
from fleetscope.drift.profiles import profile
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import PROFILE_CONTENT_TYPE, DriftService
from tests.drift.support import PROFILES_MODEL, call, declared_over, outputs
from tests.support.clock import Clock
from tests.support.exposition import value

START = 1_800_000_000.0  # a multiple of an hour
KINDS = {"numerical": ["score"], "categorical": ["label"]}


def service_with(tmp_path, clock, reference: dict | None = None, window: dict | None = None,
                 **storage) -> DriftService:
    model = {"mode": "profiles", "columns": {"score": "numerical", "label": "categorical", "region": "categorical"},
             "segments": ["region"], "window": window or {"type": "sliding", "duration": "10m"},
             **({"reference": reference} if reference else {})}
    document = {"storage": {"path": str(tmp_path / "store.sqlite"), "retention": "3d", **storage},
                "models": {"chat": model}}
    return DriftService(service_config.parse(document), clock=clock)


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(outputs(rows, seed, shift))


def send_interval(service: DriftService, start: float, replicas: int, rows: int, seed: int, shift: float = 0.0,
                  seconds: float = 60.0) -> pd.DataFrame:
    """Each replica profiles its own rows per region and sends them once the interval is over; returns every
    row sent."""
    service.clock.now = max(service.clock.now, start + seconds)
    sent = []
    for replica in range(replicas):
        data = frame(rows, seed * 1000 + replica, shift)
        sent.append(data)
        for region, group in data.groupby("region"):
            service.ingest_profile("chat", profile(group[["score", "label"]], **KINDS).to_bytes(), f"r{replica}",
                                   start, seconds, f"region={region}")
    return pd.concat(sent, ignore_index=True)


def test_replicas_profiles_are_merged_and_evaluated_as_compare_finds_their_rows(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    reference = frame(5000, seed=1)
    service.put_reference("chat", json.dumps(reference.to_dict("records")).encode(), "application/json")
    current = pd.concat([send_interval(service, START + 60 * minute, replicas=3, rows=400, seed=minute, shift=0.3)
                         for minute in range(5)], ignore_index=True)
    clock.now = START + 5 * 60 + 5
    evaluation = service.evaluate("chat")
    assert evaluation.outcome == "success", evaluation.message
    assert (evaluation.current_rows, evaluation.reference_rows, evaluation.current_intervals) == (6000, 5000, 10)
    exact = compare(reference, current, numerical=["score"], categorical=["label"])
    for name, drift in exact.columns.items():
        mine = evaluation.result.columns[name]
        assert mine.method == drift.method
        if mine.approximate:
            assert abs(mine.score - drift.score) <= mine.error_bound
        else:
            assert mine.score == pytest.approx(drift.score, rel=1e-9)
    assert evaluation.result.columns["score"].approximate  # 6,000 values: a sketch
    assert not evaluation.result.columns["label"].approximate  # counts: exact
    assert set(evaluation.segments) == {"region=eu", "region=us"}
    document = evaluation.to_json()
    assert document["mode"] == "profiles"
    assert document["current"] == {"rows": 6000, "intervals": 10, "unusable_intervals": 0}
    assert document["columns"]["score"]["error_bound"] > 0 and document["columns"]["score"]["approximate"]
    page = MetricsPage(service).render().decode()
    assert value(page, "fleetscope_drift_score_error_bound", model="chat", column="score", method="wasserstein",
                 segment=None) == evaluation.result.columns["score"].error_bound
    assert value(page, "fleetscope_drift_score_error_bound", model="chat", column="label", method="jensenshannon",
                 segment=None) == 0
    assert value(page, "fleetscope_drift_profiles_accepted_total", model="chat") == 30
    assert value(page, "fleetscope_drift_rows_accepted_total", model="chat") == 6000


def test_a_retried_or_duplicated_profile_counts_once_even_across_a_restart(tmp_path):
    clock = Clock(START + 30)
    service = service_with(tmp_path, clock)
    body = profile(frame(300, seed=2)[["score", "label"]], **KINDS).to_bytes()
    assert service.ingest_profile("chat", body, "r1", START, 60, "region=eu") == (300, False)
    assert service.ingest_profile("chat", body, "r1", START, 60, "region=eu") == (300, True)
    service.close()
    service = service_with(tmp_path, clock)
    assert service.ingest_profile("chat", body, "r1", START, 60, "region=eu") == (300, True)
    assert service.ingest_profile("chat", body, "r2", START, 60, "region=eu") == (300, False)  # another replica
    merged = service.store.profiles_between("chat", START, START + 60).segments
    assert merged["region=eu"][0].rows == 600 and merged["region=eu"][1] == 1


def test_old_intervals_roll_up_to_hours_and_evaluate_the_same(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, window={"type": "tumbling", "duration": "1h"},
                           profile_rollup_after="1d")
    service.put_reference("chat", json.dumps(frame(3000, seed=1).to_dict("records")).encode(), "application/json")
    for minute in range(60):
        send_interval(service, START + 60 * minute, replicas=2, rows=20, seed=minute, shift=0.2)
    clock.now = START + 3600 + 1
    before = service.evaluate("chat")
    intervals = service.store._reader.execute("SELECT COUNT(*) FROM profile_intervals").fetchone()[0]
    assert intervals == 120  # a minute each, per region
    clock.now = START + 86400 + 3600 + 1
    service.compact()
    assert service.store._reader.execute("SELECT COUNT(*), MIN(seconds) FROM profile_intervals").fetchone() == \
        (2, 3600.0)
    clock.now = START + 3600 + 1  # the same window, read again from the hourly interval
    after = service.evaluate("chat")
    assert (after.current_rows, after.current_intervals) == (before.current_rows, 2)
    for name, drift in before.result.columns.items():
        rolled = after.result.columns[name]
        if drift.approximate:  # sketches merged in another order: both within the bound of the truth
            assert abs(rolled.score - drift.score) <= rolled.error_bound + drift.error_bound
        else:
            assert rolled.score == pytest.approx(drift.score, rel=1e-12)


def test_a_rolling_reference_is_the_same_window_yesterday_from_profiles(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, reference={"rolling": {"offset": "1d", "duration": "10m"}})
    yesterday = pd.concat([send_interval(service, START + 60 * m, 2, 300, seed=m) for m in range(10)])
    today = pd.concat([send_interval(service, START + 86400 + 60 * m, 2, 300, seed=50 + m, shift=1.0)
                       for m in range(10)])
    clock.now = START + 86400 + 600
    evaluation = service.evaluate("chat")
    assert (evaluation.reference_rows, evaluation.current_rows) == (len(yesterday), len(today))
    assert evaluation.result.columns["score"].drifted and evaluation.result.columns["score"].decided
    assert evaluation.to_json()["reference"]["kind"] == "rolling"


def test_a_profile_can_be_the_reference(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    reference = frame(2000, seed=3)
    assert service.put_reference("chat", profile(reference[["score", "label"]], **KINDS).to_bytes(),
                                 PROFILE_CONTENT_TYPE) == 2000
    current = send_interval(service, START, replicas=2, rows=500, seed=4)
    clock.now = START + 120
    evaluation = service.evaluate("chat")
    expected = compare_profiles(profile(reference[["score", "label"]], **KINDS),
                                profile(current[["score", "label"]], **KINDS))
    assert evaluation.result.columns["label"].score == pytest.approx(expected.columns["label"].score, rel=1e-12)
    assert evaluation.skipped_segments == {"region=eu": "the reference has no rows for this segment",
                                           "region=us": "the reference has no rows for this segment"}


@pytest.mark.parametrize(("call_args", "status", "reason", "message"), [
    ({"replica": "bad replica"}, 400, "bad_replica", "replica must be"),
    ({"seconds": 0}, 400, "bad_interval", "lasts 1 to 3600"),
    ({"start": float("nan")}, 400, "bad_interval", "finite start"),
    ({"start": START + 86400}, 400, "bad_interval", "in the future"),
    ({"segment": "zone=eu"}, 400, "bad_segment", "region=VALUE"),
    ({"body": b"FSPF\x01not zlib"}, 400, "bad_profile", "damaged"),
    ({"body": b"{}"}, 400, "bad_profile", "does not start with FSPF"),
    ({"body": "wrong kind"}, 400, "bad_profile", "'label' is categorical, but the profile holds more than"),
    ({"body": "missing column"}, 400, "bad_profile", "lacks column"),
    ({"body": "extra column"}, 400, "bad_profile", "the model does not"),
])
def test_bad_profiles_are_refused_by_reason_and_store_nothing(tmp_path, call_args, status, reason, message):
    clock = Clock(START + 30)
    service = service_with(tmp_path, clock)
    data = frame(200, seed=5)[["score", "label"]]
    bodies = {"wrong kind": profile(pd.DataFrame({"score": np.zeros(1500), "label": np.arange(1500) * 1.5})).to_bytes(),
              "missing column": profile(data[["score"]], numerical=["score"]).to_bytes(),
              "extra column": profile(data.assign(extra=1.0), numerical=["score", "extra"],
                                      categorical=["label"]).to_bytes()}
    arguments = {"body": profile(data, **KINDS).to_bytes(), "replica": "r1", "start": START, "seconds": 60,
                 "segment": "region=eu", **call_args}
    arguments["body"] = bodies.get(arguments["body"], arguments["body"])
    with pytest.raises(BadBatch, match=message) as refused:
        service.ingest_profile("chat", arguments["body"], arguments["replica"], arguments["start"],
                               arguments["seconds"], arguments["segment"])
    assert (refused.value.status, refused.value.reason) == (status, reason)
    assert service.store.profiles_between("chat", 0, float("inf")).segments == {}
    assert service.batches_rejected["chat", reason] == 1
    good = profile(data, **KINDS).to_bytes()
    assert service.ingest_profile("chat", good, "r1", START, 60, "region=eu") == (200, False)  # nothing held it


def test_a_model_fed_rows_refuses_profiles_and_one_fed_profiles_needs_a_window_by_time(tmp_path):
    document = {"storage": {"path": str(tmp_path / "s.sqlite")},
                "models": {"iris": {"columns": {"score": "numerical"}}}}
    service = DriftService(service_config.parse(document), clock=Clock(START))
    body = profile(frame(10, seed=1)[["score"]], numerical=["score"]).to_bytes()
    with pytest.raises(BadBatch, match="takes rows"):
        service.ingest_profile("iris", body, "r1", START, 60)
    with pytest.raises(BadBatch, match="a profile can be the reference of a model fed profiles only"):
        service.put_reference("iris", body, PROFILE_CONTENT_TYPE)
    with pytest.raises(service_config.ConfigError, match="give the window a duration"):
        service_config.parse({"models": {"m": {"mode": "profiles", "columns": {"x": "numerical"},
                                               "window": {"type": "tumbling", "rows": 100}}}})


def test_the_client_in_profile_mode_sends_a_profile_per_interval_and_segment(drift_service):
    address = drift_service(PROFILES_MODEL)
    reference = outputs(3000, seed=1)
    assert call(address, "PUT", "/v1/models/chat/reference",
                {"columns": {name: [row[name] for row in reference] for name in reference[0]}})[0] == 200
    # The client's clock, moved by hand: two intervals of a minute, a few minutes ago.
    clock = Clock(math.floor(time.time() / 60) * 60 - 180)
    client = DriftClient(f"http://{address}", "chat", mode="profile", numerical=["score"],
                         categorical=["label", "region"], segments=["region"], interval=60, flush_interval=0.05,
                         clock=clock)
    rows = outputs(2000, seed=2, shift=0.5)
    assert client.send_many(rows[:1000]) == 1000
    _wait(lambda: client.queued == 0)
    clock.now += 60  # the first interval is over: sent while the second fills
    assert client.send_many(rows[1000:]) == 1000
    _wait(lambda: client.queued == 0)
    client.close()
    assert client.sent == 2000 and not client.dropped
    status, result, _ = call(address, "POST", "/v1/models/chat/evaluate")
    assert status == 200 and result["outcome"] == "success", result
    assert result["current"] == {"rows": 2000, "intervals": 4, "unusable_intervals": 0}  # two minutes, two regions
    assert result["columns"]["score"]["drifted"]
    exact = compare(pd.DataFrame(reference), pd.DataFrame(rows), numerical=["score"], categorical=["label"])
    assert result["columns"]["label"]["score"] == pytest.approx(exact.columns["label"].score, rel=1e-9)

    # The same profile posted again (a retry after a lost answer) is acknowledged and stored once.
    query = urllib.parse.urlencode({"replica": "again", "start": clock.now, "seconds": 60, "segment": "region=eu"})
    body = profile(pd.DataFrame(rows[:10])[["score", "label"]], **KINDS).to_bytes()
    first = call(address, "POST", f"/v1/models/chat/profiles?{query}", body, content_type=PROFILE_CONTENT_TYPE)
    second = call(address, "POST", f"/v1/models/chat/profiles?{query}", body, content_type=PROFILE_CONTENT_TYPE)
    assert (first[0], second[0], second[2].get("idempotent-replayed")) == (202, 202, "true")
    assert call(address, "POST", f"/v1/models/chat/profiles?{query}", body)[0] == 415


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_model_fed_profiles_has_a_report_drawn_from_their_samples_and_saying_so(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    service.put_reference("chat", json.dumps(frame(2000, seed=1).to_dict("records")).encode(), "application/json")
    send_interval(service, START, replicas=40, rows=300, seed=2, shift=1.0)
    clock.now = START + 120
    evaluation = service.evaluate("chat")
    reference_sample, current_sample = evaluation.samples
    # 100 rows kept a region a replica, 200 an interval a region (samples.INTERVAL_ROWS), thinned to one rate.
    assert reference_sample.size == 2000 and 370 <= current_sample.size <= 400
    page = service.report("chat")
    assert f"Drawn from a sample: {current_sample.size:,} of the 12,000 rows of the current window and 2,000 of " \
           "the reference" in page.html
    assert "<script>alert" not in page.html and "'unsafe-inline'" not in page.content_security_policy.split(
        "script-src")[1].split(";")[0]


def test_hostile_profiles_over_http_are_refused_and_a_hostile_category_stays_inert_in_the_report(drift_service):
    address = drift_service("""
evaluation_interval: 1h
limits: {max_body_bytes: 262144}
models:
  chat:
    mode: profiles
    columns: {score: numerical, label: categorical}
    window: {type: sliding, duration: 1h}
""")
    start = math.floor(time.time() / 60) * 60 - 120
    path = f"/v1/models/chat/profiles?{urllib.parse.urlencode({'replica': 'r1', 'start': start, 'seconds': 60})}"
    post = lambda body: call(address, "POST", path, body, content_type=PROFILE_CONTENT_TYPE)  # noqa: E731
    assert declared_over(address, path, 300_000, PROFILE_CONTENT_TYPE)[:2] == (413, "too_large")
    bomb = b"FSPF\x01" + zlib.compress(b"\0" * (65 * 1024 * 1024))
    status, body, _ = post(bomb)  # 66 KB that would decompress to 65 MiB
    assert status == 400 and "larger than" in body["error"]
    assert post(b"FSPF\x01garbage")[1]["reason"] == "bad_profile"
    hostile = "</script><script>alert(1)</script>"
    rows = pd.DataFrame({"score": np.random.default_rng(1).normal(size=300), "label": [hostile, "a", "b"] * 100})
    assert call(address, "PUT", "/v1/models/chat/reference", {"columns": {"score": list(rows.score),
                                                                          "label": list(rows.label)}})[0] == 200
    assert post(profile(rows, ["score"], ["label"]).to_bytes())[0] == 202
    assert call(address, "POST", "/v1/models/chat/evaluate")[1]["outcome"] == "success"
    status, html, headers = call(address, "GET", "/v1/models/chat/report")
    assert status == 200 and "Drawn from a sample" in html and hostile not in html
    assert "script-src 'sha256-" in headers["content-security-policy"]
