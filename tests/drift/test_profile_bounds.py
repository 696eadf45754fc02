"""The bound compare_profiles() states on an approximate wasserstein score: that it holds (coverage, over many
seeded data sets: the sketches' 99% confidence, every one here), that it is narrow enough to decide (at most a
quarter of the default threshold from 10,000 rows, heavy tails included), what certainty it gives the decisions,
and the buckets that make it narrow: mergeable exactly, old profiles still read, crafted bytes refused."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import compare, compare_profiles, log_buckets
from fleetscope.drift import profiles as profiles_module
from fleetscope.drift.profile_comparison import ProfileDriftResult
from fleetscope.drift.profiles import Profile, ProfileError, decode, encode, merge_all, profile

DISTRIBUTIONS = {
    "normal": lambda rng, n, shift: rng.normal(shift, 1, n),
    "far from zero": lambda rng, n, shift: rng.normal(1000 + shift, 1, n),
    "log-normal latency": lambda rng, n, shift: rng.lognormal(3 + shift, 1.5, n),
    "pareto": lambda rng, n, shift: rng.pareto(1.5, n) + 1 + shift,
    "pareto light": lambda rng, n, shift: rng.pareto(3, n) + 1 + shift,
    "mixture": lambda rng, n, shift: np.where(rng.random(n) < 0.9, rng.normal(shift, 1, n), rng.normal(8, 3, n)),
    "many ties": lambda rng, n, shift: np.round(rng.lognormal(2 + shift, 1, n), 2),
}
WASSERSTEIN_THRESHOLD = 0.1


def _scores(name: str, seed: int, rows: int, shift: float = 0.0, replicas: int = 4):
    rng = np.random.default_rng(seed)
    draw = DISTRIBUTIONS[name]
    reference, current = pd.DataFrame({"x": draw(rng, rows, 0.0)}), pd.DataFrame({"x": draw(rng, rows, shift)})
    exact = compare(reference, current, numerical=["x"]).columns["x"]
    merged = merge_all(profile(part, ["x"], sample_rows=0) for part in np.array_split(current, replicas))
    found = compare_profiles(profile(reference, ["x"], sample_rows=0), merged).columns["x"]
    assert found.method == exact.method == "wasserstein"
    return exact, found


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_the_bound_holds_on_every_seeded_data_set(name: str) -> None:
    for seed in range(12):
        for shift in (0.0, 0.05, 0.3):
            exact, found = _scores(name, seed, 12_000, shift)
            assert found.approximate  # past 1,000 distinct values: from the sketch and buckets
            assert abs(found.score - exact.score) <= found.error_bound, (name, seed, shift)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("rows", [10_000, 200_000])
def test_the_bound_is_at_most_a_quarter_of_the_threshold(name: str, rows: int) -> None:
    exact, found = _scores(name, 1, rows)
    assert abs(found.score - exact.score) <= found.error_bound
    assert found.error_bound <= 0.25 * WASSERSTEIN_THRESHOLD, (name, rows, found.error_bound)


def test_a_profile_without_buckets_is_bounded_by_its_sketch_alone() -> None:
    rng = np.random.default_rng(3)
    reference, current = (profile(pd.DataFrame({"x": rng.lognormal(3, 1.5, 20_000)}), ["x"], sample_rows=0)
                          for _ in range(2))
    with_buckets = compare_profiles(reference, current).columns["x"]
    for side in (reference, current):
        side.columns["x"].buckets = None
    without = compare_profiles(reference, current).columns["x"]
    sketch = reference.columns["x"].sketch
    assert sketch is not None
    stated = sketch.normalized_rank_error(False) * 2 * (reference.columns["x"].maximum - reference.columns["x"].minimum)
    # e (max - min) a side, less where the band e on either side of the sketch's rank is clipped to [0, 1]
    assert stated / 2 < without.error_bound * reference.columns["x"].std <= stated
    assert with_buckets.error_bound < without.error_bound / 20


def test_an_uncertain_column_does_not_count_toward_the_dataset_unless_asked() -> None:
    exact, found = _scores("normal", 2, 20_000, shift=0.3)
    assert found.drifted
    straddling = type(found)(**{**found.__dict__, "score": found.threshold + found.error_bound / 2})
    assert not straddling.decided and found.decided
    result = ProfileDriftResult({"x": straddling}, 0.5)
    assert result.uncertain_count == 1 and result.drifted_count == 0 and not result.dataset_drifted
    counted = ProfileDriftResult({"x": straddling}, 0.5, count_uncertain=True)
    assert counted.drifted_count == 1 and counted.dataset_drifted
    assert ProfileDriftResult({"x": found}, 0.5).dataset_drifted


def test_buckets_merge_exactly_in_any_order() -> None:
    rng = np.random.default_rng(5)
    parts = [rng.lognormal(0, 2, 3000), rng.normal(1000, 1, 3000), rng.normal(0, 1e-6, 3000), np.zeros(10)]
    built = [log_buckets.build(part) for part in parts]
    forward = built[0]
    for other in built[1:]:
        forward = log_buckets.merge(forward, other)
    backward = built[-1]
    for other in reversed(built[:-1]):
        backward = log_buckets.merge(other, backward)
    values = np.concatenate(parts)
    for merged in (forward, backward):
        assert merged.keys.size <= log_buckets.MAX_BUCKETS and merged.rows == values.size
        low, high = merged.edges()
        at = np.sort(values)
        below, started = log_buckets.bounds(merged, np.concatenate((low, high, at)))
        truth = np.searchsorted(at, np.concatenate((low, high, at)), "right")
        assert np.all(below <= truth) and np.all(truth <= started)


def _column_blob(data: bytes) -> tuple[dict, bytes]:
    import json
    body = zlib.decompress(data[5:])
    (length,) = struct.unpack_from("<I", body, 0)
    return json.loads(body[4:4 + length]), body


def _with_buckets(data: bytes, replace) -> bytes:
    """The profile with its one column's buckets blob replaced (the column has counts: none past 1,000 values)."""
    import json
    header, body = _column_blob(data)
    offset = 4 + struct.unpack_from("<I", body, 0)[0]
    (length,) = struct.unpack_from("<I", body, offset)
    blob = replace(body[offset + 4:offset + 4 + length])
    text = json.dumps(header).encode()
    rest = struct.pack("<I", len(blob)) + blob + body[offset + 4 + length:]
    return data[:5] + zlib.compress(struct.pack("<I", len(text)) + text + rest)


