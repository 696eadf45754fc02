"""compare() in threads: the same result as in one thread, equal to Evidently's, errors named by column;
and the pieces the threaded path relies on (Wasserstein summed as SciPy sums it, OpenBLAS's dot product
without its threads, kinds inferred without NaN passes)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import threadpoolctl
from evidently.core.datasets import infer_column_type
from scipy import stats

from fleetscope.drift import ColumnKind, PreparedReference, compare, multivariate, openblas_dot, stattests, wasserstein
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


def test_wasserstein_distance_of_sorted_samples_is_scipys_to_the_bit():
    rng = np.random.default_rng(37)
    samples = [(rng.normal(0, 1, 500), rng.normal(0.3, 2, 80)),  # continuous, sizes unequal
               (rng.integers(0, 5, 300).astype(float), rng.integers(0, 7, 301).astype(float)),  # ties across
               (np.full(50, 3.0), rng.choice([3.0, -1e300, 1e300], 60)),  # one value against extremes
               (np.array([1.0]), np.array([2.0])), (np.array([2.0, 2.0]), np.array([2.0])),
               (rng.lognormal(0, 2, 40_000), rng.lognormal(0.1, 2, 25_001)),  # past OpenBLAS's one-thread limit
               (np.round(rng.normal(0, 1, 120_000), 2), np.round(rng.normal(0, 1, 90_000), 2))]  # ties, long
    for u, v in samples:
        u, v = np.sort(u), np.sort(v)
        assert wasserstein.wasserstein_distance(u, v) == stats.wasserstein_distance(u, v)
        # The thread's buffers, reused by a shorter pair and then a longer one, change nothing.
        assert wasserstein.wasserstein_distance(u[:7], v[:5]) == stats.wasserstein_distance(u[:7], v[:5])
        assert wasserstein.wasserstein_distance(u, v) == stats.wasserstein_distance(u, v)
    wasserstein.release()


def test_dot_products_in_many_threads_keep_numpys_bits_and_its_thread_count():
    rng = np.random.default_rng(38)
    pairs = [(rng.random(size) * np.exp(rng.normal(0, 8, size)), rng.random(size))
             for size in (9_999, 10_001, 77_777, 300_001)]
    expected = [float(np.vecdot(x, y)) for x, y in pairs]
    threads_before = threadpool_info_threads()

    def products(_: int) -> list[float]:
        return [openblas_dot.vecdot(x, y) for _ in range(20) for x, y in pairs]

    with ThreadPoolExecutor(4) as pool:
        for result in pool.map(products, range(8)):
            assert result == expected * 20
    assert threadpool_info_threads() == threads_before
    assert [float(np.vecdot(x, y)) for x, y in pairs] == expected


def test_dot_products_fall_back_to_numpy_where_the_split_is_not_openblass(monkeypatch):
    monkeypatch.setattr(openblas_dot, "_sum_of_slices", lambda x, y, threads: float(np.sum(x * y)))
    assert openblas_dot._found.__wrapped__() is None  # the check on first use finds the sums differ
    monkeypatch.setattr(openblas_dot, "_numpy_openblas", lambda: None)
    x, y = np.random.default_rng(39).random((2, 50_000))
    assert openblas_dot.vecdot(x, y) == float(np.vecdot(x, y))


def test_a_blas_limit_interleaved_with_a_sum_leaves_the_thread_counts_as_they_were():
    # The multivariate methods hold BLAS at one thread while they fit; a Wasserstein sum in another thread may hold
    # numpy's OpenBLAS at one thread when such a limit comes in, and let go before it leaves.
    before = threadpool_info_threads()
    if max(before) == 1:
        pytest.skip("OpenBLAS runs one thread here: nothing to restore")
    summing = openblas_dot.one_thread()
    assert summing.__enter__() is not None
    limited = multivariate._one_blas_thread()
    limited.__enter__()
    summing.__exit__(None, None, None)
    assert set(threadpool_info_threads()) == {1}
    limited.__exit__(None, None, None)
    assert threadpool_info_threads() == before


def threadpool_info_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


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


@pytest.mark.parametrize("column", [pd.Series([False, True, True]), pd.Series([True, False]),
                                    pd.Series(pd.Categorical(["b", None, "c", "a", "b"], categories=["a", "b", "c"])),
                                    pd.Series([3, 1, 3, 2]), pd.Series([2.5, np.nan, 1.0, 2.5]),
                                    pd.Series(["y", None, "x", "y"], dtype="string"),
                                    pd.Series(["y", None, "x", "y"], dtype=object)])
def test_categories_are_counted_in_the_order_they_first_appear(column):
    # Evidently's sets of categories are built in this order, and the order of its sums follows theirs.
    assert list(dict(category_counts(column))) == list(column.dropna().unique())
