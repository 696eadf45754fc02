"""Multivariate drift in the service: the config section and its refusals, an evaluation's multivariate results per
model and segment (equal to fleetscope.drift.multivariate's on the same windows), in /drift's JSON and on /metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.multivariate import Reconstruction, classifier_auc
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.config import ConfigError
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import DriftService
from tests.support.clock import Clock
from tests.support.exposition import samples

START = 1_800_000_000.0
COLUMNS = {"a": "numerical", "b": "numerical", "c": "numerical", "kind": "categorical", "region": "categorical"}


def _model(**extra) -> dict:
    return {"columns": COLUMNS, "segments": ["region"], "window": {"type": "sliding", "duration": "10m"},
            "multivariate": {"methods": ["reconstruction", "classifier"]}, **extra}


def _parse(model: dict) -> service_config.ModelConfig:
    return service_config.parse({"models": {"m": model}}).models["m"]


def test_the_section_defaults_to_every_numerical_and_categorical_column_but_the_segments():
    config = _parse(_model()).multivariate
    assert config.methods == ("reconstruction", "classifier") and config.columns == ("a", "b", "c", "kind")
    assert _parse(_model(multivariate={"columns": ["a", "region"]})).multivariate.columns == ("a", "region")
    assert _parse({"columns": COLUMNS}).multivariate is None


@pytest.mark.parametrize("section, message", [
    ({"columns": ["a", "nope"]}, r"multivariate.columns: 'nope' is not one of the model's numerical or categorical"),
    ({"columns": []}, "must list one or more"),
    ({"columns": ["a", "a"]}, "names a column twice"),
    ({"methods": ["pca"]}, "methods must list one or more of reconstruction, classifier"),
    ({"methods": "reconstruction"}, "methods must list"),
    ({"threshold": 0.7}, "unknown setting"),
])
def test_bad_sections_are_refused_by_name(section, message):
    with pytest.raises(ConfigError, match=message):
        _parse(_model(multivariate=section))


def test_a_model_fed_profiles_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="a model fed profiles cannot have multivariate drift: its profiles "
                                          "summarize each column alone"):
        _parse(_model(mode="profiles"))


def _rows(rng: np.random.Generator, rows: int, correlated: bool = True) -> list[dict]:
    base = rng.normal(0, 1, rows)
    other = base if correlated else rng.normal(0, 1, rows)
    region = rng.choice(["eu", "us"], rows, p=[0.7, 0.3])
    return [{"a": float(x + e), "b": float(2 * y), "c": float(-x + f), "kind": "big" if x > 0 else "small",
             "region": str(r)} for x, y, e, f, r in zip(base, other, rng.normal(0, 0.3, rows), rng.normal(0, 0.5, rows),
                                                        region, strict=True)]


def _service(tmp_path, model: dict) -> tuple[DriftService, Clock]:
    clock = Clock(START)
    document = {"storage": {"path": str(tmp_path / "store.sqlite"), "retention": "2d"}, "models": {"m": model}}
    return DriftService(service_config.parse(document), clock=clock), clock


def test_an_evaluation_finds_broken_correlation_per_model_and_segment_and_serves_it(tmp_path):
    service, _ = _service(tmp_path, _model())
    rng = np.random.default_rng(1)
    reference, current = _rows(rng, 6000), _rows(rng, 600, correlated=False)
    service.put_reference("m", json.dumps(reference).encode(), "application/json")
    service.ingest("m", json.dumps(current).encode(), "application/json")
    evaluation = service.evaluate("m")
    assert evaluation.outcome == "success", evaluation.message
    kinds = {"a": ColumnKind.NUMERICAL, "b": ColumnKind.NUMERICAL, "c": ColumnKind.NUMERICAL,
             "kind": ColumnKind.CATEGORICAL}
    whole = evaluation.multivariate[""]
    expected = Reconstruction(pd.DataFrame(reference), kinds).compare(pd.DataFrame(current))
    assert whole["reconstruction"].value == pytest.approx(expected.value, rel=1e-9)
    assert whole["reconstruction"].upper == pytest.approx(expected.upper, rel=1e-9)
    expected_auc = classifier_auc(pd.DataFrame(reference), pd.DataFrame(current), kinds,
                                  seed=int(evaluation.evaluated_at))
    assert whole["classifier"].value == pytest.approx(expected_auc.value, abs=1e-12)
    assert whole["reconstruction"].drifted and whole["classifier"].drifted
    assert set(evaluation.multivariate) == {"", "region=eu", "region=us"}

    document = evaluation.to_json()
    methods = document["multivariate"]["methods"]
    assert methods["reconstruction"]["drifted"] is True and methods["classifier"]["value"] == whole["classifier"].value
    assert document["segments"]["region=eu"]["multivariate"]["methods"]["classifier"]["current_rows"] > 300
    json.dumps(document, allow_nan=False)

    page = MetricsPage(service).render().decode()
    found = {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples(page)}
    assert found["fleetscope_drift_multivariate_reconstruction_score", (("model", "m"),)] == \
        pytest.approx(whole["reconstruction"].value)
    assert found["fleetscope_drift_multivariate_domain_classifier_bound",
                 (("bound", "upper"), ("model", "m"))] == 0.65
    assert found["fleetscope_drift_multivariate_detected", (("method", "classifier"), ("model", "m"),
                                                            ("segment", "region=us"))] == 1.0


def test_too_short_a_reference_and_an_empty_column_are_said_and_the_rest_still_evaluated(tmp_path):
    service, _ = _service(tmp_path, _model(multivariate={"methods": ["reconstruction"]}))
    rng = np.random.default_rng(2)
    service.put_reference("m", json.dumps(_rows(rng, 1000)).encode(), "application/json")
    service.ingest("m", json.dumps(_rows(rng, 600)).encode(), "application/json")
    evaluation = service.evaluate("m")
    assert evaluation.outcome == "success" and evaluation.result is not None  # per-column drift still compared
    assert "at least 5 reference chunks" in evaluation.multivariate_skipped[""]["reconstruction"]
    assert "skipped_methods" in evaluation.to_json()["multivariate"]

    empty, _ = _service(tmp_path / "empty", _model(multivariate={"methods": ["reconstruction", "classifier"]}))
    reference = [{**row, "b": None} for row in _rows(rng, 3000)]
    empty.put_reference("m", json.dumps(reference).encode(), "application/json")
    empty.ingest("m", json.dumps(_rows(rng, 100)).encode(), "application/json")
    skipped = empty.evaluate("m").multivariate_skipped[""]
    assert set(skipped) == {"reconstruction", "classifier"} and all("'b' have no values" in why
                                                                    for why in skipped.values())


def test_a_one_row_window_has_no_sampling_error_and_its_json_is_strict(tmp_path):
    service, _ = _service(tmp_path, _model(multivariate={"methods": ["reconstruction"]}))
    rng = np.random.default_rng(3)
    service.put_reference("m", json.dumps(_rows(rng, 50)).encode(), "application/json")
    service.ingest("m", json.dumps(_rows(rng, 1)).encode(), "application/json")
    document = service.evaluate("m").to_json()
    assert document["multivariate"]["methods"]["reconstruction"]["sampling_error"] is None
    json.dumps(document, allow_nan=False)
