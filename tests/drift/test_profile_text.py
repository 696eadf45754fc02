"""Text columns in profiles: each text's descriptors profiled as numerical columns, so that merged replicas' profiles
score `<column>.<descriptor>` as compare() does on the rows (exactly while their values are counted, within the
stated bound past that), content drift refused with the reason, and texts rows ingest refuses refused alike."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import compare
from fleetscope.drift.client import DriftClient
from fleetscope.drift.profile_comparison import compare_profiles
from fleetscope.drift.profiles import Profile, ProfileError, merge_all, profile
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.service import DriftService
from fleetscope.drift.text_descriptors import DESCRIPTORS
from tests.drift.support import call
from tests.drift.test_profile_embeddings import DIMENSIONS, TOLERANCE, vectors
from tests.drift.test_text_drift import texts
from tests.support.clock import Clock

START = 1_800_000_000.0
DESCRIBED = [f"body.{name}" for name in DESCRIPTORS]


def frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"body": pd.Series(texts(rows, seed, shift), dtype=object),
                         "x": np.random.default_rng(seed).normal(shift, 1, rows)})


def merged(data: pd.DataFrame, replicas: int) -> Profile:
    return merge_all(Profile.from_bytes(profile(data.iloc[share], numerical=["x"], text=["body"]).to_bytes())
                     for share in np.array_split(np.arange(len(data)), replicas))


def test_a_text_column_is_profiled_as_its_descriptors_numerical_columns():
    found = profile(frame(200, seed=1), numerical=["x"], text=["body"])
    assert sorted(found.columns) == sorted(["x", *DESCRIBED])
    assert all(found.columns[name].numeric and found.columns[name].missing == 0 for name in DESCRIBED)
    assert found.to_bytes()[4] == 2  # no new format: readers of versions 1 to 3 read it
    assert set(found.sample.columns) == {"x", *DESCRIBED}  # the texts themselves never leave the replica


@pytest.mark.parametrize("rows", [3000, 40_000])
def test_merged_replicas_score_the_descriptors_as_compare_does_on_their_rows(rows):
    """Few distinct values (lengths, counts): exact, as a counted numerical column is. Percentages past 1,000
    distinct values are sketched: within the bound stated, as for any numerical column."""
    reference, current = frame(rows, seed=2), frame(rows, seed=3, shift=0.3)
    mine = compare_profiles(merged(reference, 3), merged(current, 5))
    exact = compare(reference, current, numerical=["x"], text=["body"])
    for name in DESCRIBED:
        drift, truth = mine.columns[name], exact.columns[name]
        assert drift.method == truth.method
        if drift.approximate:
            assert abs(drift.score - truth.score) <= drift.error_bound
        else:
            assert drift.score == pytest.approx(truth.score, rel=1e-9, abs=1e-12)
            assert drift.drifted == truth.drifted
    assert not mine.columns["body.text_length"].approximate
    assert "body" not in mine.columns  # its content needs the texts


@pytest.mark.parametrize(("values", "reason", "message"), [
    (["short", "x" * 11], "too_long", r"row 1, column 'body': a text of 11 characters; the limit is 10"),
    (["fine", 3], "schema", "int is not a text"),
    (["fine", ["a"]], "schema", "list is not a text"),
])
def test_texts_rows_ingest_refuses_are_refused_when_profiled_with_its_reason(values, reason, message):
    with pytest.raises(ProfileError, match=message) as refused:
        profile(pd.DataFrame({"body": pd.Series(values, dtype=object)}), text=["body"], max_text_length=10)
    assert refused.value.reason == reason


def test_missing_texts_count_zero_as_rows_mode_counts_them():
    found = profile(pd.DataFrame({"body": pd.Series(["two words", None, math.nan], dtype=object)}), text=["body"])
    assert found.columns["body.word_count"].counts == {0.0: 2, 2.0: 1}


# -- the service ----------------------------------------------------------------------------------------------------

def chat_service(tmp_path, clock, **limits) -> DriftService:
    document = {"storage": {"path": str(tmp_path / "store.sqlite")}, "limits": {"max_text_length": 400, **limits},
                "models": {"chat": {"mode": "profiles", "window": {"type": "sliding", "duration": "10m"},
                                    "columns": {"body": "text", "x": "numerical"},
                                    "methods": {"body.text_length": "psi"}}}}
    return DriftService(service_config.parse(document), clock=clock)


def test_the_service_compares_descriptors_from_profiles_and_says_why_the_content_is_not(tmp_path):
    clock = Clock(START + 120)
    service = chat_service(tmp_path, clock)
    reference, current = frame(2000, seed=4), frame(1200, seed=5, shift=0.5)
    service.put_reference("chat", json.dumps({"columns": {name: reference[name].tolist() for name in reference}})
                          .encode(), "application/json")
    for replica, share in enumerate(np.array_split(np.arange(len(current)), 4)):
        body = profile(current.iloc[share], numerical=["x"], text=["body"]).to_bytes()
        service.ingest_profile("chat", body, f"r{replica}", START, 60)
    # A text past limits.max_text_length, refused as rows ingest refuses it; what was accepted stays.
    long = pd.DataFrame({"body": ["y" * 401, "fine"], "x": [1.0, 2.0]})
    with pytest.raises(BadBatch, match=r"a text of 401 characters; the limit is 400 \(limits.max_text_length\)"):
        service.ingest_profile("chat", profile(long, numerical=["x"], text=["body"]).to_bytes(), "r9", START, 60)
    with pytest.raises(BadBatch, match=r"has column\(s\) \[.body.\] the model does not"):  # texts, not descriptors
        service.ingest_profile("chat", profile(long, numerical=["x"], categorical=["body"]).to_bytes(), "r8",
                               START, 60)
    evaluation = service.evaluate("chat")
    assert evaluation.outcome == "success", evaluation.message
    assert evaluation.current_rows == len(current)
    exact = compare(reference, current, numerical=["x"], text=["body"], methods={"body.text_length": "psi"})
    for name in DESCRIBED:
        assert evaluation.result.columns[name].score == pytest.approx(exact.columns[name].score, rel=1e-9)
    assert evaluation.result.columns["body.text_length"].method == "psi"
    assert "text content drift trains a classifier on the texts" in evaluation.result.skipped["body"]
    assert "body" in evaluation.to_json()["skipped_columns"]
    page = service.report("chat")  # Evidently's, from the samples: the descriptors, never the texts
    assert "body.word_count" in page.html and "Drawn from a sample" in page.html


# -- end to end: DriftClient in profile mode against `fleetscope drift serve` ---------------------------------------

SEARCH_MODEL = f"""
evaluation_interval: 1h
limits: {{max_text_length: 1000, max_embedding_dimensions: 64}}
models:
  search:
    mode: profiles
    columns: {{body: text, vec: embedding, x: numerical}}
    methods: {{vec: distance}}
    dimensions: {{vec: {DIMENSIONS}}}
    window: {{type: sliding, duration: 1h}}
