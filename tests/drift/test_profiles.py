"""Profiles and compare_profiles() against compare() on the same rows (and so against Evidently, which
test_compare_parity holds compare() to): count-based scores equal, approximate scores within their bound."""

import contextlib
import json
import math
import struct
import zlib

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import ColumnKind, compare, compare_profiles, profiles
from fleetscope.drift import profile_comparison as comparison
from fleetscope.drift.profiles import EXACT_DISTINCT, Profile, ProfileError, merge_all, profile
from tests.drift.test_compare_parity import SHAPES, mixed

NUMERICAL_METHODS = ["ks", "wasserstein", "jensenshannon", "psi", "kl_div", "hellinger", "anderson",
                     "cramer_von_mises", "ed", "t_test", "mannw", "es"]
CATEGORICAL_METHODS = ["chisquare", "z", "jensenshannon", "psi", "kl_div", "hellinger"]


def replicas(df: pd.DataFrame, parts: int, **kinds) -> Profile:
    """The frame profiled in `parts` batches, as replicas would, and merged."""
    return merge_all(profile(batch, **kinds) for batch in np.array_split(df, parts))


def assert_within_bound(ours, exact) -> None:
    assert set(ours.columns) == set(exact.columns)
    for name, theirs in exact.columns.items():
        mine = ours.columns[name]
        assert mine.method == theirs.method, name
        if mine.approximate:
            assert abs(mine.score - theirs.score) <= mine.error_bound, (name, mine.score, theirs.score, mine)
            if abs(theirs.score - theirs.threshold) > mine.error_bound:
                assert mine.drifted == theirs.drifted, name
                assert mine.decided
        else:
            assert mine.error_bound == 0
            assert mine.score == pytest.approx(theirs.score, rel=1e-9, abs=1e-12), (name, mine.method)
            assert mine.drifted == theirs.drifted, name


@pytest.mark.parametrize(("reference_rows", "current_rows", "shift"), SHAPES)
def test_default_methods_from_profiles_agree_with_compare(reference_rows, current_rows, shift):
    reference, current = mixed(reference_rows, seed=1), mixed(current_rows, seed=2, shift=shift)
    exact = compare(reference, current)
    ours = compare_profiles(replicas(reference, 3), replicas(current, 4))
    assert_within_bound(ours, exact)
    # Up to 1,000 rows a side every value is kept: nothing is approximate.
    if max(reference_rows, current_rows) <= EXACT_DISTINCT:
        assert not any(column.approximate for column in ours.columns.values())
    # Count-based columns are exact at any size.
    for name in ("retries", "label", "accepted", "version", "tier", "tokens"):
        assert not ours.columns[name].approximate, name


DISTRIBUTIONS = {
    "normal": lambda rng, n, shift: rng.normal(shift, 1, n),
    "lognormal": lambda rng, n, shift: rng.lognormal(shift, 0.8, n),
    "uniform": lambda rng, n, shift: rng.uniform(shift, 1 + shift, n),
    "bimodal": lambda rng, n, shift: np.where(rng.random(n) < 0.3 + shift / 4, rng.normal(-2, 0.5, n),
                                              rng.normal(2, 0.5, n)),
    "offset": lambda rng, n, shift: rng.normal(1000 + shift, 1, n),
}


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize(("rows", "shift"), [(5_000, 0.0), (5_000, 0.2), (60_000, 0.05), (60_000, 1.0)])
def test_wasserstein_from_sketches_is_within_its_bound(distribution, rows, shift):
    rng = np.random.default_rng(rows + int(shift * 100))
    draw = DISTRIBUTIONS[distribution]
    reference = pd.DataFrame({"x": draw(rng, rows, 0.0)})
    current = pd.DataFrame({"x": draw(rng, rows // 2, shift)})
    exact = compare(reference, current)
    ours = compare_profiles(replicas(reference, 10), replicas(current, 7))
    assert ours.columns["x"].approximate and ours.columns["x"].method == "wasserstein"
    assert_within_bound(ours, exact)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_ks_from_a_sketch_is_within_its_bound(shift):
    # Evidently picks KS for references of up to 1,000 rows: the reference is kept whole, the current sketched.
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 900)})
    current = pd.DataFrame({"x": rng.normal(shift, 1, 8_000)})
    ours = compare_profiles(profile(reference), replicas(current, 4))
    assert ours.columns["x"].method == "ks" and ours.columns["x"].approximate
    assert_within_bound(ours, compare(reference, current))


