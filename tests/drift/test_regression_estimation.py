"""DLE's estimated MAE, MSE and RMSE, their band and thresholds equal NannyML 0.13.1's DLE run in this process on
the same rows (one window being one NannyML chunk); the band holds the realized error; bad data gets a clear error."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import model_quality
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.regression_estimation import MEASURES, DirectLossEstimator, EstimationError

FEATURES = {"size": ColumnKind.NUMERICAL, "age": ColumnKind.NUMERICAL, "district": ColumnKind.CATEGORICAL}


def _rows(rng: np.random.Generator, rows: int, noisy_share: float = 0.3) -> pd.DataFrame:
    """A price model whose error grows with size and in one district: what DLE can learn."""
    size = rng.uniform(20, 200, rows)
    age = rng.uniform(0, 80, rows)
    district = rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    actual = 3 * size - 0.5 * age + rng.normal(0, 5, rows)
    noise = 1 + size / 50 + np.where(district == "east", 10, 0) + np.where(rng.random(rows) < noisy_share, 5, 0)
    predicted = actual + rng.normal(0, 1, rows) * noise
    frame = pd.DataFrame({"size": size, "age": age, "district": district, "prediction": predicted,
                          "actual": actual})
    frame.loc[rng.random(rows) < 0.02, "district"] = np.nan
    return frame


def _nannyml(reference: pd.DataFrame, window: pd.DataFrame) -> pd.DataFrame:
    import nannyml

    logging.getLogger("nannyml").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = nannyml.DLE(feature_column_names=list(FEATURES), y_pred="prediction", y_true="actual",
                                metrics=list(MEASURES), chunk_size=len(window))
        estimator.fit(reference)
        data = estimator.estimate(window.drop(columns="actual")).filter(period="analysis").to_df()
    assert len(data) == 1
    return data


@pytest.mark.parametrize("seed, reference_rows, window_rows, noisy_share", [
    (1, 5000, 1000, 0.3), (2, 8000, 700, 0.6), (3, 3000, 3000, 0.1)])
def test_estimates_equal_nannymls(seed, reference_rows, window_rows, noisy_share):
    rng = np.random.default_rng(seed)
    reference, window = _rows(rng, reference_rows), _rows(rng, window_rows, noisy_share)
    window.loc[0, "district"] = "harbour"  # a district the labelled rows never held
    expected = _nannyml(reference, window)
    found = DirectLossEstimator(reference, FEATURES, "prediction", "actual").estimate(window.drop(columns="actual"))
    for measure in MEASURES:
        row = expected[measure].iloc[0]
        estimate = found[measure]
        assert estimate.value == pytest.approx(row["value"], rel=1e-9), measure
        assert estimate.sampling_error == pytest.approx(row["sampling_error"], rel=1e-9), measure
        assert estimate.upper == pytest.approx(row["upper_confidence_boundary"], rel=1e-9), measure
        assert estimate.lower == pytest.approx(row["lower_confidence_boundary"], rel=1e-9), measure
        assert estimate.threshold_upper == pytest.approx(row["upper_threshold"], rel=1e-9), measure
        assert estimate.threshold_lower == pytest.approx(row["lower_threshold"], rel=1e-9, abs=1e-12), measure
        assert estimate.alert == bool(row["alert"]), measure


def test_a_noisier_window_is_estimated_worse_and_past_the_thresholds():
    rng = np.random.default_rng(4)
    estimator = DirectLossEstimator(_rows(rng, 6000, 0.2), FEATURES, "prediction", "actual")
    calm, noisy = _rows(rng, 1000, 0.2), _rows(rng, 1000, 0.2)
    noisy["size"] = rng.uniform(180, 200, 1000)  # the large flats the model errs on most
    noisy["prediction"] = noisy["actual"] + rng.normal(0, 1, 1000) * (1 + noisy["size"] / 50 + 5)
    calm_estimate = estimator.estimate(calm)["mae"]
    noisy_estimate = estimator.estimate(noisy)["mae"]
    assert noisy_estimate.value > calm_estimate.value and noisy_estimate.alert and not calm_estimate.alert
    realized = model_quality.regression(calm["actual"], calm["prediction"]).overall
    assert calm_estimate.lower - 0.5 <= realized["mae"] <= calm_estimate.upper + 0.5


def test_prediction_alone_is_enough():
    rng = np.random.default_rng(5)
    rows = _rows(rng, 2000)
    found = DirectLossEstimator(rows, {}, "prediction", "actual").estimate(rows)
    assert set(found) == set(MEASURES) and found["rmse"].value ** 2 == pytest.approx(found["mse"].value)


def test_bad_data_gets_a_clear_error():
    rows = _rows(np.random.default_rng(6), 100)
    with pytest.raises(EstimationError, match="no column 'floor'"):
        DirectLossEstimator(rows, {"floor": ColumnKind.NUMERICAL}, "prediction", "actual")
    rows.loc[5:, "actual"] = np.nan
    with pytest.raises(EstimationError, match="5 labelled rows .* at least 20"):
        DirectLossEstimator(rows, FEATURES, "prediction", "actual")
    estimator = DirectLossEstimator(_rows(np.random.default_rng(7), 100), FEATURES, "prediction", "actual")
    with pytest.raises(EstimationError, match="no row of the window has a prediction"):
        estimator.estimate(rows.assign(prediction=np.nan))
