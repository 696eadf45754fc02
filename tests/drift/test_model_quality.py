"""Realized model quality equals scikit-learn's on the same rows; CBPE's estimates equal NannyML's; the band
holds the realized value once labels arrive."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from fleetscope.drift import model_quality
from fleetscope.drift.performance_estimation import Calibration, estimate_accuracy, estimate_binary


def _classes(rng, rows: int, classes: list[str], accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    actual = rng.choice(classes, rows)
    wrong = rng.random(rows) > accuracy
    predicted = np.where(wrong, rng.choice(classes, rows), actual)
    return actual, predicted


@pytest.mark.parametrize("classes, rows, seed", [
    (["no", "yes"], 500, 1), (["setosa", "versicolor", "virginica"], 2000, 2),
    ([str(index) for index in range(12)], 5000, 3), (["a", "b", "c"], 7, 4)])
def test_classification_measures_equal_scikit_learns(classes, rows, seed):
    rng = np.random.default_rng(seed)
    actual, predicted = _classes(rng, rows, classes, accuracy=0.7)
    if rows < 10:
        predicted[:] = classes[0]  # classes never predicted: precision 0, as zero_division=0 gives
    found = model_quality.classification(actual, predicted)
    assert found.overall["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted), abs=1e-12)
    for measure, function in (("precision", metrics.precision_score), ("recall", metrics.recall_score),
                              ("f1", metrics.f1_score)):
        assert found.overall[measure] == pytest.approx(
            function(actual, predicted, average="macro", zero_division=0), abs=1e-12), measure
        per_class = function(actual, predicted, average=None, labels=sorted(found.per_class), zero_division=0)
        assert [found.per_class[name][measure] for name in sorted(found.per_class)] == pytest.approx(per_class,
                                                                                                     abs=1e-12)
    labels = sorted(found.per_class)
    matrix = metrics.confusion_matrix(actual, predicted, labels=labels)
    cells = zip(*np.nonzero(matrix), strict=True)
    assert {(labels[row], labels[column]): int(matrix[row, column]) for row, column in cells} == found.confusion
    assert "roc_auc" not in found.overall and "log_loss" not in found.overall  # no probability given


@pytest.mark.parametrize("seed", range(4))
def test_binary_probability_measures_equal_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    rows = 3000
    probability = np.round(rng.random(rows), 2 if seed % 2 else 6)  # rounded: many ties, as real scores have
    probability[:5] = [0.0, 1.0, 0.0, 1.0, 0.5]  # the clipped ends of log loss
    actual = np.where(rng.random(rows) < probability, "fraud", "ok")
    predicted = np.where(probability >= 0.5, "fraud", "ok")
    found = model_quality.classification(actual, predicted, positive="fraud", positive_probability=probability)
    is_fraud = (actual == "fraud").astype(int)
    assert found.overall["roc_auc"] == pytest.approx(metrics.roc_auc_score(is_fraud, probability), abs=1e-12)
    assert found.overall["log_loss"] == pytest.approx(metrics.log_loss(is_fraud, probability), rel=1e-9)
    assert found.per_class["fraud"]["f1"] == pytest.approx(metrics.f1_score(is_fraud, predicted == "fraud"))


def test_roc_auc_is_absent_when_one_class_has_no_actual_rows():
    found = model_quality.classification(np.array(["ok"] * 4), np.array(["ok", "fraud", "ok", "ok"]), "fraud",
                                         np.array([0.1, 0.8, 0.2, 0.3]))
    assert "roc_auc" not in found.overall and "log_loss" in found.overall


@pytest.mark.parametrize("seed", range(3))
def test_regression_measures_equal_scikit_learns_and_evidentlys_mean_error(seed):
    rng = np.random.default_rng(seed)
    actual = rng.normal(10, 3, 1000)
    actual[:3] = 0.0  # MAPE's zero denominators: scikit-learn divides by its epsilon
    predicted = actual + rng.normal(0.5, 1, 1000)
    found = model_quality.regression(actual, predicted).overall
    assert found["mae"] == pytest.approx(metrics.mean_absolute_error(actual, predicted), rel=1e-12)
    assert found["rmse"] == pytest.approx(metrics.root_mean_squared_error(actual, predicted), rel=1e-12)
    assert found["mape"] == pytest.approx(metrics.mean_absolute_percentage_error(actual, predicted), rel=1e-12)
    assert found["r2"] == pytest.approx(metrics.r2_score(actual, predicted), rel=1e-12)
    assert found["mean_error"] == pytest.approx(np.mean(predicted - actual), rel=1e-12)


def test_r2_of_a_constant_actual_is_scikit_learns_finite_value():
    assert model_quality.regression(np.ones(5), np.ones(5)).overall["r2"] == metrics.r2_score(np.ones(5), np.ones(5))
    assert model_quality.regression(np.ones(5), np.arange(5.0)).overall["r2"] == metrics.r2_score(np.ones(5),
                                                                                                  np.arange(5.0))


def _binary(rng, rows: int, shift: float, sharpness: float) -> pd.DataFrame:
    """A model whose score is miscalibrated by `sharpness` (1: calibrated) on inputs shifted by `shift`."""
    x = rng.normal(shift, 1, rows)
    truth = (rng.random(rows) < 1 / (1 + np.exp(-2 * x))).astype(int)
    score = 1 / (1 + np.exp(-2 * sharpness * x))
    return pd.DataFrame({"y_true": truth, "y_pred_proba": score, "y_pred": (score >= 0.5).astype(int)})


# Stated tolerance against NannyML 0.13.1: the same arithmetic, so the estimates agree to rounding.
NANNYML_TOLERANCE = 1e-9


@pytest.mark.parametrize("sharpness, shift, seed", [(1.0, 0.7, 1), (0.5, 0.0, 2), (2.0, -0.5, 3), (1.0, 1.5, 4)])
def test_binary_estimates_equal_nannymls_cbpe(sharpness, shift, seed):
    nannyml = pytest.importorskip("nannyml")
    rng = np.random.default_rng(seed)
    reference, analysis = _binary(rng, 5000, 0.0, sharpness), _binary(rng, 4000, shift, sharpness)
    names = ["roc_auc", "f1", "precision", "recall", "accuracy"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = nannyml.CBPE(y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
                                 problem_type="classification_binary", metrics=names, chunk_size=2000)
        estimator.fit(reference)
        theirs = estimator.estimate(analysis).filter(period="analysis").to_df()
    calibration = Calibration(reference.y_pred_proba.to_numpy(), reference.y_true.to_numpy())
    assert calibration.calibrated == estimator.needs_calibration
    for chunk in range(2):
        rows = analysis.iloc[chunk * 2000:(chunk + 1) * 2000]
        ours = estimate_binary(rows.y_pred.to_numpy(), rows.y_pred_proba.to_numpy(), calibration)
        for name in names:
            assert ours[name].value == pytest.approx(theirs[(name, "value")].iloc[chunk], abs=NANNYML_TOLERANCE), name
            assert ours[name].lower <= ours[name].value <= ours[name].upper


def test_accuracy_from_the_confidence_in_the_prediction_equals_nannymls_cbpe_on_being_right():
    """A multiclass model that gives only its confidence in what it predicted: CBPE's accuracy of the binary
    problem "the prediction is right", which is what estimate_accuracy computes."""
    nannyml = pytest.importorskip("nannyml")
    rng = np.random.default_rng(5)

    def rows(count: int, hardness: float) -> pd.DataFrame:
        confidence = rng.uniform(0.34, 1.0, count)
        right = (rng.random(count) < confidence ** hardness).astype(int)  # overconfident when hardness > 1
        return pd.DataFrame({"y_true": right, "y_pred_proba": confidence, "y_pred": np.ones(count, dtype=int)})

    reference, analysis = rows(5000, 1.6), rows(3000, 1.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = nannyml.CBPE(y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
                                 problem_type="classification_binary", metrics=["accuracy"], chunk_size=3000)
        estimator.fit(reference)
        theirs = estimator.estimate(analysis).filter(period="analysis").to_df()[("accuracy", "value")].iloc[0]
    ours = estimate_accuracy(analysis.y_pred_proba.to_numpy(), Calibration(reference.y_pred_proba.to_numpy(),
                                                                           reference.y_true.to_numpy()))
    assert ours.value == pytest.approx(theirs, abs=NANNYML_TOLERANCE)
    assert ours.value < analysis.y_pred_proba.mean() - 0.05  # calibration corrected the overconfidence


def test_the_band_holds_the_realized_value_once_labels_arrive():
    """Windows drawn from a calibrated model: the realized value lies in the +/- 3 sd band in nearly every one."""
    rng = np.random.default_rng(11)
    reference = _binary(rng, 5000, 0.0, 1.0)
    calibration = Calibration(reference.y_pred_proba.to_numpy(), reference.y_true.to_numpy())
    misses = {name: 0 for name in ("accuracy", "precision", "recall", "f1", "roc_auc")}
    windows = 40
    for seed in range(windows):
        window = _binary(rng, 1000, rng.uniform(-1, 1), 1.0)
        estimates = estimate_binary(window.y_pred.to_numpy(), window.y_pred_proba.to_numpy(), calibration, seed)
        realized = model_quality.classification(window.y_true.astype(str).to_numpy(),
                                                window.y_pred.astype(str).to_numpy(), "1",
                                                window.y_pred_proba.to_numpy())
        values = {"accuracy": realized.overall["accuracy"], "roc_auc": realized.overall["roc_auc"],
                  **{name: realized.per_class["1"][name] for name in ("precision", "recall", "f1")}}
        for name, value in values.items():
            misses[name] += not estimates[name].lower <= value <= estimates[name].upper
            assert abs(estimates[name].value - value) < 0.08, (name, seed)
    assert all(missed <= 2 for missed in misses.values()), misses


def test_calibration_is_skipped_where_it_does_not_help_as_nannyml_decides():
    rng = np.random.default_rng(3)
    score = rng.random(2000)
    assert not Calibration(score, (score > 0.5).astype(int)).calibrated  # separable: AUC above 0.999
    assert not Calibration(score, np.ones(2000, dtype=int)).calibrated  # one class
    assert Calibration(score, (rng.random(2000) < score ** 3).astype(int)).calibrated
