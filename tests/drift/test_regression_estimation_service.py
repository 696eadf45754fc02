"""A regression model's estimated error in the service: DLE learned from the labelled outputs before the window equals
NannyML's DLE on those rows, is served beside the realized error once labels arrive, and says why when it cannot."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import DriftService
from tests.support.clock import Clock
from tests.support.exposition import samples

START = 1_800_000_000.0


def _service(tmp_path) -> tuple[DriftService, Clock]:
    model = {"columns": {"price": "numerical", "region": "categorical"},
             "window": {"type": "sliding", "duration": "10m"},
             "quality": {"task": "regression", "prediction": "price", "request_id": "request_id", "window": "10m",
                         "horizon": "1d", "calibration_rows": 4000}}
    document = {"storage": {"path": str(tmp_path / "store.sqlite"), "retention": "3d"}, "models": {"flats": model}}
    clock = Clock(START)
    return DriftService(service_config.parse(document), clock=clock), clock


def _send(service: DriftService, rng: np.random.Generator, rows: int, first_id: int) -> dict[str, float]:
    """Outputs whose error grows with the predicted price; returns each request's actual price."""
    actual = rng.uniform(100, 1000, rows)
    predicted = actual + rng.normal(0, 1, rows) * actual / 20
    body = [{"request_id": f"r{first_id + index}", "price": float(price), "region": "eu"}
            for index, price in enumerate(predicted)]
    service.ingest("flats", json.dumps(body).encode(), "application/json")
    return {f"r{first_id + index}": float(value) for index, value in enumerate(actual)}


def _label(service: DriftService, truth: dict[str, float]) -> None:
    body = [{"request_id": request, "actual": actual} for request, actual in truth.items()]
    service.ingest_labels("flats", json.dumps(body).encode(), "application/json")


def _nannyml(reference: pd.DataFrame, window: pd.DataFrame) -> pd.DataFrame:
    import nannyml

    logging.getLogger("nannyml").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = nannyml.DLE(feature_column_names=[], y_pred="prediction", y_true="actual",
                                metrics=["mae", "mse", "rmse"], chunk_size=len(window))
        estimator.fit(reference)
        return estimator.estimate(window).filter(period="analysis").to_df()


def test_estimated_errors_equal_nannymls_and_hold_the_realized_error(tmp_path):
    service, clock = _service(tmp_path)
    rng = np.random.default_rng(1)
    history = _send(service, rng, 3000, 0)
    _label(service, history)
    clock.now += 3600
    pending = _send(service, rng, 800, 10_000)
    evaluation = service.evaluate("flats")
    window = evaluation.model_quality
    assert window.labelled == 0 and window.calibration_rows == 3000 and set(window.estimated) == {"mae", "mse", "rmse"}

    labelled = service.store.labelled_before("flats", window.since, 4000)[::-1]
    reference = pd.DataFrame({"prediction": [row[0] for row in labelled], "actual": [row[2] for row in labelled]})
    current = pd.DataFrame({"prediction": [row[1] for row in service.store.outcomes_between("flats", window.since,
                                                                                           window.until)]})
    expected = _nannyml(reference, current)
    for measure in ("mae", "mse", "rmse"):
        row = expected[measure].iloc[0]
        assert window.estimated[measure].value == pytest.approx(row["value"], rel=1e-9)
        assert window.estimated[measure].upper == pytest.approx(row["upper_confidence_boundary"], rel=1e-9)
        assert evaluation.estimated_thresholds[measure][1] == pytest.approx(row["upper_threshold"], rel=1e-9)

    page = MetricsPage(service).render().decode()
    found = {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples(page)}
    assert found["fleetscope_model_quality_estimated", (("metric", "rmse"), ("model", "flats"))] == \
        pytest.approx(window.estimated["rmse"].value)
    assert ("fleetscope_model_quality_estimated_threshold", (("bound", "upper"), ("metric", "mae"),
                                                             ("model", "flats"))) in found
    assert evaluation.to_json()["model_quality"]["estimated_thresholds"]["mae"]["upper"] > 0

    _label(service, pending)  # the window's labels arrive: the realized error lies in the estimate's band
    window = service.evaluate("flats").model_quality
    for measure in ("mae", "rmse"):
        estimate = window.estimated[measure]
        assert estimate.lower <= window.quality.overall[measure] <= estimate.upper, measure


def test_too_few_labelled_outputs_are_said(tmp_path):
    service, clock = _service(tmp_path)
    rng = np.random.default_rng(2)
    _label(service, _send(service, rng, 10, 0))
    clock.now += 3600
    _send(service, rng, 50, 1000)
    window = service.evaluate("flats").model_quality
    assert window.estimated == {} and "10 labelled outputs before the window" in window.message


