"""compare() against Evidently 0.7's DataDriftPreset, run here on the same data: every score equal to the last bit."""

import math

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import ColumnKind, PreparedReference, compare
from fleetscope.drift.comparison import column_kinds
from fleetscope.drift.report import evidently_numbers, evidently_snapshot


def mixed(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.normal(shift, 1, rows)
    score[rng.random(rows) < 0.05] = np.nan
    score[rng.random(rows) < 0.01] = np.inf
    label = rng.choice(["cat", "dog", "bird", None], rows, p=[0.4 - shift / 4, 0.4, 0.15 + shift / 4, 0.05])
    return pd.DataFrame({
        "score": score,
        "confidence": rng.beta(5 + shift * 3, 2, rows),
        "tokens": rng.poisson(200 + 40 * shift, rows),  # int, many values: numerical
        "retries": rng.integers(0, 3 + int(shift > 0), rows),  # int, few values: categorical
        "label": label,
        "accepted": rng.random(rows) < 0.7 + shift / 10,  # bool: categorical
        "tier": rng.choice([0.0, 1.0, 2.5], rows),  # float, three values
        "version": pd.Categorical(rng.choice(["v1", "v2"], rows)),
    })


# (reference rows, current rows, shift): both sides of Evidently's 1000-row switch, drifted and not.
SHAPES = [(40, 35, 0.0), (40, 50, 0.8), (300, 250, 0.0), (600, 700, 0.4), (1000, 400, 0.3),
          (1001, 400, 0.0), (3000, 2000, 0.5), (20_000, 15_000, 0.05)]


def assert_same(ours, theirs: dict, drift_share: float = 0.5) -> None:
    assert set(ours.columns) == set(theirs["columns"])
    for name, (method, score, threshold, drifted) in theirs["columns"].items():
        mine = ours.columns[name]
        assert mine.method == method, name
        assert mine.score == score or (math.isnan(mine.score) and math.isnan(score)), (name, method, mine.score, score)
        assert mine.threshold == threshold, name
        assert mine.drifted == drifted, (name, method, mine.score, score)
    assert ours.drifted_share == theirs["share"]
    assert ours.drifted_count == theirs["count"]
    assert ours.dataset_drifted == (theirs["share"] >= drift_share)


@pytest.mark.parametrize(("reference_rows", "current_rows", "shift"), SHAPES)
def test_default_methods_match_evidently_inferring_kinds(reference_rows, current_rows, shift):
    reference = mixed(reference_rows, seed=1)
    current = mixed(current_rows, seed=2, shift=shift)
    assert_same(compare(reference, current), evidently_numbers(evidently_snapshot(reference, current)))


def test_kinds_are_inferred_as_evidently_infers_them():
    kinds = column_kinds(mixed(500, seed=3))
    assert kinds == {"score": ColumnKind.NUMERICAL, "confidence": ColumnKind.NUMERICAL,
                     "tokens": ColumnKind.NUMERICAL, "retries": ColumnKind.CATEGORICAL,
                     "label": ColumnKind.CATEGORICAL, "accepted": ColumnKind.CATEGORICAL,
                     "tier": ColumnKind.NUMERICAL, "version": ColumnKind.CATEGORICAL}


def test_declared_kinds_and_drift_share_match_evidently():
    reference, current = mixed(2000, seed=4), mixed(1500, seed=5, shift=0.6)
    kinds = {"score": ColumnKind.NUMERICAL, "retries": ColumnKind.NUMERICAL,
             "tier": ColumnKind.CATEGORICAL, "label": ColumnKind.CATEGORICAL}
    ours = compare(reference, current, numerical=["score", "retries"], categorical=["tier", "label"],
                   drift_share=0.25)
    assert_same(ours, evidently_numbers(evidently_snapshot(reference, current, kinds, drift_share=0.25)),
                drift_share=0.25)


NUMERICAL_METHODS = ["ks", "wasserstein", "jensenshannon", "psi", "kl_div", "hellinger", "anderson",
                     "cramer_von_mises", "ed", "t_test", "mannw", "es"]
CATEGORICAL_METHODS = ["chisquare", "z", "jensenshannon", "psi", "kl_div", "hellinger"]


@pytest.mark.parametrize("rows", [(15, 12), (400, 300), (4000, 3500)])
def test_every_method_matches_evidently(rows):
    reference, current = mixed(rows[0], seed=6), mixed(rows[1], seed=7, shift=0.3)
    numerical = ["score", "confidence", "tokens", "tier"]  # continuous, integer, three-valued
    for method in NUMERICAL_METHODS:
        kinds = {name: ColumnKind.NUMERICAL for name in numerical}
        methods = {name: method for name in numerical}
        ours = compare(reference, current, numerical=numerical, methods=methods)
        assert_same(ours, evidently_numbers(evidently_snapshot(reference, current, kinds, methods)))
    categorical = ["label", "accepted", "version", "retries"]
    for method in CATEGORICAL_METHODS:
        names = [name for name in categorical if method != "z" or name in ("accepted", "version")]
        kinds = {name: ColumnKind.CATEGORICAL for name in names}
        methods = {name: method for name in names}
        ours = compare(reference, current, categorical=names, methods=methods)
        assert_same(ours, evidently_numbers(evidently_snapshot(reference, current, kinds, methods)))


def test_equal_length_methods_and_custom_thresholds_match_evidently():
    # fisher_exact and g_test (scipy's power_divergence) need windows of equal length.
    reference, current = mixed(800, seed=8), mixed(800, seed=9, shift=0.5)
    kinds = {"accepted": ColumnKind.CATEGORICAL, "version": ColumnKind.CATEGORICAL, "score": ColumnKind.NUMERICAL}
    methods = {"accepted": "fisher_exact", "version": "g_test", "score": "psi"}
    thresholds = {"accepted": 0.2, "version": 0.01, "score": 0.02}
    ours = compare(reference, current, categorical=["accepted", "version"], numerical=["score"], methods=methods,
                   thresholds=thresholds)
    assert_same(ours, evidently_numbers(evidently_snapshot(reference, current, kinds, methods, thresholds)))


def test_edge_cases_match_evidently():
    rng = np.random.default_rng(10)
    reference = pd.DataFrame({"constant": np.full(1500, 3.0), "same": ["a"] * 1500,
                              "steps": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], 1500),
                              "ints": rng.integers(-5, 6, 1500).astype(float)})
    current = pd.DataFrame({"constant": np.full(900, 3.5), "same": ["a"] * 900,
                            "steps": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 900),
                            "ints": rng.integers(-5, 6, 900).astype(float)})
    assert_same(compare(reference, current), evidently_numbers(evidently_snapshot(reference, current)))
    small = reference.iloc[:30], current.iloc[:20]
    assert_same(compare(*small), evidently_numbers(evidently_snapshot(*small)))


