"""The example model's embedding output, as the demo uses it: each answer carries a vector the model computed (the
terms of its decision function), the model server sends it to the drift service in an `embedding` column, the
demo's reference (example/demo.py, write_reference) holds it, and the demo's drift config compares it: not drifted
for the unshifted flowers of example/load.py, drifted for the shifted ones."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import yaml
from starlette.testclient import TestClient

from fleetscope import log
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.service import DriftService
from fleetscope.example import demo, server
from fleetscope.example.load import instances
from fleetscope.example.model import MAX_MEASUREMENT, BadInput, IrisModel
from fleetscope.exporters.inference import InferenceMetrics
from tests.support.clock import Clock

PREDICT = "/v1/models/iris/predict"
START = 1_800_000_000.0
BATCH = 16  # example/load.py's Load.batch


@pytest.fixture(scope="module")
def model() -> IrisModel:
    return IrisModel()


def test_an_embedding_is_the_terms_of_the_models_decision_function(model):
    features = np.asarray(instances(random.Random(3), 50, shifted=False))
    predictions = model.predict(features)
    assert len(model.embedding_names) == 12 and model.embedding_names[:2] == ("setosa.sepal_length",
                                                                               "setosa.sepal_width")
    vectors = np.array([prediction.embedding for prediction in predictions])
    assert vectors.shape == (50, 12)
    # A class's terms plus its intercept are its logit: the vector is what the model weighed.
    regression = model._pipeline[-1]
    logits = vectors.reshape(50, 3, 4).sum(axis=2) + regression.intercept_
    np.testing.assert_allclose(logits, model._pipeline.decision_function(features), rtol=1e-12, atol=1e-12)
    assert [model.labels[index] for index in logits.argmax(axis=1)] == [p.label for p in predictions]


def test_the_largest_inputs_the_model_takes_give_a_finite_embedding_and_larger_ones_are_refused(model):
    # Near float's range the logits overflow and the probabilities come out NaN: validate() stops those inputs.
    features = model.validate([[5.1, 3.5, 1.4, MAX_MEASUREMENT], [-MAX_MEASUREMENT, 3.0, 5.2, 2.3]])
    assert np.isfinite(model.embedding_of(features)).all()
    assert all(np.isfinite(p.confidence) for p in model.predict(features))
    with pytest.raises(BadInput, match="petal_width: 1e\\+308 cm is out of range"):
        model.validate([[5.1, 3.5, 1.4, 1e308]])


def test_the_server_answers_with_the_embedding_and_sends_it_only_in_the_column_it_is_told(model):
    handed: list[list[dict]] = []
    client = TestClient(server.create_app(model, InferenceMetrics(), outputs=lambda _, rows: handed.append(rows),
                                          request_id_column="request_id", embedding_column="embedding"))
    response = client.post(PREDICT, json={"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert [set(answer) for answer in answers] == [{"request_id", "label", "confidence", "embedding"}] * 2
    assert [answer["label"] for answer in answers] == ["setosa", "virginica"]
    [rows] = handed
    assert [row["embedding"] for row in rows] == [answer["embedding"] for answer in answers]
    assert [row["request_id"] for row in rows] == [answer["request_id"] for answer in answers]
    assert all(len(row["embedding"]) == 12 and all(isinstance(v, float) for v in row["embedding"]) for row in rows)

    handed.clear()
    plain = TestClient(server.create_app(model, InferenceMetrics(), outputs=lambda _, rows: handed.append(rows)))
    assert "embedding" in plain.post(PREDICT, json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).json()["predictions"][0]
    assert set(handed[0][0]) == {*model.features, "label", "confidence"}  # no flag, no column: other models unchanged


def test_the_embedding_column_flag_is_parsed_and_may_not_take_a_rows_column(model):
    import argparse

    parser = argparse.ArgumentParser()
    server.add_arguments(parser)
    assert parser.parse_args(["--drift.embedding-column=vec"]).drift_embedding_column == "vec"
    assert parser.parse_args([]).drift_embedding_column is None
    server._check_drift_columns(model, "request_id", "embedding")
    for request_id, embedding, flag in ((None, "label", "--drift.embedding-column"),
                                        (None, "petal_width", "--drift.embedding-column"),
                                        ("vec", "vec", "--drift.embedding-column"),
                                        ("confidence", None, "--drift.request-id-column")):
        with pytest.raises(log.UserError, match=f"{flag}: '.*' is already a column of the rows"):
            server._check_drift_columns(model, request_id, embedding)


def demo_service(tmp_path, clock: Clock) -> DriftService:
    """The drift service as the demo configures it: its config, and the reference write_reference writes."""
    demo.write_reference(tmp_path / demo.REFERENCE)
    document = yaml.safe_load(demo.DRIFT_CONFIG)
    document["storage"] = {"path": str(tmp_path / "drift.sqlite")}
    return DriftService(service_config.parse(document, base=tmp_path), clock=clock)


def test_the_demos_reference_holds_the_embedding_and_its_config_declares_it(tmp_path, model):
    import pyarrow.parquet as parquet

    demo.write_reference(tmp_path / demo.REFERENCE)
    table = parquet.read_table(tmp_path / demo.REFERENCE)
    assert table.num_rows == 1500 and str(table.schema.field("embedding").type) == "list<element: double>"
    assert {len(vector) for vector in table.column("embedding").to_pylist()} == {len(model.embedding_names)}
    columns = yaml.safe_load(demo.DRIFT_CONFIG)["models"]["iris"]
    assert columns["columns"][demo.EMBEDDING] == "embedding"
    assert columns["dimensions"] == {demo.EMBEDDING: len(model.embedding_names)}
    assert "embedding" not in columns.get("methods", {})  # Evidently's default method, as the comment says


def test_the_demos_drift_service_finds_the_embedding_drifted_only_after_the_shift(tmp_path, model):
    clock = Clock(START)
    service = demo_service(tmp_path, clock)
    sent: list[list[dict]] = []
    client = TestClient(server.create_app(model, InferenceMetrics(), outputs=lambda _, rows: sent.append(rows),
                                          request_id_column="request_id", embedding_column=demo.EMBEDDING))
    rng = random.Random(11)

    def window(shifted: bool) -> dict:
        """A window's worth of the model server's rows (the demo's load: 16 flowers a request), evaluated."""
        sent.clear()
        for _ in range(60):  # 960 rows: half the demo's 30 s window at its 64 rows a second
            assert client.post(PREDICT, json={"instances": instances(rng, BATCH, shifted)}).status_code == 200
        service.ingest("iris", json.dumps([row for rows in sent for row in rows]).encode(), "application/json")
        evaluation = service.evaluate("iris")
        assert evaluation.outcome == "success", evaluation.message
        return evaluation.to_json()["columns"]["embedding"]

    before = window(shifted=False)
    # Evidently's default for a reference of 1000 rows or more: the domain classifier's ROC AUC against 0.55.
    assert (before["kind"], before["method"], before["threshold"]) == ("embedding", "model", 0.55), before
    assert (before["reference_rows"], before["current_rows"]) == (1500, 960), before
    assert before["drifted"] is False and before["score"] < 0.55, before
    clock.now += 60  # past the demo's 30 s sliding window: only the shifted rows are in the next one
    after = window(shifted=True)
    assert after["current_rows"] == 960 and after["drifted"] is True and after["score"] > 0.75, after
    print(f"embedding ({after['method']}, threshold {after['threshold']}): ROC AUC {before['score']:.3f} before "
          f"the shift, {after['score']:.3f} after")