def test_crafted_buckets_are_refused_with_the_reason() -> None:
    rng = np.random.default_rng(9)
    data = encode(profile(pd.DataFrame({"x": rng.normal(0, 1, 5000)}), ["x"], sample_rows=0))
    header, _ = _column_blob(data)
    assert header["columns"][0]["buckets"] == "binary" and "counts" not in header["columns"][0]
    assert decode(_with_buckets(data, lambda blob: blob)).columns["x"].buckets is not None

    def count(blob: bytes, index: int, value: int) -> bytes:
        size = (len(blob) - 5) // 12
        at = 5 + 4 * size + 8 * index
        return blob[:at] + struct.pack("<q", value) + blob[at + 8:]

    def key(blob: bytes, index: int, value: int) -> bytes:
        return blob[:5 + 4 * index] + struct.pack("<i", value) + blob[5 + 4 * index + 4:]

    crafted = {
        "short": lambda blob: blob[:3],
        "cut inside a pair": lambda blob: blob[:-1],
        "too many": lambda blob: blob + blob[5:] * 3,
        "level": lambda blob: b"\x7f" + blob[1:],
        "negative count": lambda blob: count(blob, 0, -1),
        "zero count": lambda blob: count(blob, 3, 0),
        "counts past the rows": lambda blob: count(blob, 0, 2 ** 62),
        "keys out of order": lambda blob: key(blob, 0, 2 ** 31 - 1),
        "key past a float64": lambda blob: key(blob, 1, -(2 ** 31)),
        "cut": lambda blob: blob[:1] + struct.pack("<i", 2 ** 31 - 1) + blob[5:],
    }
    for name, change in crafted.items():
        with pytest.raises(ProfileError):
            decode(_with_buckets(data, change))
        assert name