def test_a_prepared_reference_gives_the_same_result_every_time():
    reference = mixed(5000, seed=11)
    prepared = PreparedReference(reference, column_kinds(reference))
    for seed, shift in [(12, 0.0), (13, 0.5), (14, 1.0)]:
        current = mixed(3000, seed=seed, shift=shift)
        assert compare(prepared, current) == compare(reference, current)


def test_text_columns_are_skipped_with_the_reason_and_the_rest_still_match():
    reference, current = mixed(600, seed=15), mixed(600, seed=16, shift=0.2)
    reference["request_id"] = [f"r{i}" for i in range(600)]
    current["request_id"] = [f"c{i}" for i in range(600)]
    ours = compare(reference, current)
    assert "request_id" in ours.skipped and "text" in ours.skipped["request_id"]
    theirs = evidently_numbers(evidently_snapshot(reference.drop(columns="request_id"),
                                                  current.drop(columns="request_id")))
    assert_same(ours, theirs)


def test_bad_input_is_refused_clearly():
    reference, current = mixed(100, seed=17), mixed(100, seed=18)
    with pytest.raises(ValueError, match="unknown drift method 'nope'"):
        compare(reference, current, methods={"score": "nope"})
    with pytest.raises(ValueError, match="does not apply to categorical"):
        compare(reference, current, categorical=["label"], methods="ks")
    with pytest.raises(ValueError, match="should contain numerical values only"):
        compare(reference, current, numerical=["label"])
    with pytest.raises(ValueError, match="'missing' is not in the current data"):
        compare(reference, current, numerical=["missing"])
    current["score"] = np.nan
    with pytest.raises(ValueError, match="'score' has no values in the current data"):
        compare(reference, current, numerical=["score"])
    assert math.isnan(float("nan"))  # the frame was not changed by the failed calls
    assert compare(reference, mixed(100, seed=18), numerical=["score"]).columns["score"].method == "ks"


def test_many_categories_add_up_in_evidentlys_order():
    # Evidently lists the categories from a union of two sets, whose order follows the order the values were added
    # in (where their hashes collide); its sums over categories add in that order. Forty categories first seen in a
    # shuffled order, a Categorical whose declared order is not the order of appearance, and booleans whose first
    # value is False.
    def frame(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
        names = [f"sku-{k:03d}" for k in rng.permutation(40)]
        weights = np.linspace(1, 1 + shift, 40)
        return pd.DataFrame({
            "sku": rng.choice(names, rows, p=weights / weights.sum()),
            "aisle": pd.Categorical(rng.choice(names[:30], rows), categories=sorted(names[:30])),
            "brand": pd.Categorical(rng.choice(names[10:], rows), categories=sorted(names[10:], reverse=True)),
            "cached": np.concatenate(([False], rng.random(rows - 1) < 0.4 + shift / 5)),
            "shard": rng.integers(0, 9, rows),
        })

    # Chi-square and z below Evidently's 1000-row switch, then JS; seeds for more collisions in the sets.
    for seed, rows, shift in [(19, 800, 0.5), (20, 5000, 0.2), (21, 3000, 0.3)]:
        rng = np.random.default_rng(seed)
        reference, current = frame(rng, rows, 0.0), frame(rng, rows * 3 // 4, shift)
        assert_same(compare(reference, current), evidently_numbers(evidently_snapshot(reference, current)))
        names = ["sku", "aisle", "brand", "shard"]
        for method in ("psi", "kl_div", "hellinger", "jensenshannon"):
            ours = compare(reference, current, categorical=names, methods=method)
            kinds = {name: ColumnKind.CATEGORICAL for name in names}
            assert_same(ours, evidently_numbers(evidently_snapshot(reference, current, kinds,
                                                                   dict.fromkeys(names, method))))