"""


def test_the_client_profiles_texts_and_vectors_and_the_service_scores_them_as_compare_does(drift_service):
    address = drift_service(SEARCH_MODEL)
    reference = frame(1500, seed=6).assign(vec=vectors(1500, seed=6)["vec"])
    columns = {"body": reference["body"].tolist(), "x": reference["x"].tolist(),
               "vec": [None if vector is None else vector.tolist() for vector in reference["vec"]]}
    assert call(address, "PUT", "/v1/models/search/reference", {"columns": columns})[0] == 200
    current = frame(1000, seed=7, shift=0.4).assign(vec=vectors(1000, seed=7, shift=0.3)["vec"])
    rows = [{"body": body, "x": x, "vec": None if vector is None else vector.tolist()}
            for body, x, vector in zip(current["body"], current["x"], current["vec"], strict=True)]
    clock = Clock(math.floor(time.time() / 60) * 60 - 120)
    client = DriftClient(f"http://{address}", "search", mode="profile", numerical=["x"], text=["body"],
                         embeddings=["vec"], interval=60, flush_interval=0.05, clock=clock, max_text_length=1000,
                         max_dimensions=64)
    assert client.send_many(rows) == len(rows)
    _wait(lambda: client.queued == 0)
    # Batches rows ingest would refuse are dropped whole, counted under its reasons.
    assert client.send_many([{"body": "y" * 1001, "x": 1.0, "vec": [0.0] * DIMENSIONS}]) == 1
    _wait(lambda: client.queued == 0)
    assert client.send_many([{"body": "ok", "x": 1.0, "vec": [0.0] * 3}, {"body": "ok", "x": 1.0, "vec": [0.0]}]) == 2
    _wait(lambda: client.queued == 0)
    client.close()
    assert client.sent == len(rows)
    assert dict(client.dropped) == {"too_long": 1, "ragged": 2}
    status, result, _ = call(address, "POST", "/v1/models/search/evaluate")
    assert status == 200 and result["outcome"] == "success", result
    assert result["current"]["rows"] == len(rows)
    exact = compare(reference, current, numerical=["x"], text=["body"], embeddings=["vec"], methods={"vec": "distance"})
    assert result["columns"]["vec"]["score"] == pytest.approx(exact.columns["vec"].score, rel=TOLERANCE)
    assert result["columns"]["vec"]["drifted"] == exact.columns["vec"].drifted
    assert result["columns"]["body.word_count"]["score"] == pytest.approx(exact.columns["body.word_count"].score,
                                                                        rel=1e-9)
    assert "body" in result["skipped_columns"]


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
