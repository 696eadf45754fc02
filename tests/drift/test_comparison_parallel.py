"""compare() in threads: the same result as in one thread, equal to Evidently's, errors named by column;
and the pieces the threaded path relies on (the merge-free Wasserstein sum, kinds inferred without NaN passes)."""

import numpy as np
import pandas as pd
import pytest
from evidently.core.datasets import infer_column_type
from scipy import stats

from fleetscope.drift import ColumnKind, PreparedReference, compare, stattests
from fleetscope.drift.columns import category_counts, infer_kind_and_counts
from fleetscope.drift.comparison import column_kinds
from fleetscope.drift.report import evidently_numbers, evidently_snapshot
from tests.drift.test_compare_parity import assert_same, mixed


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_threads_give_the_result_one_thread_gives(workers):
    reference, current = mixed(6000, seed=30), mixed(4000, seed=31, shift=0.4)
    assert compare(reference, current, workers=workers) == compare(reference, current, workers=1)
    prepared = PreparedReference(reference, column_kinds(current), workers=workers)
    assert compare(prepared, current, workers=workers) == compare(reference, current, workers=1)
    methods = {"score": "psi", "confidence": "anderson", "tokens": "ks", "label": "chisquare"}
    assert (compare(reference, current, methods=methods, workers=workers)
            == compare(reference, current, methods=methods, workers=1))


def test_threads_match_evidently_on_wide_windows():
    rng = np.random.default_rng(32)
    reference = pd.DataFrame({f"x{i}": rng.normal(0, 1, 30_000) for i in range(6)})
    current = pd.DataFrame({f"x{i}": rng.normal(0.03 * i, 1 + 0.05 * i, 25_000) for i in range(6)})
    current.loc[::97, "x1"] = np.nan
    current.loc[::101, "x2"] = np.inf
    reference["c"] = rng.choice(["a", "b", "c", "d"], 30_000)
    current["c"] = rng.choice(["a", "b", "c", "d", "e"], 25_000)
    theirs = evidently_numbers(evidently_snapshot(reference, current))
    assert_same(compare(reference, current, workers=4), theirs)
    assert_same(compare(PreparedReference(reference, column_kinds(current), workers=4), current, workers=4), theirs)


def test_a_failing_column_is_named_and_the_first_in_order_raises():
    reference, current = mixed(300, seed=33), mixed(300, seed=34)
    for frame in (reference, current):  # no variability: Epps-Singleton refuses both columns
        frame["score"] = frame["confidence"] = 0.5
    with pytest.raises(ValueError, match=r"column 'score': the Epps-Singleton test needs variability"):
        compare(reference, current, numerical=["score", "confidence"], methods="es", workers=2)


def test_an_unexpected_error_keeps_its_type_and_gets_the_column_in_a_note(monkeypatch):
    def broken(reference, current):
        raise RuntimeError("boom")

    monkeypatch.setitem(stattests.REGISTRY, "ks", stattests.StatTest("ks", (ColumnKind.NUMERICAL,), 0.05,
                                                                    lambda score, threshold: False, broken))
    reference, current = mixed(200, seed=35), mixed(200, seed=36)
    with pytest.raises(RuntimeError, match="boom") as raised:
        compare(reference, current, numerical=["score", "confidence"], methods="ks", workers=2)
    assert "while comparing column 'score'" in raised.value.__notes__


@pytest.mark.parametrize("chunk", [1, 7, stattests.STEP_CHUNK])
def test_wasserstein_distance_of_sorted_samples_equals_scipy(monkeypatch, chunk):
    monkeypatch.setattr(stattests, "STEP_CHUNK", chunk)
    rng = np.random.default_rng(37)
    samples = [(rng.normal(0, 1, 500), rng.normal(0.3, 2, 80)),  # continuous, sizes unequal
               (rng.integers(0, 5, 300).astype(float), rng.integers(0, 7, 301).astype(float)),  # ties across
               (np.full(50, 3.0), rng.choice([3.0, -1e300, 1e300], 60)),  # one value against extremes
               (np.array([1.0]), np.array([2.0])), (np.array([2.0, 2.0]), np.array([2.0]))]
    for u, v in samples:
        u, v = np.sort(u), np.sort(v)
        assert stattests.wasserstein_distance(u, v) == pytest.approx(stats.wasserstein_distance(u, v),
                                                                     rel=1e-12, abs=0)


@pytest.mark.parametrize("values", [[None, "a", "b", "a"], ["a", None, "a"], [None, None], [], [np.nan, "a", 1],
                                    ["a", [1, 2]], [[1, 2], "a", "a"], [pd.NA, "x", "x", "x", pd.NaT],
                                    [(1, 2), (3, 4)], [None, "x", "x", "y", None]])
def test_object_columns_get_evidentlys_kind(values):
    column = pd.Series(values, dtype=object)
    theirs = infer_column_type(column).value
    assert infer_kind_and_counts(column)[0].value == (theirs if theirs in ("num", "cat", "text") else "other")


@pytest.mark.parametrize("values", [["a", None, np.nan, "b", float("inf"), 1, 1.0, True, "a"], [True, False, True],
                                    [], [None, None], ["x"] * 5, [pd.NA, "y", pd.NaT, "y"], [True], [False]])
def test_categories_are_counted_as_value_counts_counts_them(values):
    for column in (pd.Series(values, dtype=object), pd.Series(values).convert_dtypes()):
        assert dict(category_counts(column)) == dict(column.value_counts(dropna=True).items())
    if all(isinstance(value, bool) for value in values):
        column = pd.Series(values, dtype=bool)
        assert dict(category_counts(column)) == dict(column.value_counts().items())