def _feature_service(tmp_path) -> DriftService:
    model = {"columns": {"price": "numerical", "size": "numerical", "floor": "numerical", "region": "categorical"},
             "window": {"type": "sliding", "duration": "10m"},
             "quality": {"task": "regression", "prediction": "price", "request_id": "request_id", "window": "10m",
                         "horizon": "1d", "calibration_rows": 2500}}
    document = {"storage": {"path": str(tmp_path / "store.sqlite"), "retention": "3d"}, "models": {"flats": model}}
    return DriftService(service_config.parse(document), clock=Clock(START))


def _send_features(service: DriftService, rng: np.random.Generator, rows: int, first_id: int,
                   high_share: float = 0.2) -> pd.DataFrame:
    """Outputs of a model that errs most on flats high up, whatever their price, sent in batches of 250 (some
    without a request id, a floor missing now and then); returns what was sent with each request's actual price."""
    size = rng.uniform(20, 200, rows)
    floor = np.where(rng.random(rows) < high_share, rng.integers(9, 12, rows), rng.integers(0, 9, rows)).astype(float)
    floor[rng.random(rows) < 0.05] = np.nan
    actual = 4 * size + rng.normal(0, 10, rows)
    price = actual + rng.normal(0, 1, rows) * (2 + (floor >= 9) * 60)
    ids = [None if index % 17 == 5 else f"r{first_id + index}" for index in range(rows)]
    sent = pd.DataFrame({"request_id": ids, "price": price, "size": size, "floor": floor, "actual": actual})
    for start in range(0, rows, 250):
        batch = sent.iloc[start:start + 250]
        body = [{"request_id": request, "price": float(price), "size": float(size),
                 "floor": None if np.isnan(floor) else float(floor), "region": "eu"}
                for request, price, size, floor in zip(batch["request_id"], batch["price"], batch["size"],
                                                       batch["floor"], strict=True)]
        service.ingest("flats", json.dumps(body).encode(), "application/json")
    return sent


def test_the_estimate_learns_from_the_features_of_the_labelled_outputs_as_nannymls_does(tmp_path):
    service = _feature_service(tmp_path)
    rng = np.random.default_rng(3)
    history = _send_features(service, rng, 3000, 0)
    labelled = history[history["request_id"].notna()]
    _label_rows = [{"request_id": request, "actual": float(actual)}
                   for request, actual in zip(labelled["request_id"], labelled["actual"], strict=True)]
    service.ingest_labels("flats", json.dumps(_label_rows).encode(), "application/json")
    service.clock.now += 3600
    pending = _send_features(service, rng, 1000, 10_000, high_share=0.6)  # more of the flats it errs on
    window = service.evaluate("flats").model_quality
    assert window.calibration_rows == 2500 and set(window.estimated) == {"mae", "mse", "rmse"}

    # NannyML on the same rows, joined here from what was sent: the latest 2500 labelled, in arrival order
    reference = labelled.iloc[-2500:].rename(columns={"price": "prediction"})
    current = pending[pending["request_id"].notna()].rename(columns={"price": "prediction"})
    expected = _nannyml_with(["size", "floor"], reference, current.drop(columns="actual"))
    for measure in ("mae", "mse", "rmse"):
        row = expected[measure].iloc[0]
        assert window.estimated[measure].value == pytest.approx(row["value"], rel=1e-9), measure
        assert window.estimated[measure].lower == pytest.approx(row["lower_confidence_boundary"], rel=1e-9), measure
        assert window.estimated[measure].upper == pytest.approx(row["upper_confidence_boundary"], rel=1e-9), measure
    # the prediction alone cannot tell the flats high up apart; the floor can: the estimate follows the window
    alone = _nannyml_with([], reference, current.drop(columns="actual"))["mae"].iloc[0]["value"]
    realized = float(np.mean(np.abs(current["prediction"] - current["actual"])))
    assert abs(window.estimated["mae"].value - realized) < abs(alone - realized) / 2


def _nannyml_with(features: list[str], reference: pd.DataFrame, window: pd.DataFrame) -> pd.DataFrame:
    import nannyml

    logging.getLogger("nannyml").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = nannyml.DLE(feature_column_names=features, y_pred="prediction", y_true="actual",
                                metrics=["mae", "mse", "rmse"], chunk_size=len(window))
        estimator.fit(reference[[*features, "prediction", "actual"]].reset_index(drop=True))
        return estimator.estimate(window[[*features, "prediction"]].reset_index(drop=True)) \
            .filter(period="analysis").to_df()
