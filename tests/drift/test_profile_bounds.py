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
