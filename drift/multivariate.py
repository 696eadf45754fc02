"""Multivariate drift: whether the columns changed together, where each column alone may look the same.

As NannyML 0.13.1 computes it, one current window being one of its chunks:

- reconstruction (nannyml/drift/multivariate/data_reconstruction/calculator.py): missing values imputed (a
  numerical column's reference mean, a categorical column's most frequent reference value), categories encoded as
  their share of the reference (a category the reference never held as 0), every column standardized, and a PCA
  fitted on the reference keeping the components that explain 65% of its variance. A row's error is the distance
  between it and its reconstruction from those components; the window's value is the mean error, its sampling error
  the errors' standard deviation over sqrt(rows). The band is the mean +/- 3 standard deviations of the value over
  the reference cut into chunks of the window's rows (NannyML's SizeBasedChunker, the incomplete last chunk kept);
  a lower end at or below 0 is no lower end.
- classifier (nannyml/drift/multivariate/domain_classifier/calculator.py): a LightGBM classifier learns to tell the
  window's rows from the reference's; its ROC AUC over 5-fold stratified cross-validation is the value, 0.5 when it
  cannot tell them apart. The band is NannyML's constant 0.45 to 0.65.

Drift is a value outside its band. Both need rows: neither a PCA nor a classifier merges from per-replica
summaries, so a model fed profiles cannot use them (the config refuses them there).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fleetscope.drift import openblas_dot
from fleetscope.drift.columns import ColumnKind

METHODS = ("reconstruction", "classifier")
BAND_DEVIATIONS = 3.0  # nannyml.thresholds.StandardDeviationThreshold's multipliers
EXPLAINED_VARIANCE = 0.65  # DataReconstructionDriftCalculator's n_components
PCA_SEED = 16  # the random_state NannyML gives its PCA
# The reconstruction band's standard deviation over fewer complete reference chunks than this says little: with
# one it is 0. NannyML's default chunker cuts the reference into 10.
MIN_BAND_CHUNKS = 5
ERROR_BLOCK_ROWS = 65_536  # rows whose reconstruction errors are computed at once
CLASSIFIER_BAND = (0.45, 0.65)  # DomainClassifierCalculator's ConstantThreshold
CLASSIFIER_FOLDS = 5
# nannyml.drift.multivariate.domain_classifier.calculator.DEFAULT_LGBM_HYPERPARAMS, less its "silent" (which
# LightGBM ignores), quiet, and on one thread where NannyML takes every core: the service's evaluations share the host
# with ingest, and under load LightGBM's threads spin on each other (the tests show the same AUC either way)
CLASSIFIER_PARAMETERS: dict[str, Any] = {
    "boosting_type": "gbdt", "class_weight": None, "colsample_bytree": 1.0, "importance_type": "split",
    "learning_rate": 0.1, "max_depth": -1, "min_child_samples": 20, "min_child_weight": 0.001,
    "min_split_gain": 0.0, "n_estimators": 100, "n_jobs": 1, "num_leaves": 31, "objective": None,
    "random_state": 13, "reg_alpha": 0.0, "reg_lambda": 0.0, "subsample": 1.0, "subsample_for_bin": 200000,
    "subsample_freq": 0, "verbosity": -1}
# Rows of each side the classifier trains on at most: a larger window or reference is sampled uniformly (seeded),
# so that one evaluation's cost is bounded (about 5 s at 10^5 + 10^5 rows of 20 columns on one core).
MAX_CLASSIFIER_ROWS = 100_000


class MultivariateError(ValueError):
    """Data a multivariate method cannot be computed on; the message says which column or how many rows."""


@dataclass(frozen=True)
class MultivariateDrift:
    method: str  # reconstruction or classifier
    value: float  # the mean reconstruction error, or the classifier's ROC AUC
    lower: float | None  # the band; None where it has no lower end
    upper: float | None
    sampling_error: float | None = None  # reconstruction's: the errors' standard deviation / sqrt(rows)
    current_rows: int = 0
    reference_rows: int = 0

    @property
    def drifted(self) -> bool:
        return (self.lower is not None and self.value < self.lower) or (self.upper is not None and
                                                                        self.value > self.upper)


def usable_columns(kinds: dict[str, ColumnKind]) -> dict[str, ColumnKind]:
    """The columns the methods take: numerical and categorical ones (other kinds have no place in a PCA)."""
    return {name: kind for name, kind in kinds.items() if kind in (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL)}


def frame_of(data: pd.DataFrame, kinds: dict[str, ColumnKind]) -> pd.DataFrame:
    """The columns as the methods read them, in name order as NannyML sorts them: numerical as float64, categorical
    as objects with NaN where a value is missing."""
    missing = [name for name in kinds if name not in data.columns]
    if missing:
        raise MultivariateError(f"the data has no column {', '.join(map(repr, missing))}")
    columns = {}
    for name in sorted(kinds):
        if kinds[name] is ColumnKind.NUMERICAL:
            columns[name] = pd.to_numeric(data[name], errors="raise").astype(float).to_numpy()
        else:
            values = data[name].astype(object).to_numpy(copy=True)
            values[pd.isna(values)] = np.nan
            columns[name] = values
    return pd.DataFrame(columns)


def check_reference(reference: pd.DataFrame, kinds: dict[str, ColumnKind]) -> None:
    if not kinds:
        raise MultivariateError("no numerical or categorical column to compare")
    if len(reference) < 2:
        raise MultivariateError(f"the reference has {len(reference)} rows; multivariate drift needs at least 2")
    empty = [name for name in sorted(kinds) if reference[name].isna().all()]
    if empty:
        raise MultivariateError(f"column(s) {', '.join(map(repr, empty))} have no values in the reference: nothing "
                                "to impute or scale them by; leave them out of multivariate.columns")


class Reconstruction:
    """The PCA reconstruction fitted on a reference, with each reference row's error kept for the band."""

    def __init__(self, reference: pd.DataFrame, kinds: dict[str, ColumnKind]) -> None:
        kinds = usable_columns(kinds)
        reference = frame_of(reference, kinds)
        check_reference(reference, kinds)
        self.kinds = kinds
        self.reference_rows = len(reference)
        self._means = {name: float(reference[name].mean()) for name in kinds if kinds[name] is ColumnKind.NUMERICAL}
        self._modes: dict[str, object] = {}
        self._shares: dict[str, pd.Series] = {}
        for name in kinds:
            if kinds[name] is ColumnKind.CATEGORICAL:
                counts = reference[name].value_counts()
                # SimpleImputer(strategy="most_frequent"): the smallest of the most frequent values
                self._modes[name] = min(counts.index[counts == counts.max()])
                filled = reference[name].fillna(self._modes[name])
                self._shares[name] = filled.value_counts(normalize=True)
        encoded = self._encode(reference)
        del reference  # this copy of the reference's columns: encoded holds what is needed
        self._center = encoded.mean(axis=0)
        scale = encoded.std(axis=0)
        self._scale = np.where(scale == 0, 1.0, scale)  # StandardScaler leaves a constant column unscaled
        from sklearn.decomposition import PCA

        with _one_blas_thread():
            self._pca = PCA(n_components=EXPLAINED_VARIANCE, random_state=PCA_SEED).fit(self._standardized(encoded))
        self.reference_errors = self._errors(encoded)

    def _encode(self, data: pd.DataFrame) -> np.ndarray:
        columns = []
        for name in data.columns:
            if self.kinds[name] is ColumnKind.NUMERICAL:
                columns.append(data[name].fillna(self._means[name]).to_numpy(dtype=float))
            else:
                filled = data[name].fillna(self._modes[name])
                columns.append(filled.map(self._shares[name]).fillna(0.0).to_numpy(dtype=float))
        return np.column_stack(columns)

    def _standardized(self, encoded: np.ndarray) -> np.ndarray:
        return (encoded - self._center) / self._scale

    def _errors(self, encoded: np.ndarray) -> np.ndarray:
        """Each row's reconstruction error, a block of rows at a time so that the standardized and rebuilt copies
        stay small whatever the rows."""
        errors = np.empty(len(encoded))
        with _one_blas_thread():
            for start in range(0, len(encoded), ERROR_BLOCK_ROWS):
                standardized = self._standardized(encoded[start:start + ERROR_BLOCK_ROWS])
                rebuilt = self._pca.inverse_transform(self._pca.transform(standardized))
                errors[start:start + ERROR_BLOCK_ROWS] = np.linalg.norm(standardized - rebuilt, axis=1)
        return errors

    @property
    def components(self) -> int:
        return int(self._pca.n_components_)

    def band(self, chunk_rows: int) -> tuple[float | None, float | None]:
        """The band for a window of chunk_rows rows; MultivariateError where the reference is too short for it."""
        complete = self.reference_rows // chunk_rows
        if complete < MIN_BAND_CHUNKS:
            raise MultivariateError(
                f"the band needs at least {MIN_BAND_CHUNKS} reference chunks of the current window's {chunk_rows} "
                f"rows ({MIN_BAND_CHUNKS * chunk_rows} reference rows); the reference has {self.reference_rows}: "
                "give it more rows, or make the window shorter")
        starts = range(0, self.reference_rows, chunk_rows)
        values = np.array([self.reference_errors[start:start + chunk_rows].mean() for start in starts])
        middle, spread = float(np.nanmean(values)), float(np.nanstd(values))
        lower = middle - BAND_DEVIATIONS * spread
        return (lower if lower > 0 else None), middle + BAND_DEVIATIONS * spread

    def compare(self, current: pd.DataFrame) -> MultivariateDrift:
        current = frame_of(current, self.kinds)
        if len(current) == 0:
            raise MultivariateError("the current window has no rows")
        errors = self._errors(self._encode(current))
        # NannyML's standard deviation has ddof=1: NaN for a window of one row
        sampling_error = float(np.std(errors, ddof=1) / math.sqrt(len(errors))) if len(errors) > 1 else math.nan
        lower, upper = self.band(len(current))
        return MultivariateDrift("reconstruction", float(np.mean(errors)), lower, upper, sampling_error,
                                 len(current), self.reference_rows)


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread for these small products (rows x at most max_columns): on a busy host its threads spin on
    each other, and a PCA of 50,000 x 20 took 0.2 to 0.9 s on two threads against 0.003 to 0.1 s on one.

    numpy's OpenBLAS is held through openblas_dot, whose count compare()'s Wasserstein sums share: two limits that
    each saved and restored its thread count could interleave and leave it at one. The other BLAS libraries (SciPy's,
    which the PCA uses) through threadpoolctl."""
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]  # scikit-learn's dependency

    with openblas_dot.one_thread() as held:
        blas = ThreadpoolController().select(user_api="blas")
        with blas.select(filepath=[library.filepath for library in blas.lib_controllers
                                   if library.filepath != held]).limit(limits=1):
            yield


def classifier_auc(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, ColumnKind],
                   seed: int = 0) -> MultivariateDrift:
    """How well LightGBM tells the current window's rows from the reference's (NannyML's domain classifier)."""
    kinds = usable_columns(kinds)
    reference, current = frame_of(reference, kinds), frame_of(current, kinds)
    check_reference(reference, kinds)
    if min(len(current), len(reference)) < CLASSIFIER_FOLDS:
        raise MultivariateError(f"the classifier's {CLASSIFIER_FOLDS}-fold cross-validation needs at least "
                                f"{CLASSIFIER_FOLDS} rows in the current window and in the reference; they have "
                                f"{len(current)} and {len(reference)}")
    reference_rows, current_rows = len(reference), len(current)
    rng = np.random.default_rng(seed)
    reference, current = _at_most(reference, rng), _at_most(current, rng)
    features = _classifier_features(pd.concat([reference, current], ignore_index=True), kinds)
    is_current = np.concatenate([np.zeros(len(reference)), np.ones(len(current))])
    value = _cross_validated_auc(features, is_current, [name for name in sorted(kinds)
                                                        if kinds[name] is ColumnKind.CATEGORICAL])
    return MultivariateDrift("classifier", value, *CLASSIFIER_BAND, current_rows=current_rows,
                             reference_rows=reference_rows)


def _at_most(data: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    if len(data) <= MAX_CLASSIFIER_ROWS:
        return data
    return data.iloc[np.sort(rng.choice(len(data), MAX_CLASSIFIER_ROWS, replace=False))].reset_index(drop=True)


def _classifier_features(data: pd.DataFrame, kinds: dict[str, ColumnKind]) -> pd.DataFrame:
    """NannyML's preprocess_categorical_features: each categorical column as the rank of its value among the
    values seen (OrdinalEncoder, missing kept missing), categorical columns first, then the numerical."""
    categorical = [name for name in sorted(kinds) if kinds[name] is ColumnKind.CATEGORICAL]
    numerical = [name for name in sorted(kinds) if kinds[name] is ColumnKind.NUMERICAL]
    encoded = {}
    for name in categorical:
        values = data[name]
        known = values.notna().to_numpy()
        categories = np.unique(values[known].astype(str).to_numpy()) if known.any() else np.array([], dtype=str)
        codes = np.full(len(values), np.nan)
        codes[known] = np.searchsorted(categories, values[known].astype(str).to_numpy())
        encoded[name] = codes
    return pd.concat([pd.DataFrame(encoded, index=data.index), data[numerical]], axis=1)


def _cross_validated_auc(features: pd.DataFrame, is_current: np.ndarray, categorical: list[str]) -> float:
    from lightgbm import LGBMClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    predictions, truths = [], []
    for train, test in StratifiedKFold(n_splits=CLASSIFIER_FOLDS).split(features, is_current):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using categorical_feature in Dataset.")
            model = LGBMClassifier(**CLASSIFIER_PARAMETERS)
            model.fit(features.iloc[train], is_current[train], categorical_feature=categorical)
        predictions.append(model.predict_proba(features.iloc[test])[:, 1])
        truths.append(is_current[test])
    truth = np.concatenate(truths)
    if len(np.unique(truth)) < 2:
        return 0.5
    return float(roc_auc_score(truth, np.concatenate(predictions)))