def test_a_version_1_profile_is_still_read_and_merges() -> None:
    rng = np.random.default_rng(4)
    made = profile(pd.DataFrame({"x": rng.normal(0, 1, 5000)}), ["x"], sample_rows=0)
    old = Profile({name: column for name, column in made.columns.items()}, made.k)
    old.columns["x"].buckets = None
    data = bytearray(encode(old))
    data[4] = 1
    read = decode(bytes(data))
    assert read.columns["x"].buckets is None
    merged = read.merge(profile(pd.DataFrame({"x": rng.normal(0, 1, 5000)}), ["x"], sample_rows=0))
    assert merged.columns["x"].buckets is None and merged.columns["x"].rows == 10_000
    with_buckets = bytearray(encode(profile(pd.DataFrame({"x": rng.normal(0, 1, 5000)}), ["x"], sample_rows=0)))
    with_buckets[4] = 1  # buckets in a version 1 profile
    with pytest.raises(ProfileError, match="version 2"):
        decode(bytes(with_buckets))


# -- jensenshannon (and hellinger) on columns of many categories ---------------------------------------------------

CATEGORIES = {
    "zipf 1.3": lambda rng, n, shift: np.char.add("t", rng.zipf(1.3 + shift, n).astype(str)),
    "zipf 1.6": lambda rng, n, shift: np.char.add("t", rng.zipf(1.6 + shift, n).astype(str)),
    "uniform, 3,000": lambda rng, n, shift: np.char.add("u", rng.integers(0, 3000 + int(shift * 3000), n).astype(str)),
    "uniform, 30,000": lambda rng, n, shift: np.char.add("u", rng.integers(0, 30_000, n).astype(str)),
    "few heavy, long tail": lambda rng, n, shift: np.where(
        rng.random(n) < 0.8 - shift / 3, np.char.add("h", rng.integers(0, 5, n).astype(str)),
        np.char.add("t", rng.integers(0, 100_000, n).astype(str))),
}
JS_THRESHOLD = 0.1


def _categorical_scores(name: str, seed: int, rows: int, shift: float = 0.0, method: str | None = None):
    rng = np.random.default_rng(seed)
    draw = CATEGORIES[name]
    reference, current = pd.DataFrame({"c": draw(rng, rows, 0.0)}), pd.DataFrame({"c": draw(rng, rows, shift)})
    exact = compare(reference, current, categorical=["c"], methods=method).columns["c"]
    merged = merge_all(profile(part, categorical=["c"], sample_rows=0) for part in np.array_split(current, 4))
    found = compare_profiles(profile(reference, categorical=["c"], sample_rows=0), merged, methods=method).columns["c"]
    assert found.method == exact.method
    return exact, found


def _holds(exact, found) -> None:
    assert abs(found.score - exact.score) <= found.error_bound + 1e-12, (found, exact.score)
    if found.decided:  # a certain decision is the right one
        assert found.drifted == exact.drifted, (found, exact.score)


@pytest.mark.parametrize("name", sorted(CATEGORIES))
def test_a_frequent_items_sketch_bounds_jensenshannon_and_hellinger_on_every_seeded_data_set(name, monkeypatch):
    # The sketch, at a size a test runs quickly: past 100 categories, a sketch tracking at most 192 values.
    monkeypatch.setattr(profiles_module, "EXACT_CATEGORIES", 100)
    monkeypatch.setattr(profiles_module, "FREQUENT_LG_MAP_SIZE", 8)
    approximate = 0
    for seed in range(12):
        for shift in (0.0, 0.3):
            exact, found = _categorical_scores(name, seed, 6_000, shift)
            assert exact.method == "jensenshannon"
            _holds(exact, found)
            approximate += found.approximate  # a sketch that kept every category (offset 0) is exact
        _holds(*_categorical_scores(name, seed, 6_000, 0.3, "hellinger"))
    assert approximate >= 12


def test_a_sketch_that_tracks_a_column_closely_decides_it(monkeypatch):
    """Few heavy categories and a light tail: the sketch's range is narrow enough to be certain."""
    monkeypatch.setattr(profiles_module, "EXACT_CATEGORIES", 300)
    rng = np.random.default_rng(7)
    heavy = np.char.add("h", rng.integers(0, 20, 200_000).astype(str))
    tail = np.char.add("t", rng.integers(0, 20_000, 200_000).astype(str))
    reference = pd.DataFrame({"c": np.where(rng.random(200_000) < 0.995, heavy, tail)})
    current = reference.sample(frac=1, random_state=1).reset_index(drop=True)
    current.loc[:40_000, "c"] = "h0"  # a fifth of the rows moved to one category: drift
    exact = compare(reference, current, categorical=["c"]).columns["c"]
    found = compare_profiles(profile(reference, categorical=["c"], sample_rows=0),
                             profile(current, categorical=["c"], sample_rows=0)).columns["c"]
    assert found.approximate and found.error_bound < 0.25 * JS_THRESHOLD and found.decided
    _holds(exact, found)