@pytest.mark.parametrize("rows", [(15, 12), (400, 300)])
def test_every_method_is_exact_while_the_values_are_kept(rows):
    reference, current = mixed(rows[0], seed=6), mixed(rows[1], seed=7, shift=0.3)
    numerical = ["score", "confidence", "tokens", "tier"]
    for method in NUMERICAL_METHODS:
        exact = compare(reference, current, numerical=numerical, methods=method)
        ours = compare_profiles(replicas(reference, 2, numerical=numerical),
                                replicas(current, 3, numerical=numerical), methods=method)
        assert_within_bound(ours, exact)
        assert not any(column.approximate for column in ours.columns.values())
    categorical = ["label", "accepted", "version", "retries"]
    for method in CATEGORICAL_METHODS:
        names = [name for name in categorical if method != "z" or name in ("accepted", "version")]
        exact = compare(reference, current, categorical=names, methods=method)
        ours = compare_profiles(replicas(reference, 2, categorical=names),
                                replicas(current, 3, categorical=names), methods=method)
        assert_within_bound(ours, exact)
    # fisher_exact and g_test need windows of equal length.
    current = mixed(rows[0], seed=8, shift=0.5)
    for method in ("fisher_exact", "g_test"):
        names = ["accepted"] if method == "fisher_exact" else ["accepted", "version"]
        exact = compare(reference, current, categorical=names, methods=method)
        ours = compare_profiles(profile(reference, categorical=names), replicas(current, 2, categorical=names),
                                methods=method)
        assert_within_bound(ours, exact)


def test_few_valued_columns_stay_exact_past_the_rows_that_can_be_rebuilt(monkeypatch):
    # Past EXPAND_LIMIT rows the tests run on the counts themselves; shown here with the limit lowered.
    monkeypatch.setattr(comparison, "EXPAND_LIMIT", 100)
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"x": rng.choice(np.arange(30) / 4, 30_000)})
    current = pd.DataFrame({"x": rng.choice(np.arange(32) / 4, 20_000)})
    for method in ("wasserstein", "ks", "jensenshannon", "psi", "kl_div", "t_test"):
        ours = compare_profiles(replicas(reference, 3), replicas(current, 2), methods=method)
        assert_within_bound(ours, compare(reference, current, methods=method))
        assert not ours.columns["x"].approximate
    with pytest.raises(comparison.ProfileMethodError, match="needs the values themselves"):
        compare_profiles(profile(reference), profile(current), methods="anderson")


def test_t_test_is_exact_from_moments_however_many_values():
    rng = np.random.default_rng(12)
    reference, current = pd.DataFrame({"x": rng.normal(0, 1, 20_000)}), pd.DataFrame({"x": rng.normal(0.02, 1, 9_000)})
    ours = compare_profiles(replicas(reference, 5), replicas(current, 3), methods="t_test")
    assert not ours.columns["x"].approximate
    assert_within_bound(ours, compare(reference, current, methods="t_test"))


def test_methods_a_sketch_cannot_bound_are_refused_with_the_reason():
    rng = np.random.default_rng(13)
    reference, current = pd.DataFrame({"x": rng.normal(0, 1, 5_000)}), pd.DataFrame({"x": rng.normal(0, 1, 5_000)})
    for method in ("anderson", "mannw", "psi", "jensenshannon"):
        with pytest.raises(comparison.ProfileMethodError, match=f"column 'x': {method} cannot be computed from a "
                                                                 "quantile sketch.*use wasserstein"):
            compare_profiles(profile(reference), profile(current), methods=method)


