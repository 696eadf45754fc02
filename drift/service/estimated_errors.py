"""A regression model's error over its quality window estimated before the window's labels arrive (NannyML's DLE,
fleetscope.drift.regression_estimation), learned from the labelled outputs before the window.

The store keeps an output's segment, prediction and actual value, not the model's inputs, so the service's DLE
learns the error from the prediction alone: how the model errs at each predicted value. (DirectLossEstimator takes
features too, where the caller has them.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fleetscope.drift.performance_estimation import Estimate
from fleetscope.drift.regression_estimation import MIN_ROWS, DirectLossEstimator, EstimationError
from fleetscope.drift.service.config import ModelConfig
from fleetscope.drift.service.outcomes import WindowQuality

PREDICTION, ACTUAL = "prediction", "actual"


def estimate(store, config: ModelConfig, window: WindowQuality) -> dict[str, tuple[float, float]]:
    """Puts DLE's estimated mae, mse and rmse with their bands in window.estimated; returns their thresholds
    (lower, upper) by measure, empty where there is nothing to estimate (window.message says why)."""
    quality = config.quality
    assert quality is not None and not quality.classification
    # newest first from the store: put back in the order they arrived, which the thresholds' chunks follow
    labelled = [(prediction, actual) for prediction, _, actual in
                reversed(store.labelled_before(config.name, window.since, quality.calibration_rows))
                if prediction is not None and actual is not None]
    window.calibration_rows = len(labelled)
    predictions = [row[1] for row in store.outcomes_between(config.name, window.since, window.until)
                   if row[1] is not None]
    if len(labelled) < MIN_ROWS:
        _say(window, f"{len(labelled)} labelled outputs before the window to learn the error from; estimates need "
                     f"{MIN_ROWS}")
        return {}
    if not predictions:
        return {}
    try:
        estimator = DirectLossEstimator(pd.DataFrame(np.array(labelled, dtype=float), columns=[PREDICTION, ACTUAL]),
                                        {}, PREDICTION, ACTUAL)
        found = estimator.estimate(pd.DataFrame({PREDICTION: np.array(predictions, dtype=float)}))
    except EstimationError as error:
        _say(window, str(error))
        return {}
    window.estimated = {measure: Estimate(value.value, value.lower, value.upper) for measure, value in found.items()}
    return {measure: (value.threshold_lower, value.threshold_upper) for measure, value in found.items()}


def _say(window: WindowQuality, reason: str) -> None:
    window.message = f"{window.message}; {reason}" if window.message else reason
