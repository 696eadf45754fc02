"""Categorical columns counted exactly up to exact_categories (100,000 by default; issue 40): Jensen-Shannon exact
and certain on tens of thousands of categories, format version 5 written only where a column needs it, older
versions read as before, and the service's limits.max_exact_categories held against hostile and merged profiles."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import compare, compare_profiles
from fleetscope.drift import profiles as profiles_module
from fleetscope.drift.client import DriftClient
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.profiles import (
    EXACT_CATEGORIES,
    ProfileError,
    as_declared,
    decode,
    encode,
    merge_all,
    profile,
)
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.service import PROFILE_CONTENT_TYPE, DriftService
from tests.support.clock import Clock

START = 1_800_000_000.0


def uniform(seed: int, rows: int, categories: int, prefix: str = "u") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"c": np.char.add(prefix, rng.integers(0, categories, rows).astype(str))})


def test_fifty_thousand_categories_over_four_replicas_give_the_exact_jensenshannon_score_and_a_certain_decision():
    assert EXACT_CATEGORIES == 100_000
    reference, current = uniform(1, 200_000, 50_000), uniform(2, 200_000, 50_000)
    current.loc[:30_000, "c"] = "u7"  # drift into one category
    replicas = [profile(part, categorical=["c"], sample_rows=0) for part in np.array_split(current, 4)]
    sent = [encode(part) for part in replicas]
    assert [data[4] for data in sent] == [5, 5, 5, 5]  # each replica counts more than 10,000 categories
    merged = merge_all(decode(data) for data in sent)
    assert merged.columns["c"].distinct == current["c"].nunique() > 40_000
    found = compare_profiles(profile(reference, categorical=["c"], sample_rows=0), merged).columns["c"]
    truth = compare(reference, current, categorical=["c"]).columns["c"]
    assert found.method == truth.method == "jensenshannon"
    assert abs(found.score - truth.score) <= 1e-12
    assert found.error_bound == 0 and not found.approximate and found.decided
    assert found.drifted == truth.drifted


def test_version_5_is_written_only_where_a_categorical_column_counts_more_than_10000_categories():
    few, some = uniform(3, 600, 300), uniform(4, 40_000, 5_000)
    assert encode(profile(few, categorical=["c"], sample_rows=0))[4] == 2
    assert encode(profile(some, categorical=["c"], sample_rows=0))[4] == 3  # 5,000 categories: still version 3
    many = profile(uniform(5, 60_000, 30_000), categorical=["c"], sample_rows=0)
    assert encode(many)[4] == 5 and decode(encode(many)).columns["c"].counts == many.columns["c"].counts
    # More than 1,000 numbers never make a version 5: they are a sketch past EXACT_DISTINCT.
    numbers = pd.DataFrame({"x": np.random.default_rng(6).normal(0, 1, 50_000)})
    assert encode(profile(numbers, ["x"], sample_rows=0))[4] == 2
    # An embedding column beside 30,000 categories: version 5 holds both.
    vectors = pd.Series([[1.0, 2.0]] * 60_000, dtype=object)
    both = profile(many_with(vectors), categorical=["c"], embeddings=["v"], sample_rows=0)
    assert encode(both)[4] == 5
    assert decode(encode(both)).columns["v"].vector_sum.tolist() == [60_000.0, 120_000.0]


def many_with(vectors: pd.Series) -> pd.DataFrame:
    return uniform(5, 60_000, 30_000).assign(v=vectors)


def test_past_exact_categories_a_column_is_a_frequent_items_sketch_as_before():
    data = uniform(7, 30_000, 20_000)
    counted = profile(data, categorical=["c"], sample_rows=0, exact_categories=5_000).columns["c"]
    assert counted.counts is None and counted.frequent is not None and counted.frequent.total_weight == 30_000
    left, right = (profile(part, categorical=["c"], sample_rows=0) for part in np.array_split(data, 2))
    assert left.merge(right).columns["c"].counts is not None  # within 100,000
    merged = left.merge(right, exact_categories=10_000).columns["c"]  # past it: the sketch, every row kept
    assert merged.counts is None and merged.frequent.total_weight == 30_000
    for wrong in (0, -1, 1.5, True, profiles_module.MAX_EXACT_CATEGORIES + 1):
        with pytest.raises(ProfileError, match="exact_categories must be a whole number"):
            profile(data, categorical=["c"], exact_categories=wrong)


def _rewritten(data: bytes, version: int, change=None) -> bytes:
    """The profile's bytes with its version byte set and its first column's header entry changed."""
    body = zlib.decompress(data[5:])
    (length,) = struct.unpack_from("<I", body, 0)
    header = json.loads(body[4:4 + length])
    if change is not None:
        change(header["columns"][0])
    text = json.dumps(header).encode()
    return data[:4] + bytes([version]) + zlib.compress(struct.pack("<I", len(text)) + text + body[4 + length:])


def test_versions_1_to_4_read_as_before_and_a_reader_of_them_refuses_version_5(monkeypatch):
    some = encode(profile(uniform(8, 40_000, 5_000), categorical=["c"], sample_rows=0))
    for version in (3, 4):
        assert decode(_rewritten(some, version)).columns["c"].distinct == decode(some).columns["c"].distinct
    for version in (1, 2):  # more than 1,000 counts: not in these versions
        with pytest.raises(ProfileError, match="at most 1000 values"):
            decode(_rewritten(some, version))
    many = encode(profile(uniform(9, 60_000, 30_000), categorical=["c"], sample_rows=0))
    for version in (3, 4):  # 30,000 counts relabelled as an older version are refused, not misread
        with pytest.raises(ProfileError, match="at most 10000 values in a profile of this format version"):
            decode(_rewritten(many, version))
    with pytest.raises(ProfileError, match="format version 6 is not supported"):
        decode(_rewritten(many, 6))
    # A fleetscope that reads versions 1 to 4 refuses version 5 by its version.
    monkeypatch.setattr(profiles_module, "READABLE_VERSIONS", (1, 2, 3, 4))
    with pytest.raises(ProfileError, match="format version 5 is not supported; this fleetscope reads versions "
                                           "1, 2, 3, 4"):
        decode(many)
    assert decode(some).columns["c"].distinct > 1_000


def test_hostile_version_5_counts_are_refused_with_a_reason(monkeypatch):
    many = encode(profile(uniform(10, 60_000, 15_000), categorical=["c"], sample_rows=0))
    assert many[4] == 5

    def negative(column: dict) -> None:
        column["counts"][1][0] = -column["counts"][1][0]

    def duplicated(column: dict) -> None:
        column["counts"][0][1] = column["counts"][0][0]

    def short_list(column: dict) -> None:
        column["counts"][1].pop()

    def past_the_format(column: dict) -> None:
        column["counts"] = [[f"x{i}" for i in range(20_001)], [1] * 20_001]
        column["rows"] = 20_001

    with monkeypatch.context() as patched:
        patched.setattr(profiles_module, "MAX_EXACT_CATEGORIES", 20_000)  # the format's cap, smaller to run fast
        for change, message in ((negative, "a count must be a whole number from 1"), (duplicated, "counted twice"),
                                (short_list, "two lists of equal length"), (past_the_format, "at most 20000 values")):
            with pytest.raises(ProfileError, match=message) as refused:
                decode(_rewritten(many, 5, change))
            assert "column 'c'" in str(refused.value)
    # Within the format, past the service's limit: refused naming the column and the limit.
    with pytest.raises(ProfileError, match="column 'c' counts .* categories exactly; limits.max_exact_categories "
                                           "is 20000"):
        as_declared(decode(encode(profile(uniform(11, 60_000, 25_000), categorical=["c"], sample_rows=0))),
                    {"c": ColumnKind.CATEGORICAL}, max_exact_categories=20_000)


def service_with(tmp_path, **limits) -> DriftService:
    model = {"mode": "profiles", "columns": {"c": "categorical", "region": "categorical"}, "segments": ["region"],
             "window": {"type": "sliding", "duration": "10m"}}
    document = {"storage": {"path": str(tmp_path / "store.sqlite")}, "limits": limits, "models": {"chat": model}}
    return DriftService(service_config.parse(document), clock=Clock(START + 60))


def test_the_service_refuses_a_profile_past_its_limit_and_merges_past_it_into_the_sketch(tmp_path):
    service = service_with(tmp_path, max_exact_categories=20_000)
    too_many = profile(uniform(12, 60_000, 25_000), categorical=["c"], sample_rows=0).to_bytes()
    with pytest.raises(BadBatch, match="column 'c' counts 2[0-9]{4} categories exactly; "
                                       "limits.max_exact_categories is 20000") as refused:
        service.ingest_profile("chat", too_many, "r0", START, 60, "region=eu")
    assert (refused.value.status, refused.value.reason) == (400, "bad_profile")
    assert service.store.profiles_between("chat", 0, float("inf")).segments == {}
    # Two replicas within the limit whose merge is past it: both kept, the interval a sketch of every row.
    for replica, prefix in enumerate("ab"):
        body = profile(uniform(13 + replica, 40_000, 15_000, prefix), categorical=["c"], sample_rows=0).to_bytes()
        assert service.ingest_profile("chat", body, f"r{replica}", START, 60, "region=eu") == (40_000, False)
    interval = service.store.profiles_between("chat", 0, float("inf")).segments["region=eu"][0].columns["c"]
    assert interval.counts is None and interval.frequent.total_weight == 80_000


def test_the_service_accepts_and_keeps_exact_counts_up_to_its_default_limit(tmp_path):
    service = service_with(tmp_path)
    assert service.config.limits.max_exact_categories == 100_000
    reference, current = uniform(15, 100_000, 30_000), uniform(16, 100_000, 30_000)
    assert service.put_reference("chat", profile(reference, categorical=["c"], sample_rows=0).to_bytes(),
                                 PROFILE_CONTENT_TYPE) == 100_000
    for replica, part in enumerate(np.array_split(current, 4)):
        body = profile(part, categorical=["c"], sample_rows=0).to_bytes()
        assert body[4] == 5
        service.ingest_profile("chat", body, f"r{replica}", START, 60, "region=eu")
    evaluation = service.evaluate("chat")
    found = evaluation.result.columns["c"]
    truth = compare(reference, current, categorical=["c"]).columns["c"]
    assert abs(found.score - truth.score) <= 1e-12 and found.error_bound == 0 and found.decided


@pytest.mark.parametrize("value", [0, -5, "many", 1.5, 1_000_001])
def test_limits_max_exact_categories_is_validated(tmp_path, value):
    with pytest.raises(service_config.ConfigError, match="max_exact_categories"):
        service_config.parse({"storage": {"path": str(tmp_path / "s.sqlite")},
                              "limits": {"max_exact_categories": value}})


def test_the_client_in_profile_mode_counts_up_to_its_exact_categories():
    with pytest.raises(ValueError, match="exact_categories must be a whole number"):
        DriftClient("http://127.0.0.1:9", "chat", mode="profile", categorical=["c"], exact_categories=0)
    client = DriftClient("http://127.0.0.1:9", "chat", mode="profile", categorical=["c"], exact_categories=500,
                         flush_interval=3600)
    try:
        assert client._profiles is not None
        client._profiles.add([{"c": f"v{i}"} for i in range(400)])
        client._profiles.add([{"c": f"w{i}"} for i in range(400)])  # 800 merged: past 500, the sketch
        (pending, rows), = client._profiles.pending.values()
        assert rows == 800 and pending.columns["c"].counts is None
        assert pending.columns["c"].frequent.total_weight == 800
    finally:
        client.close(timeout=0.1)


def test_windows_and_roll_ups_merge_categories_up_to_the_services_limit(tmp_path):
    # Two intervals of 15,000 categories each, 30,000 together: within the default but past a limit of 20,000, which
    # the window's merge and the hour's roll-up keep to, as an interval's own merge does.
    service = service_with(tmp_path, max_exact_categories=20_000)
    for minute, prefix in enumerate("ab"):
        body = profile(uniform(17 + minute, 40_000, 15_000, prefix), categorical=["c"], sample_rows=0).to_bytes()
        service.ingest_profile("chat", body, "r0", START + 60 * minute, 60, "region=eu")
    limit = service.config.limits.max_exact_categories
    window = service.store.profiles_between("chat", 0, float("inf"), limit).segments["region=eu"][0].columns["c"]
    assert window.counts is None and window.frequent.total_weight == 80_000
    unlimited = service.store.profiles_between("chat", 0, float("inf")).segments["region=eu"][0].columns["c"]
    assert 20_000 < len(unlimited.counts) <= 30_000
    service.clock.now += service.config.profile_rollup_after + 2 * 3600
    service.compact()
    # Both minutes lie in one hour (START is 1,800,000,000 s, 0 s into its hour): one stored interval, a sketch.
    [(hour, intervals)] = service.store.profiles_between("chat", 0, float("inf")).segments.values()
    assert intervals == 1 and hour.columns["c"].counts is None and hour.columns["c"].frequent.total_weight == 80_000
