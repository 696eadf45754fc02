"""A regression model's error over its quality window estimated before the window's labels arrive (NannyML's DLE,
fleetscope.drift.regression_estimation), learned from the labelled outputs before the window.

As NannyML's, the error is learned from the model's features and its prediction: the features are the model's
numerical columns other than the prediction and the confidence, read back from the stored outputs by each output's
row number (the store keeps it with the request id). An output whose row is no longer stored (retention) or that
came pre-joined with its label has no features: NaN, which LightGBM takes as missing, as NannyML's DLE passes it.
Memory: the labelled outputs learned from (quality.calibration_rows, 10,000 by default) and the window's outputs
with a request id, (features + 2) x 8 bytes each, and one stored batch at a time while their features are read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.performance_estimation import Estimate
from fleetscope.drift.regression_estimation import MIN_ROWS, DirectLossEstimator, EstimationError
from fleetscope.drift.service.config import ModelConfig
from fleetscope.drift.service.outcomes import WindowQuality

ACTUAL = "actual value"  # not a column name a model can have (no spaces): it cannot meet a feature's


def features(config: ModelConfig) -> list[str]:
    """The columns DLE learns the error from besides the prediction: the model's numerical columns but the
    prediction and the confidence."""
    quality = config.quality
    assert quality is not None
    return [name for name, kind in config.columns.items()
            if kind is ColumnKind.NUMERICAL and name not in (quality.prediction, quality.confidence)]


def estimate(store, config: ModelConfig, window: WindowQuality) -> dict[str, tuple[float, float]]:
    """Puts DLE's estimated mae, mse and rmse with their bands in window.estimated; returns their thresholds
    (lower, upper) by measure, empty where there is nothing to estimate (window.message says why)."""
    quality = config.quality
    assert quality is not None and not quality.classification
    # newest first from the store: put back in the order they arrived, which the thresholds' chunks follow
    labelled = [row for row in reversed(store.labelled_outputs_before(config.name, window.since,
                                                                      quality.calibration_rows))
                if row[1] is not None and row[2] is not None]
    window.calibration_rows = len(labelled)
    if len(labelled) < MIN_ROWS:
        _say(window, f"{len(labelled)} labelled outputs before the window to learn the error from; estimates need "
                     f"{MIN_ROWS}")
        return {}
    current = [row for row in store.output_rows_between(config.name, window.since, window.until)
               if row[1] is not None]
    if not current:
        return {}
    names, prediction = features(config), quality.prediction
    reference = pd.DataFrame({**store.numbers_at(config.name, [row[0] for row in labelled], names),
                              prediction: np.array([row[1] for row in labelled], dtype=float),
                              ACTUAL: np.array([row[2] for row in labelled], dtype=float)})
    analysed = pd.DataFrame({**store.numbers_at(config.name, [row[0] for row in current], names),
                             prediction: np.array([row[1] for row in current], dtype=float)})
    try:
        estimator = DirectLossEstimator(reference, dict.fromkeys(names, ColumnKind.NUMERICAL), prediction, ACTUAL)
        found = estimator.estimate(analysed)
    except EstimationError as error:
        _say(window, str(error))
        return {}
    window.estimated = {measure: Estimate(value.value, value.lower, value.upper) for measure, value in found.items()}
    return {measure: (value.threshold_lower, value.threshold_upper) for measure, value in found.items()}


def _say(window: WindowQuality, reason: str) -> None:
    window.message = f"{window.message}; {reason}" if window.message else reason
