"""Multivariate drift equals NannyML 0.13.1's DataReconstructionDriftCalculator and DomainClassifierCalculator,
run in this process on the same rows (one current window being one NannyML chunk); bad data gets a clear error."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import multivariate
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.multivariate import MultivariateError, Reconstruction, classifier_auc

NUMERICAL, CATEGORICAL = ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL


def _rows(rng: np.random.Generator, rows: int, shift: float = 0.0, correlated: bool = True,
          missing: float = 0.0) -> pd.DataFrame:
    """Four correlated numerical columns and two categorical ones; `correlated=False` breaks the correlation
    while keeping each column's own distribution (the drift no univariate test sees)."""
    base = rng.normal(0, 1, rows)
    other = base if correlated else rng.normal(0, 1, rows)
    frame = pd.DataFrame({
        "a": base + rng.normal(0, 0.3, rows) + shift, "b": 2 * other + rng.normal(0, 0.3, rows),
        "c": -base + rng.normal(0, 0.5, rows), "d": rng.exponential(1, rows),
        "region": rng.choice(["eu", "us", "ap"], rows, p=[0.5, 0.3, 0.2]).astype(object),
        "tier": np.where(base > 0, "gold", "basic").astype(object)})
    if missing:
        for name in ("a", "region"):
            frame.loc[rng.random(rows) < missing, name] = np.nan
    return frame


KINDS = {"a": NUMERICAL, "b": NUMERICAL, "c": NUMERICAL, "d": NUMERICAL, "region": CATEGORICAL, "tier": CATEGORICAL}


def _nannyml_reconstruction(reference: pd.DataFrame, current: pd.DataFrame) -> pd.Series:
    import nannyml

    logging.getLogger("nannyml").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calculator = nannyml.DataReconstructionDriftCalculator(column_names=list(KINDS), chunk_size=len(current))
        calculator.fit(reference)
        data = calculator.calculate(current).filter(period="analysis").to_df()
    assert len(data) == 1
    return data["reconstruction_error"].iloc[0]


@pytest.mark.parametrize("seed, reference_rows, current_rows, shift, correlated, missing", [
    (1, 5000, 500, 0.0, True, 0.0), (2, 5000, 500, 0.0, False, 0.0), (3, 6100, 700, 0.4, True, 0.05),
    (4, 20000, 2000, 0.0, False, 0.1), (5, 3000, 29, 0.0, True, 0.0),
    (6, 70000, 5000, 0.1, True, 0.01)])  # errors computed over more than one block of rows
def test_reconstruction_equals_nannymls(seed, reference_rows, current_rows, shift, correlated, missing):
    rng = np.random.default_rng(seed)
    reference = _rows(rng, reference_rows, missing=missing)
    current = _rows(rng, current_rows, shift, correlated, missing)
    current.loc[0, "region"] = "mars"  # a category the reference never held: encoded 0 by both
    expected = _nannyml_reconstruction(reference, current)
    found = Reconstruction(reference, KINDS).compare(current)
    assert found.value == pytest.approx(expected["value"], rel=1e-9)
    assert found.sampling_error == pytest.approx(expected["sampling_error"], rel=1e-9)
    assert found.upper == pytest.approx(expected["upper_threshold"], rel=1e-9)
    if pd.isna(expected["lower_threshold"]):
        assert found.lower is None
    else:
        assert found.lower == pytest.approx(expected["lower_threshold"], rel=1e-9)
    assert found.drifted == bool(expected["alert"])
    if not correlated:
        assert found.drifted  # the broken correlation is found


def _nannyml_classifier(reference: pd.DataFrame, current: pd.DataFrame, threads: int | None) -> float:
    """NannyML's AUC, with its default LightGBM parameters (on `threads` threads, None: its own, every core)."""
    import nannyml
    from nannyml.drift.multivariate.domain_classifier.calculator import DEFAULT_LGBM_HYPERPARAMS

    logging.getLogger("nannyml").setLevel(logging.ERROR)
    parameters = {**DEFAULT_LGBM_HYPERPARAMS, **({"n_jobs": threads} if threads else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calculator = nannyml.DomainClassifierCalculator(feature_column_names=list(KINDS), chunk_size=len(current),
                                                        hyperparameters=parameters)
        calculator.fit(reference)
        data = calculator.calculate(current).filter(period="analysis").to_df()
    assert len(data) == 1
    return float(data[("domain_classifier_auroc", "value")].iloc[0])


@pytest.mark.parametrize("seed, reference_rows, current_rows, correlated, missing, threads", [
    (1, 3000, 600, True, 0.0, None), (2, 3000, 600, False, 0.05, 1), (3, 2000, 1000, True, 0.1, 1)])
def test_classifier_auc_equals_nannymls(seed, reference_rows, current_rows, correlated, missing, threads):
    rng = np.random.default_rng(seed)
    reference = _rows(rng, reference_rows, missing=missing)
    current = _rows(rng, current_rows, correlated=correlated, missing=missing)
    expected = _nannyml_classifier(reference, current, threads)
    found = classifier_auc(reference, current, KINDS)
    assert found.value == pytest.approx(expected, abs=1e-12)
    assert (found.lower, found.upper) == multivariate.CLASSIFIER_BAND
    assert found.drifted == (not 0.45 <= expected <= 0.65)
    if not correlated:
        assert found.drifted


def test_classifier_samples_past_its_row_cap(monkeypatch):
    monkeypatch.setattr(multivariate, "MAX_CLASSIFIER_ROWS", 500)
    rng = np.random.default_rng(7)
    found = classifier_auc(_rows(rng, 3000), _rows(rng, 2000, shift=1.0), KINDS)
    assert found.reference_rows == 3000 and found.current_rows == 2000 and found.value > 0.65


def test_too_few_reference_rows_for_the_band_is_said():
    rng = np.random.default_rng(8)
    reconstruction = Reconstruction(_rows(rng, 400), KINDS)
    with pytest.raises(MultivariateError, match=r"at least 5 reference chunks .* 100 rows \(500 reference rows\); "
                                                r"the reference has 400"):
        reconstruction.compare(_rows(rng, 100))


def test_a_column_with_no_reference_values_is_named():
    reference = _rows(np.random.default_rng(9), 1000)
    reference["b"] = np.nan
    for compute in (lambda: Reconstruction(reference, KINDS), lambda: classifier_auc(reference, reference, KINDS)):
        with pytest.raises(MultivariateError, match="'b' have no values in the reference"):
            compute()


def test_missing_columns_and_tiny_windows_are_refused():
    reference = _rows(np.random.default_rng(10), 1000)
    with pytest.raises(MultivariateError, match="no column 'tier'"):
        Reconstruction(reference.drop(columns="tier"), KINDS)
    with pytest.raises(MultivariateError, match="at least 5 rows in the current window"):
        classifier_auc(reference, reference.head(3), KINDS)
    with pytest.raises(MultivariateError, match="no numerical or categorical column"):
        Reconstruction(reference, {})