@pytest.mark.parametrize("name", sorted(CATEGORIES))
@pytest.mark.parametrize("rows", [10_000, 60_000])
def test_jensenshannon_is_within_a_quarter_of_the_threshold_or_uncertain(name, rows):
    exact, found = _categorical_scores(name, 2, rows, 0.0)
    _holds(exact, found)
    if found.error_bound <= 0.25 * JS_THRESHOLD:
        return
    # Past EXACT_CATEGORIES categories a side is a sketch; where its range cannot be that narrow, the decision
    # is uncertain unless the whole range lies on one side of the threshold.
    assert found.approximate and (not found.decided or abs(found.score - found.threshold) > found.error_bound)


def test_columns_up_to_exact_categories_are_exact_and_written_as_version_3():
    rng = np.random.default_rng(11)
    values = np.char.add("u", rng.integers(0, 9_000, 40_000).astype(str))
    made = profile(pd.DataFrame({"c": values}), categorical=["c"], sample_rows=0)
    assert 1_000 < made.columns["c"].distinct <= profiles_module.EXACT_CATEGORIES
    data = encode(made)
    assert data[4] == 3 and decode(data).columns["c"].counts == made.columns["c"].counts
    few = encode(profile(pd.DataFrame({"c": values[:500]}), categorical=["c"], sample_rows=0))
    assert few[4] == 2  # a fleetscope reading versions 1 and 2 still reads it
    # Merging past the merge's exact_categories falls back to the sketch, every row accounted for.
    other = profile(pd.DataFrame({"c": np.char.add("v", rng.integers(0, 9_000, 40_000).astype(str))}),
                    categorical=["c"], sample_rows=0)
    merged = made.merge(other, exact_categories=10_000).columns["c"]
    assert merged.counts is None and merged.frequent is not None and merged.frequent.total_weight == 80_000
    within = made.merge(other).columns["c"]  # within the default, EXACT_CATEGORIES: still counted exactly
    assert within.distinct == made.columns["c"].distinct + other.columns["c"].distinct > 10_000


def _with_counts(data: bytes, version: int, change) -> bytes:
    import json
    header, body = _column_blob(data)
    change(header["columns"][0])
    text = json.dumps(header).encode()
    rest = body[4 + struct.unpack_from("<I", body, 0)[0]:]
    return data[:4] + bytes([version]) + zlib.compress(struct.pack("<I", len(text)) + text + rest)


def test_crafted_category_counts_are_refused_by_version():
    rng = np.random.default_rng(12)
    data = encode(profile(pd.DataFrame({"c": np.char.add("u", rng.integers(0, 4_000, 30_000).astype(str))}),
                          categorical=["c"], sample_rows=0))
    assert data[4] == 3
    with pytest.raises(ProfileError, match="at most 1000 values"):  # more than version 2 counts
        decode(_with_counts(data, 2, lambda column: None))

    def past_the_limit(column: dict) -> None:
        column["counts"] = [[f"x{i}" for i in range(10_001)], [1] * 10_001]
        column["rows"] = 10_001

    with pytest.raises(ProfileError, match="at most 10000 values"):
        decode(_with_counts(data, 3, past_the_limit))

    def duplicated(column: dict) -> None:
        column["counts"][0][1] = column["counts"][0][0]

    with pytest.raises(ProfileError, match="counted twice"):
        decode(_with_counts(data, 3, duplicated))

    def not_adding_up(column: dict) -> None:
        column["rows"] += 1

    with pytest.raises(ProfileError, match="do not add up"):
        decode(_with_counts(data, 3, not_adding_up))
    assert decode(_with_counts(data, 3, lambda column: None)).columns["c"].distinct > 1_000
