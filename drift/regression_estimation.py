"""A regression model's error estimated before labels arrive: direct loss estimation (DLE).

As NannyML 0.13.1 does it (nannyml/performance_estimation/direct_loss_estimation/dle.py and metrics.py): on labelled
rows, LightGBM regressors (default parameters) learn each row's absolute error and squared error from its features
and its prediction; a window's estimated MAE is the mean of the predicted absolute errors, its MSE the mean of the
predicted squared errors and its RMSE that mean's square root (predictions below 0 taken as 0). Categorical features
are encoded as the rank of their value among the labelled rows' values (a value they never held as 0, a missing one as
its own value), as NannyML's OrdinalEncoder plus one does.

The band is the estimate +/- 3 sampling errors, NannyML's: the standard deviation of the labelled rows' error over
sqrt(rows) (for RMSE the delta method's sqrt(sd(squared error)^2 / (4 rows mean(squared error)))), not below 0. The
thresholds are the mean +/- 3 standard deviations of the realized measure over the labelled rows cut into chunks of
the window's rows; an estimate past them is what NannyML alerts on. Like CBPE, DLE holds while what links the features
to the error holds (no concept drift); realized quality, once labels arrive, checks that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fleetscope.drift.columns import ColumnKind

MEASURES = ("mae", "mse", "rmse")
BAND_DEVIATIONS = 3.0  # nannyml.sampling_error.SAMPLING_ERROR_RANGE, and its StandardDeviationThreshold's
MIN_ROWS = 20  # labelled rows to learn from: LightGBM's default min_child_samples is 20, fewer learn nothing
MISSING = "NML_missing_value"  # what NannyML's imputer puts in a categorical feature's missing cells


class EstimationError(ValueError):
    """Data DLE cannot learn from or estimate on; the message says what is missing."""


@dataclass(frozen=True)
class RegressionEstimate:
    value: float
    lower: float  # the band: value -/+ 3 sampling errors, not below 0
    upper: float
    sampling_error: float
    threshold_lower: float  # the realized measure's range over chunks of the labelled rows
    threshold_upper: float

    @property
    def alert(self) -> bool:
        return self.value < self.threshold_lower or self.value > self.threshold_upper


class DirectLossEstimator:
    """DLE fitted on labelled rows: `features` (name: kind), the `prediction` column and the `actual` column."""

    def __init__(self, labelled: pd.DataFrame, features: dict[str, ColumnKind], prediction: str, actual: str) -> None:
        for name in (*features, prediction, actual):
            if name not in labelled.columns:
                raise EstimationError(f"the labelled rows have no column {name!r}")
        known = labelled[prediction].notna() & labelled[actual].notna()
        labelled = labelled[known.to_numpy()].reset_index(drop=True)
        if len(labelled) < MIN_ROWS:
            raise EstimationError(f"{len(labelled)} labelled rows with a prediction and an actual value; DLE needs "
                                  f"at least {MIN_ROWS} to learn the error from")
        self.features, self.prediction = dict(features), prediction
        self.rows = len(labelled)
        self._categories = {name: np.unique(labelled[name].astype(object).where(labelled[name].notna(), MISSING)
                                            .astype(str).to_numpy())
                            for name in self._categorical}
        actual_values = labelled[actual].to_numpy(dtype=float)
        predicted = labelled[prediction].to_numpy(dtype=float)
        absolute, squared = np.abs(actual_values - predicted), (actual_values - predicted) ** 2
        self._absolute_deviation = float(np.std(absolute))
        self._squared_deviation, self._squared_mean = float(np.std(squared)), float(np.mean(squared))
        self._labelled_errors = {"mae": absolute, "mse": squared}
        inputs = self._inputs(labelled)
        self._models = {"mae": _regressor(inputs, absolute, self._categorical),
                        "mse": _regressor(inputs, squared, self._categorical)}

    @property
    def _categorical(self) -> list[str]:
        return sorted(name for name, kind in self.features.items() if kind is ColumnKind.CATEGORICAL)

    def _inputs(self, data: pd.DataFrame) -> pd.DataFrame:
        columns = {}
        for name in self.features:
            if self.features[name] is ColumnKind.CATEGORICAL:
                text = data[name].astype(object).where(data[name].notna(), MISSING).astype(str).to_numpy()
                categories = self._categories[name]
                position = np.searchsorted(categories, text)
                found = (position < len(categories)) & (categories[np.minimum(position, len(categories) - 1)] == text)
                columns[name] = np.where(found, position + 1.0, 0.0)  # unknown: OrdinalEncoder's -1, plus one
            else:
                columns[name] = data[name].to_numpy(dtype=float)
        columns[self.prediction] = data[self.prediction].to_numpy(dtype=float)
        return pd.DataFrame(columns)

    def estimate(self, window: pd.DataFrame) -> dict[str, RegressionEstimate]:
        """Estimated MAE, MSE and RMSE of a window of rows with features and predictions (no labels needed)."""
        window = window[window[self.prediction].notna().to_numpy()].reset_index(drop=True)
        if len(window) == 0:
            raise EstimationError("no row of the window has a prediction to estimate the error of")
        inputs = self._inputs(window)
        absolute = np.maximum(0.0, self._models["mae"].predict(inputs))
        squared = np.maximum(0.0, self._models["mse"].predict(inputs))
        rows = len(window)
        mse = float(np.mean(squared))
        sampling = {"mae": self._absolute_deviation / math.sqrt(rows),
                    "mse": self._squared_deviation / math.sqrt(rows),
                    "rmse": (math.sqrt(self._squared_deviation ** 2 / (4 * rows * self._squared_mean))
                             if self._squared_mean > 0 else 0.0)}
        values = {"mae": float(np.mean(absolute)), "mse": mse, "rmse": math.sqrt(mse)}
        thresholds = self._thresholds(rows)
        return {measure: RegressionEstimate(
            values[measure], max(0.0, values[measure] - BAND_DEVIATIONS * sampling[measure]),
            values[measure] + BAND_DEVIATIONS * sampling[measure], sampling[measure], *thresholds[measure])
            for measure in MEASURES}

    def _thresholds(self, chunk_rows: int) -> dict[str, tuple[float, float]]:
        starts = range(0, self.rows, chunk_rows)
        realized = {
            "mae": np.array([self._labelled_errors["mae"][start:start + chunk_rows].mean() for start in starts]),
            "mse": np.array([self._labelled_errors["mse"][start:start + chunk_rows].mean() for start in starts])}
        realized["rmse"] = np.sqrt(realized["mse"])
        found = {}
        for measure, values in realized.items():
            middle, spread = float(np.nanmean(values)), float(np.nanstd(values))
            lower = middle - BAND_DEVIATIONS * spread
            found[measure] = (max(0.0, lower), middle + BAND_DEVIATIONS * spread)  # NannyML's limit: 0
        return found


def _regressor(inputs: pd.DataFrame, target: np.ndarray, categorical: list[str]):
    from lightgbm import LGBMRegressor

    # one thread: the service's evaluations share the host with ingest (the result does not depend on the count)
    return LGBMRegressor(verbosity=-1, n_jobs=1).fit(inputs, target, categorical_feature=categorical)
