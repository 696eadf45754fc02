"""Embedding columns in profiles: a count and a sum vector per replica, merged by addition, scored by Evidently's
distance methods as compare() scores the same rows; every other method refused with the reason; vectors rows
ingest would refuse refused when profiled; hostile profiles refused when read or declared."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import compare
from fleetscope.drift.embedding_profiles import PROFILE_METHODS
from fleetscope.drift.profile_comparison import ProfileMethodError, compare_profiles
from fleetscope.drift.profiles import (
    MAGIC,
    READABLE_VERSIONS,
    Profile,
    ProfileError,
    as_declared,
    merge_all,
    profile,
)
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.service import DriftService
from tests.drift.profile_bodies import assemble, parts, with_blob, with_column
from tests.support.clock import Clock

START = 1_800_000_000.0
DIMENSIONS = 16
# The mean of merged sums against numpy's mean of all the rows: the same numbers added in another order.
TOLERANCE = 1e-12


def vectors(rows: int, seed: int, shift: float = 0.0, dimensions: int = DIMENSIONS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    found = list(rng.normal(shift, 1, (rows, dimensions)) * rng.uniform(0.5, 3, dimensions))
    for index in rng.choice(rows, rows // 40, replace=False):
        found[index] = None  # missing vectors, dropped as compare() drops them
    return pd.DataFrame({"vec": pd.Series(found, dtype=object), "x": rng.normal(shift, 1, rows)})


def replicas_profile(frame: pd.DataFrame, replicas: int) -> Profile:
    """Each replica profiles its share of the rows; the profiles travel as bytes and merge."""
    shares = np.array_split(np.arange(len(frame)), replicas)
    return merge_all(Profile.from_bytes(profile(frame.iloc[share], numerical=["x"], embeddings=["vec"]).to_bytes())
                     for share in shares)


@pytest.mark.parametrize("method", PROFILE_METHODS)
def test_merged_replicas_score_every_distance_as_compare_does_on_their_rows(method):
    reference, current = vectors(3000, seed=1), vectors(2400, seed=2, shift=0.08)
    merged_reference, merged_current = replicas_profile(reference, 3), replicas_profile(current, 7)
    mine = compare_profiles(merged_reference, merged_current, methods={"vec": method}).columns["vec"]
    exact = compare(reference, current, numerical=["x"], embeddings=["vec"], methods={"vec": method}).columns["vec"]
    assert mine.method == exact.method == method
    assert mine.score == pytest.approx(exact.score, rel=TOLERANCE, abs=TOLERANCE)
    assert (mine.threshold, mine.drifted, mine.reference_rows, mine.current_rows) == \
        (exact.threshold, exact.drifted, exact.reference_rows, exact.current_rows)
    assert not mine.approximate and mine.error_bound == 0 and mine.decided


def test_the_threshold_set_for_the_column_decides():
    reference, current = replicas_profile(vectors(500, seed=3), 2), replicas_profile(vectors(500, seed=4, shift=0.2), 2)
    score = compare_profiles(reference, current, methods={"vec": "distance"}).columns["vec"].score
    above = compare_profiles(reference, current, methods={"vec": "distance"}, thresholds={"vec": score * 1.01})
    below = compare_profiles(reference, current, methods={"vec": "distance"}, thresholds={"vec": score * 0.99})
    assert not above.columns["vec"].drifted and below.columns["vec"].drifted


@pytest.mark.parametrize(("method", "reason"), [
    (None, "no method is set, and Evidently's default"),
    ("model", "model needs the vectors themselves"),
    ("model_bootstrap", "model_bootstrap needs the vectors themselves"),
    ("mmd", "mmd needs the vectors themselves"),
    ("ratio", "ratio needs each component's Wasserstein distance"),
    ("ks", "ks is not an embedding drift method"),
])
def test_methods_a_profile_cannot_score_are_refused_naming_the_ones_it_can(method, reason):
    reference, current = (replicas_profile(vectors(300, seed=seed), 2) for seed in (5, 6))
    with pytest.raises(ProfileMethodError, match=reason) as refused:
        compare_profiles(reference, current, methods={"vec": method} if method else None)
    assert "a profile can score distance" in str(refused.value) or "set one of distance" in str(refused.value)


def test_fewer_than_two_vectors_a_side_is_refused_as_rows_mode_refuses_it():
    reference = profile(vectors(300, seed=7), embeddings=["vec"])
    one = profile(pd.DataFrame({"vec": pd.Series([np.ones(DIMENSIONS), None], dtype=object)}), embeddings=["vec"])
    with pytest.raises(ProfileMethodError, match="at least 2 vectors on each side"):
        compare_profiles(reference, one, methods={"vec": "distance"})


def test_a_profile_is_written_in_version_4_only_with_an_embedding_column():
    frame = vectors(100, seed=8)
    assert profile(frame, embeddings=["vec"]).to_bytes()[4] == 4
    assert profile(frame, numerical=["x"]).to_bytes()[4] == 2  # readable by fleetscope reading versions 1 to 3
    # 8 bytes a component, beside the header: what an interval of a replica costs per embedding column
    assert len(profile(frame[["vec"]], embeddings=["vec"], sample_rows=0).to_bytes()) < DIMENSIONS * 8 + 200


def test_the_sum_vector_is_the_rows_sum_and_merges_by_addition():
    frame = vectors(1000, seed=9)
    whole = profile(frame, embeddings=["vec"]).columns["vec"]
    present = np.stack([vector for vector in frame["vec"] if vector is not None])
    assert (whole.rows, whole.missing) == (len(present), len(frame) - len(present))
    np.testing.assert_allclose(whole.vector_sum, present.sum(axis=0), rtol=1e-13)
    halves = profile(frame.iloc[:500], embeddings=["vec"]).merge(profile(frame.iloc[500:], embeddings=["vec"]))
    np.testing.assert_allclose(halves.columns["vec"].vector_sum, whole.vector_sum, rtol=1e-13)
    nothing = profile(pd.DataFrame({"vec": pd.Series([None, None], dtype=object)}), embeddings=["vec"])
    assert nothing.columns["vec"].rows == 0 and nothing.columns["vec"].vector_sum.size == 0
    assert nothing.merge(halves).columns["vec"].rows == whole.rows  # a replica that saw no vectors adds none


@pytest.mark.parametrize(("values", "reason", "message"), [
    ([[1.0, 2.0], [1.0, 2.0, 3.0]], "ragged", "2 different lengths"),
    ([[], []], "ragged", "an empty vector"),
    ([[1.0, math.nan]], "not_finite", "NaN or an infinity"),
    ([[1.0, math.inf]], "not_finite", "NaN or an infinity"),
    ([[1e308, 1.0], [1e308, 1.0]], "not_finite", "too large to sum"),
    ([[0.0] * 5], "too_many_dimensions", "the limit is 4"),
    (["0.5, 0.1"], "schema", "str is not a vector"),
    ([[True, False]], "schema", "something other than numbers"),
    ([["a", "b"]], "schema", "something other than numbers"),
    ([np.ones((2, 3))], "schema", "an array of 2 dimensions is not a vector"),
    ([np.array(1.0)], "schema", "an array of 0 dimensions is not a vector"),
])
def test_vectors_rows_ingest_refuses_are_refused_when_profiled_with_its_reason(values, reason, message):
    frame = pd.DataFrame({"vec": pd.Series(values, dtype=object)})
    with pytest.raises(ProfileError, match=message) as refused:
        profile(frame, embeddings=["vec"], max_dimensions=4)
    assert refused.value.reason == reason


def _body(rows: int = 200, seed: int = 10, dimensions: int = DIMENSIONS) -> bytes:
    return profile(vectors(rows, seed, dimensions=dimensions)[["vec"]], embeddings=["vec"]).to_bytes()


def _version(body: bytes, version: int) -> bytes:
    return MAGIC + bytes([version]) + body[5:]


@pytest.mark.parametrize(("hostile", "message"), [
    (lambda body: with_blob(body, 0, lambda blob: blob[:-3]), "not a whole number of float64 components"),
    (lambda body: with_blob(body, 0, lambda blob: struct.pack("<d", math.nan) + blob[8:]), "NaN or an infinity"),
    (lambda body: with_blob(body, 0, lambda blob: struct.pack("<d", -math.inf) + blob[8:]), "NaN or an infinity"),
    (lambda body: with_blob(body, 0, lambda blob: b"\0" * 8 * 70_000), "more than 65536"),
    (lambda body: with_column(body, "vec", rows=0, missing=200), "no vectors but a sum"),
    (lambda body: with_blob(body, 0, lambda blob: b""), "vectors but an empty sum"),
    (lambda body: with_column(body, "vec", rows=-3), "rows must be a whole number"),
    (lambda body: with_column(body, "vec", rows=2.5), "rows must be a whole number"),
    (lambda body: with_column(body, "vec", declared="num"), "family vector, declared embedding"),
    (lambda body: with_column(body, "vec", family="float"), "family vector, declared embedding"),
    (lambda body: with_column(body, "vec", vector="json"), "family vector, declared embedding"),
    (lambda body: with_column(body, "vec", sketch="kll"), "a sum vector only"),
    (lambda body: with_column(body, "vec", counts=[[1.0], [195]]), "a sum vector only"),
    (lambda body: _version(body, 3), "embedding columns are in profiles of format version 4"),
    (lambda body: with_column(profile(vectors(50, seed=1)[["x"]], numerical=["x"]).to_bytes(), "x",
                              declared="embedding"), "family vector, declared embedding"),
    (lambda body: _version(body, max(READABLE_VERSIONS) + 1), "is not supported"),
])
def test_hostile_embedding_profiles_are_refused_when_read(hostile, message):
    with pytest.raises(ProfileError, match=message):
        Profile.from_bytes(hostile(_body()))


def test_declared_dimensions_and_the_limit_are_checked_when_declared_and_replicas_cannot_mix_dimensions():
    kinds = {"vec": service_config.ColumnKind.EMBEDDING}
    checked = Profile.from_bytes(_body())
    assert as_declared(checked, kinds, dimensions={"vec": DIMENSIONS}).columns["vec"].rows == \
        checked.columns["vec"].rows
    with pytest.raises(ProfileError, match="the model declares 8"):
        as_declared(checked, kinds, dimensions={"vec": 8})
    with pytest.raises(ProfileError, match=r"the limit is 10 \(limits.max_embedding_dimensions\)"):
        as_declared(checked, kinds, max_dimensions=10)
    with pytest.raises(ProfileError, match="is embedding in the model, but the profile holds float values"):
        as_declared(profile(vectors(50, seed=1)[["x"]]), {"x": service_config.ColumnKind.EMBEDDING})
    other = Profile.from_bytes(_body(dimensions=DIMENSIONS + 1))
    with pytest.raises(ProfileError, match="vectors of 16 components in one profile and 17 in the other"):
        checked.merge(other)


# -- the service, in process ----------------------------------------------------------------------------------------

def search_service(tmp_path, clock, **model) -> DriftService:
    document = {"storage": {"path": str(tmp_path / "store.sqlite")},
                "limits": {"max_embedding_dimensions": 64},
                "models": {"search": {"mode": "profiles", "window": {"type": "sliding", "duration": "10m"},
                                      "columns": {"vec": "embedding", "x": "numerical"},
                                      "methods": {"vec": "distance_cosine"}, "dimensions": {"vec": DIMENSIONS},
                                      **model}}}
    return DriftService(service_config.parse(document), clock=clock)


def test_the_service_merges_replicas_sum_vectors_and_scores_as_compare_does(tmp_path):
    clock = Clock(START + 120)
    service = search_service(tmp_path, clock)
    reference = vectors(2000, seed=11)
    service.put_reference("search", json.dumps({"columns": {
        "vec": [None if vector is None else vector.tolist() for vector in reference["vec"]],
        "x": reference["x"].tolist()}}).encode(), "application/json")
    current = vectors(1500, seed=12, shift=0.1)
    for replica, share in enumerate(np.array_split(np.arange(len(current)), 3)):
        body = profile(current.iloc[share], numerical=["x"], embeddings=["vec"]).to_bytes()
        assert service.ingest_profile("search", body, f"r{replica}", START, 60)[0] == len(share)
    # A hostile profile (a sum vector of other vectors) is refused, and what was accepted stays.
    with pytest.raises(BadBatch, match="the model declares 16") as refused:
        service.ingest_profile("search", profile(vectors(10, seed=1, dimensions=8), numerical=["x"],
                                                 embeddings=["vec"]).to_bytes(), "r9", START, 60)
    assert refused.value.reason == "bad_profile"
    header, blobs = parts(profile(current.iloc[:10], numerical=["x"], embeddings=["vec"]).to_bytes())
    position = [entry["name"] for entry in header["columns"] if entry.get("sketch") or entry.get("counts")
                or entry.get("buckets") or entry.get("vector")]
    nan_sum = list(blobs)
    nan_sum[-1] = struct.pack("<d", math.nan) * DIMENSIONS
    assert position[-1] == "vec"
    with pytest.raises(BadBatch, match="NaN or an infinity"):
        service.ingest_profile("search", assemble(header, nan_sum), "r8", START, 60)
    evaluation = service.evaluate("search")
    assert evaluation.outcome == "success", evaluation.message
    assert evaluation.current_rows == len(current)
    exact = compare(reference, current, numerical=["x"], embeddings=["vec"], methods={"vec": "distance_cosine"})
    mine = evaluation.result.columns["vec"]
    assert mine.score == pytest.approx(exact.columns["vec"].score, rel=TOLERANCE, abs=TOLERANCE)
    assert mine.drifted == exact.columns["vec"].drifted and not mine.approximate
    document = evaluation.to_json()["columns"]["vec"]
    assert document["kind"] == "embedding" and document["method"] == "distance_cosine"
    assert evaluation.quality["vec"].missing_share == pytest.approx(current["vec"].isna().mean())
    assert "Drawn from a sample" in service.report("search").html  # of x: the preset has no place for vectors


@pytest.mark.parametrize(("model", "message"), [
    ({"methods": {}}, "no method is set, and Evidently's default"),
    ({"methods": {"vec": "mmd"}}, "mmd needs the vectors themselves"),
    ({"methods": {"vec": "ratio"}}, "ratio needs each component's Wasserstein distance"),
    ({"methods": {"vec": "model_bootstrap"}}, "model_bootstrap needs the vectors themselves"),
    ({"dimensions": {}}, "declares each embedding column's dimension"),
    ({"methods": {"vec": ["distance"]}}, r"methods\.vec: embedding drift method .* is not one of"),  # not a name
    ({"methods": {"vec": {"distance": 1}}}, r"methods\.vec: embedding drift method .* is not one of"),
])
def test_a_model_fed_profiles_refuses_embedding_settings_a_profile_cannot_serve(tmp_path, model, message):
    with pytest.raises(service_config.ConfigError, match=message):
        search_service(tmp_path, Clock(START), **model)
