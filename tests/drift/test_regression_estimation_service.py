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
