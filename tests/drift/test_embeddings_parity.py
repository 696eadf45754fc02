"""Embedding drift against Evidently 0.7.23's own embedding drift methods (evidently/legacy/metrics/data_drift/
embedding_drift_methods.py), run here on the same vectors.

Tolerances: model, model_bootstrap and ratio make the same computation on the same numbers (the same seeds, the
same scikit-learn classifier and split) and are held to 1e-12. distance averages the components in another order
than pandas' DataFrame.mean (1e-12 relative). mmd sums its kernel in blocks of rows where Evidently builds it whole,
and its statistic is a difference of sums of up to (m + n)^2 terms near 1: held to 1e-9 absolute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import compare, embeddings

SHAPES = [(60, 50, 0.0), (300, 250, 0.15), (999, 400, 0.0), (1000, 800, 0.1), (1500, 1200, 0.4)]


def vectors(rows: int, dimensions: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (rows, dimensions)) @ np.random.default_rng(99).normal(0, 0.3, (dimensions, dimensions))
    return base + shift * np.linspace(1, 0, dimensions)


def evidently_method(name: str):
    from evidently.legacy.metrics.data_drift import embedding_drift_methods as methods

    made = {"model": methods.model(), "model_bootstrap": methods.model(bootstrap=True), "ratio": methods.ratio(),
            "distance": methods.distance(), "mmd": methods.mmd(),
            **{f"distance_{metric}": methods.distance(dist=metric) for metric in embeddings.DISTANCES}}
    return made[name]


def evidently_score(name: str, reference: np.ndarray, current: np.ndarray) -> tuple[float, bool]:
    names = [f"e{i}" for i in range(reference.shape[1])]
    score, drifted, _ = evidently_method(name)(pd.DataFrame(current, columns=names),
                                               pd.DataFrame(reference, columns=names))
    return float(score), bool(drifted)


TOLERANCE = {"model": {"rel": 1e-12}, "model_bootstrap": {"rel": 1e-12}, "ratio": {"rel": 1e-12},
             "mmd": {"abs": 1e-9},
             **{name: {"rel": 1e-12} for name in embeddings.REGISTRY if name.startswith("distance")}}


@pytest.mark.parametrize("method", sorted(embeddings.REGISTRY))
@pytest.mark.parametrize(("reference_rows", "current_rows", "shift"), SHAPES)
def test_each_method_scores_as_evidently(method, reference_rows, current_rows, shift):
    reference = vectors(reference_rows, 12, seed=1)
    current = vectors(current_rows, 12, seed=2, shift=shift)
    theirs, drifted = evidently_score(method, reference, current)
    chosen, ours = embeddings.score(method, reference, current, None)
    assert chosen.name == method
    assert ours.score == pytest.approx(theirs, **TOLERANCE[method])
    assert ours.drifted == drifted


@pytest.mark.parametrize(("reference_rows", "expected"), [(999, "model_bootstrap"), (1000, "model")])
def test_the_default_is_evidentlys_embeddings_drift_metric_choice(reference_rows, expected):
    """EmbeddingsDriftMetric.calculate: model(bootstrap=reference rows < 1000), run through Evidently's Report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    reference, current = vectors(reference_rows, 6, seed=3), vectors(700, 6, seed=4, shift=0.2)
    names = [f"e{i}" for i in range(6)]
    definition = DataDefinition(numerical_columns=names, embeddings={"vec": names})
    report = Report([EmbeddingsDrift(embeddings_name="vec")])
    snapshot = report.run(Dataset.from_pandas(pd.DataFrame(current, columns=names), data_definition=definition),
                          Dataset.from_pandas(pd.DataFrame(reference, columns=names), data_definition=definition))
    theirs = next(iter(snapshot.dict()["metrics"]))["value"]
    frame = lambda matrix: pd.DataFrame({"vec": list(matrix)})  # noqa: E731
    ours = compare(frame(reference), frame(current), embeddings=["vec"]).columns["vec"]
    assert ours.method == expected
    assert ours.score == pytest.approx(theirs, rel=1e-12)


def test_drift_is_found_where_there_is_drift_and_not_where_there_is_none():
    reference = vectors(1200, 16, seed=5)
    for method in embeddings.REGISTRY:
        same = embeddings.score(method, reference, vectors(1000, 16, seed=6), None)[1]
        moved = embeddings.score(method, reference, vectors(1000, 16, seed=7, shift=2.0), None)[1]
        assert moved.drifted, method
        # ratio's and distance's fixed thresholds (a Wasserstein of 0.1 per component, 0.2 between means) are
        # within sampling noise of windows this small; the classifier and the kernel test are not fooled.
        if method in ("model", "model_bootstrap", "mmd"):
            assert not same.drifted, method


def test_mmd_in_blocks_equals_the_whole_kernel(monkeypatch):
    reference, current = vectors(400, 8, seed=8), vectors(300, 8, seed=9, shift=0.3)
    whole = embeddings.score("mmd", reference, current, None)[1].score
    monkeypatch.setattr(embeddings, "MMD_BLOCK_BYTES", 8 * 700 * 7)  # blocks of 7 rows, cutting across the sides
    assert embeddings.score("mmd", reference, current, None)[1].score == pytest.approx(whole, abs=1e-12)


def test_vectors_that_cannot_be_compared_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="12 components and the current window's 5"):
        embeddings.score("distance", vectors(10, 12, seed=1), vectors(10, 5, seed=1), None)
    with pytest.raises(ValueError, match="is not one of"):
        embeddings.get("umap")
    with pytest.raises(ValueError, match="different lengths"):
        embeddings.matrix(pd.Series([[1.0, 2.0], [1.0]]))
    with pytest.raises(ValueError, match="NaN or an infinity"):
        embeddings.matrix(pd.Series([[1.0, 2.0], [1.0, float("inf")]]))
    assert embeddings.matrix(pd.Series([[1.0, 2.0], None, np.array([3.0, 4.0])])).tolist() == [[1, 2], [3, 4]]