def _many_categories(rng, rows: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame({"token": [f"t{v}" for v in rng.zipf(1.6 + shift, rows)]})


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_many_categories_fall_back_to_a_frequent_items_sketch_with_a_bound(shift, monkeypatch):
    rng = np.random.default_rng(14)
    reference, current = _many_categories(rng, 60_000, 0.0), _many_categories(rng, 40_000, shift)
    assert EXACT_DISTINCT < reference["token"].nunique() <= profiles.EXACT_CATEGORIES
    counted = compare_profiles(replicas(reference, 4, categorical=["token"]),
                               replicas(current, 3, categorical=["token"]))
    assert_within_bound(counted, compare(reference, current, categorical=["token"]))
    assert not counted.columns["token"].approximate  # counted exactly up to EXACT_CATEGORIES categories
    monkeypatch.setattr(profiles, "EXACT_CATEGORIES", EXACT_DISTINCT)  # past it: the frequent-items sketch
    ours = compare_profiles(replicas(reference, 4, categorical=["token"]),
                            replicas(current, 3, categorical=["token"]))
    exact = compare(reference, current, categorical=["token"])
    assert ours.columns["token"].approximate
    assert_within_bound(ours, exact)
    hellinger = compare_profiles(profile(reference, categorical=["token"]), profile(current, categorical=["token"]),
                                 methods="hellinger")
    assert_within_bound(hellinger, compare(reference, current, categorical=["token"], methods="hellinger"))
    with pytest.raises(comparison.ProfileMethodError, match="g_test needs every category's exact count"):
        compare_profiles(profile(reference, categorical=["token"]), profile(current, categorical=["token"]),
                         methods="g_test")
    # Against a reference of at most 1,000 categories, chisquare is exact even so: a new category makes it 0.
    small = reference.iloc[:900]
    assert small["token"].nunique() <= EXACT_DISTINCT
    exact = compare(small, current, categorical=["token"], methods="chisquare")
    assert exact.columns["token"].score == 0
    assert_within_bound(compare_profiles(profile(small, categorical=["token"]), profile(current, categorical=["token"]),
                                         methods="chisquare"), exact)
    # Undeclared, a current of more than EXACT_DISTINCT values may be text (Evidently's rule needs the distinct
    # count): skipped, saying why. One of fewer is categorical, as compare() finds it, and compared.
    undeclared = compare_profiles(profile(reference), profile(current))
    if current["token"].nunique() > EXACT_DISTINCT:
        assert "declare it categorical" in undeclared.skipped["token"] and not undeclared.columns
    else:
        assert_within_bound(undeclared, compare(reference, current))


def test_merge_is_associative_and_commutative():
    a, b, c = (profile(mixed(rows, seed=seed, shift=shift)) for rows, seed, shift in
               ((3_000, 20, 0.0), (500, 21, 0.3), (4_000, 22, 0.1)))
    left, right, swapped = a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(a).merge(b)
    for merged in (right, swapped):
        for name, column in left.columns.items():
            other = merged.columns[name]
            assert (other.family, other.rows, other.missing, other.counts) == \
                   (column.family, column.rows, column.missing, column.counts), name
            if column.numeric:
                assert (other.minimum, other.maximum, other.sketch.n) == \
                       (column.minimum, column.maximum, column.sketch.n)
                assert other.mean == pytest.approx(column.mean, rel=1e-12)
                assert other.squared_deviations == pytest.approx(column.squared_deviations, rel=1e-12)
    whole = profile(pd.concat([mixed(3_000, 20), mixed(500, 21, 0.3), mixed(4_000, 22, 0.1)]))
    for name, column in whole.columns.items():
        assert (column.rows, column.missing, column.counts) == \
               (left.columns[name].rows, left.columns[name].missing, left.columns[name].counts)
        if column.numeric:
            assert left.columns[name].std == pytest.approx(column.std, rel=1e-12)
    assert a.merge(b).columns["score"].rows == a.columns["score"].rows + b.columns["score"].rows  # a, b unchanged


def test_kinds_are_decided_on_the_merged_current_as_evidently_decides_them():
    few = profile(pd.DataFrame({"n": np.arange(8) % 4}))
    assert few.columns["n"].kind() is ColumnKind.CATEGORICAL  # an integer column of at most 10 values
    many = few.merge(profile(pd.DataFrame({"n": np.arange(4, 20)})))
    assert many.columns["n"].kind() is ColumnKind.NUMERICAL
    # A batch that held only whole numbers read a float column as integers; merged, it is float.
    mixed_types = profile(pd.DataFrame({"x": [1, 2]})).merge(profile(pd.DataFrame({"x": [0.5]})))
    assert mixed_types.columns["x"].family == "float" and mixed_types.columns["x"].kind() is ColumnKind.NUMERICAL
    text = profile(pd.DataFrame({"id": [f"r{i}" for i in range(10)]}))
    assert text.columns["id"].kind() is ColumnKind.TEXT


def test_missing_values_are_counted_and_left_out_as_compare_leaves_them_out():
    df = pd.DataFrame({"x": [1.0, np.nan, np.inf, -np.inf, 2.0], "label": ["a", None, "b", np.nan, "a"]})
    columns = profile(df).columns
    assert (columns["x"].rows, columns["x"].missing, columns["x"].counts) == (2, 3, {1.0: 1, 2.0: 1})
    assert (columns["label"].rows, columns["label"].missing, columns["label"].counts) == (3, 2, {"a": 2, "b": 1})
    all_missing = pd.DataFrame({"x": [np.nan, np.nan]})
    with pytest.raises(ValueError, match="'x' has no values in the current profile"):
        compare_profiles(profile(df[["x"]]), profile(all_missing, numerical=["x"]))


def test_bad_input_is_refused_clearly():
    df = mixed(100, seed=30)
    with pytest.raises(ProfileError, match="'label' should contain numerical values only"):
        profile(df, numerical=["label"])
    with pytest.raises(ProfileError, match="'nope' is not in the data"):
        profile(df, numerical=["nope"])
    with pytest.raises(ProfileError, match="both numerical and categorical"):
        profile(df, numerical=["score"], categorical=["score"])
    with pytest.raises(ProfileError, match="different columns"):
        profile(df).merge(profile(df[["score"]]))
    with pytest.raises(ProfileError, match="'v' holds string values in one profile and float"):
        profile(pd.DataFrame({"v": ["a"]})).merge(profile(pd.DataFrame({"v": [1.5]})))
    with pytest.raises(ProfileError, match="declared numerical in one profile"):
        profile(df, numerical=["tokens"]).merge(profile(df, categorical=["tokens"]))
    with pytest.raises(ValueError, match="'confidence' is not in the reference profile"):
        compare_profiles(profile(df[["score"]]), profile(df))
    with pytest.raises(ValueError, match="unknown drift method"):
        compare_profiles(profile(df), profile(df), methods="nope")


def test_a_profile_survives_bytes_and_compares_the_same():
    reference, current = mixed(20_000, seed=31), mixed(3_000, seed=32, shift=0.3)
    before = (replicas(reference, 3), replicas(current, 2))
    after = tuple(Profile.from_bytes(p.to_bytes()) for p in before)
    assert compare_profiles(*after) == compare_profiles(*before)
    assert after[0].to_bytes() == before[0].to_bytes()
    # Compact: a 20,000-row, 8-column reference in a few kilobytes.
    assert len(before[0].to_bytes()) < 40_000


def test_damaged_profiles_are_refused_with_a_profile_error_and_never_anything_else():
    data = profile(mixed(3_000, seed=33)).to_bytes()
    with pytest.raises(ProfileError, match="does not start with FSPF"):
        Profile.from_bytes(b"garbage")
    with pytest.raises(ProfileError, match="version 9 is not supported"):
        Profile.from_bytes(data[:4] + bytes([9]) + data[5:])
    with pytest.raises(ProfileError, match="a profile is bytes, not str"):
        Profile.from_bytes("FSPF")  # type: ignore[arg-type]
    with pytest.raises(ProfileError, match="damaged|ends inside"):
        Profile.from_bytes(data[:len(data) // 2])
    bomb = profiles.MAGIC + bytes([profiles.FORMAT_VERSION]) + zlib.compress(b"\0" * (profiles.MAX_DECODED_BYTES + 1))
    with pytest.raises(ProfileError, match="larger than"):
        Profile.from_bytes(bomb)
    body = bytearray(zlib.decompress(data[5:]))
    rng = np.random.default_rng(34)
    for _ in range(300):  # flipped bytes anywhere in the body: refused or read, never a crash
        damaged = bytearray(body)
        for position in rng.integers(0, len(damaged), 3):
            damaged[position] = int(rng.integers(0, 256))
        with contextlib.suppress(ProfileError):
            Profile.from_bytes(data[:5] + zlib.compress(bytes(damaged)))


def test_nan_and_wrong_typed_fields_in_a_profile_are_refused():
    data = profile(pd.DataFrame({"x": ["a", "b"]})).to_bytes()
    body = zlib.decompress(data[5:])
    (length,) = struct.unpack_from("<I", body)
    header = json.loads(body[4:4 + length])
    for damage in ({"rows": -1}, {"rows": 5}, {"family": "tensor"}, {"declared": "nope"}, {"rows": "many"},
                   {"counts": [["a"], [1, 1]]}, {"counts": [["a", "b"], [1, math.nan]]}):
        broken = json.loads(json.dumps(header))
        broken["columns"][0].update(damage)
        text = json.dumps(broken).encode()
        with pytest.raises(ProfileError):
            Profile.from_bytes(data[:5] + zlib.compress(struct.pack("<I", len(text)) + text + body[4 + length:]))


def test_declared_as_the_model_declares_categories_are_the_service_s_text():
    replica = profile(pd.DataFrame({"retries": [1, 2, 2, 0], "ok": [True, False, True, True], "x": [0.5, 1, 2, 3]}))
    declared = profiles.as_declared(replica, {"retries": ColumnKind.CATEGORICAL, "ok": ColumnKind.CATEGORICAL,
                                              "x": ColumnKind.NUMERICAL})
    assert declared.columns["retries"].counts == {"0": 1, "1": 1, "2": 2} and not declared.columns["retries"].numeric
    assert declared.columns["ok"].counts == {"true": 3, "false": 1}
    assert declared.columns["x"].declared is ColumnKind.NUMERICAL and declared.columns["x"].numeric
    with pytest.raises(ProfileError, match="'x': 0.5 is not a category"):
        profiles.as_declared(replica, {"retries": ColumnKind.CATEGORICAL, "ok": ColumnKind.CATEGORICAL,
                                       "x": ColumnKind.CATEGORICAL})
    with pytest.raises(ProfileError, match="'ok' is numerical, but the profile holds bool values"):
        profiles.as_declared(replica, {"retries": ColumnKind.CATEGORICAL, "ok": ColumnKind.NUMERICAL,
                                       "x": ColumnKind.NUMERICAL})


def test_a_profile_keeps_a_bounded_weighted_sample_of_its_rows():
    from fleetscope.drift import samples

    parts = [mixed(rows, seed=40 + index) for index, rows in enumerate([50, 3_000, 20_000] * 30)]
    merged = merge_all(profile(part) for part in parts)
    total = sum(len(part) for part in parts)
    # Uniform: every part thinned to the lowest sampling rate (100 of 20,000 rows), within CAP.
    assert merged.sample.size == pytest.approx(total * 100 / 20_000, rel=0.01)  # rounded at each merge
    assert merged.sample.size <= samples.CAP and merged.sample.represented == pytest.approx(total, rel=1e-9)
    assert merge_all(profile(mixed(1_000, seed=s)) for s in range(80)).sample.size == samples.CAP
    assert set(merged.sample.columns) == set(merged.columns)
    # Each part is represented in proportion to its rows, not to its sample's size.
    small_part, big_part = mixed(100, seed=1), mixed(100_000, seed=2, shift=1.0)
    big = merge_all([profile(small_part), profile(big_part)]).sample.frame()
    from_small = big["confidence"].isin(small_part["confidence"]).sum()
    assert big["confidence"].isin(big_part["confidence"]).sum() + from_small == len(big)
    assert from_small <= 3  # 100 of 100,100 rows: 0.1 expected in the sample, 4 or more about once in 250,000 runs
    again = Profile.from_bytes(merged.to_bytes()).sample
    assert again.columns == merged.sample.columns and again.weights == merged.sample.weights
    assert profile(mixed(10, seed=3), sample_rows=0).sample is None
    data = profile(pd.DataFrame({"x": [1.0, 2.0]})).to_bytes()
    header = json.loads(zlib.decompress(data[5:])[4:4 + struct.unpack_from("<I", zlib.decompress(data[5:]))[0]])
    assert header["sample"]["weights"] == [1.0, 1.0]


def test_a_sketch_s_values_weigh_what_its_ranks_say_after_any_merges():
    # datasketches 5.2.0's iterator reports weight 1 for every item after some merges; the view does not rely on it.
    from fleetscope.drift.profile_comparison import sketch_view

    rng = np.random.default_rng(50)
    merged = merge_all(profile(pd.DataFrame({"x": rng.normal(size=625)}), sample_rows=0) for _ in range(8))
    sketch = merged.columns["x"].sketch
    values, weights = sketch_view(sketch)
    assert weights.sum() == sketch.n == 5000 and np.all(np.diff(values) > 0) and np.all(weights > 0)
