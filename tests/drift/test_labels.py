"""Ground truth joined to outputs: the join's edge cases, idempotent label batches, pre-joined batches, realized
and estimated quality per window and segment as metrics, bad label batches refused by row, and kill -9."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics

from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.config import ConfigError
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import DriftService
from tests.drift.support import call
from tests.support.clock import Clock
from tests.support.exposition import samples, values

START = 1_800_000_000.0
CLASSES = ["setosa", "versicolor", "virginica"]
QUALITY = {"task": "classification", "request_id": "request_id", "prediction": "label", "confidence": "confidence",
           "window": "1h", "horizon": "1d"}


def service_with(tmp_path, clock, quality: dict | None = None, columns: dict | None = None,
                 segments: tuple[str, ...] = ("region",)) -> DriftService:
    model = {"columns": columns or {"score": "numerical", "label": "categorical", "confidence": "numerical",
                                    "region": "categorical"},
             "segments": list(segments), "window": {"type": "sliding", "duration": "10m"},
             "quality": {**QUALITY, **(quality or {})}}
    document = {"storage": {"path": str(tmp_path / "store.sqlite"), "retention": "3d"}, "models": {"iris": model}}
    return DriftService(service_config.parse(document), clock=clock)


def send_outputs(service: DriftService, rows: int, seed: int, first_id: int = 0, accuracy: float = 0.8,
                 model: str = "iris") -> dict[str, str]:
    """Outputs with request ids; returns each id's true class, drawn so that the prediction is right about
    `accuracy` of the time, and more often when the model is more confident."""
    rng = np.random.default_rng(seed)
    truth, body = {}, []
    for index in range(rows):
        request = f"req-{first_id + index}"
        confidence = float(rng.uniform(0.4, 1.0))
        predicted = str(rng.choice(CLASSES))
        right = rng.random() < min(1.0, confidence * accuracy / 0.7)
        truth[request] = predicted if right else str(rng.choice([c for c in CLASSES if c != predicted]))
        body.append({"request_id": request, "score": float(rng.normal()), "label": predicted,
                     "confidence": confidence, "region": str(rng.choice(["eu", "us"]))})
    service.ingest(model, json.dumps(body).encode(), "application/json")
    return truth


def label_body(truth: dict[str, str]) -> bytes:
    return json.dumps([{"request_id": request, "actual": actual} for request, actual in truth.items()]).encode()


def page_of(service: DriftService) -> str:
    return MetricsPage(service).render().decode()


def exact(service: DriftService, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels are exactly `labels` (a per-class or per-segment series is another)."""
    found = [value for sample, found_labels, value in samples(page_of(service))
             if sample == name and found_labels == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_labels_join_their_outputs_and_quality_equals_scikit_learns_per_window_and_segment(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    truth = send_outputs(service, 600, seed=1)
    clock.now += 60
    labelled = dict(list(truth.items())[:450])  # the last quarter's labels have not arrived
    result = service.ingest_labels("iris", label_body(labelled), "application/json")
    assert result.counts == {"joined": 450} and sorted(result.delays) == [60.0] * 450
    evaluation = service.evaluate("iris")
    window = evaluation.model_quality
    assert window.outputs == 600 and window.labelled == 450 and window.coverage == 0.75
    stored = service.store.outcomes_between("iris", 0, clock.now + 1)
    rows = [(segment, predicted, actual) for segment, predicted, _, actual in stored if actual is not None]
    predicted = [row[1] for row in rows]
    actual = [row[2] for row in rows]
    assert sorted(actual) == sorted(labelled.values())
    assert window.quality.overall["accuracy"] == pytest.approx(metrics.accuracy_score(actual, predicted))
    assert window.quality.overall["f1"] == pytest.approx(metrics.f1_score(actual, predicted, average="macro"))
    eu = [(p, a) for segment, p, a in rows if segment == "region=eu"]
    eu_predicted, eu_actual = zip(*eu, strict=True)
    outputs_eu, labelled_eu, quality_eu = window.segments["region=eu"]
    assert labelled_eu == len(eu) and quality_eu.overall["recall"] == pytest.approx(
        metrics.recall_score(eu_actual, eu_predicted, average="macro"))

    assert exact(service, "fleetscope_model_quality", model="iris", metric="accuracy") == pytest.approx(
        metrics.accuracy_score(actual, predicted))
    assert exact(service, "fleetscope_model_quality", model="iris", metric="precision", **{"class": "setosa"}) == \
        pytest.approx(metrics.precision_score(actual, predicted, labels=["setosa"], average=None)[0])
    assert exact(service, "fleetscope_model_quality", model="iris", metric="f1", segment="region=eu") == \
        pytest.approx(metrics.f1_score(eu_actual, eu_predicted, average="macro"))
    assert exact(service, "fleetscope_model_label_coverage_ratio", model="iris") == 0.75
    assert exact(service, "fleetscope_model_label_coverage_ratio", model="iris", segment="region=eu") == \
        pytest.approx(labelled_eu / outputs_eu)
    confusion = metrics.confusion_matrix(actual, predicted, labels=CLASSES)
    assert exact(service, "fleetscope_model_confusion_rows", model="iris", actual="virginica",
                 predicted="setosa") == confusion[2, 0]
    assert exact(service, "fleetscope_model_labels_total", model="iris", outcome="joined") == 450
    assert exact(service, "fleetscope_model_label_delay_seconds_bucket", model="iris", le="60.0") == 450
    assert exact(service, "fleetscope_model_label_delay_seconds_bucket", model="iris", le="10.0") == 0
    assert exact(service, "fleetscope_model_last_label_timestamp_seconds", model="iris") == clock.now
    assert exact(service, "fleetscope_model_quality_window_rows", model="iris", rows="outputs") == 600


def test_unknown_duplicate_and_out_of_horizon_labels_are_counted_by_reason_not_dropped(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    old = send_outputs(service, 10, seed=1, first_id=0)
    clock.now += 2 * 86400  # past the 1-day horizon
    recent = send_outputs(service, 10, seed=2, first_id=100)
    batch = {**dict(list(recent.items())[:5]), "req-999": "setosa", **dict(list(old.items())[:3])}
    result = service.ingest_labels("iris", label_body(batch), "application/json")
    assert result.counts == {"joined": 5, "unknown_request": 1, "beyond_horizon": 3}
    again = service.ingest_labels("iris", label_body(dict(list(recent.items())[4:7])), "application/json")
    assert again.counts == {"duplicate": 1, "joined": 2}
    # within one batch, a second label for the same request is a duplicate too
    body = json.dumps([{"request_id": "req-108", "actual": "setosa"},
                       {"request_id": "req-108", "actual": "virginica"}]).encode()
    assert service.ingest_labels("iris", body, "application/json").counts == {"joined": 1, "duplicate": 1}
    stored = {row[3] for row in service.store.outcomes_between("iris", clock.now - 1, clock.now + 1)}
    assert "setosa" in stored or recent["req-108"] == "setosa"  # the first label stands
    for outcome, count in {"joined": 8, "unknown_request": 1, "beyond_horizon": 3, "duplicate": 2}.items():
        assert exact(service, "fleetscope_model_labels_total", model="iris", outcome=outcome) == count
    assert exact(service, "fleetscope_model_labels_total", model="iris", outcome="prejoined") == 0


def test_a_label_batch_with_an_idempotency_key_counts_once_even_across_a_restart(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    truth = send_outputs(service, 20, seed=1)
    first = service.ingest_labels("iris", label_body(truth), "application/json", batch_id="labels-1")
    service.close()
    service = service_with(tmp_path, clock)
    replay = service.ingest_labels("iris", label_body(truth), "application/json", batch_id="labels-1")
    assert replay.replayed and replay.counts == first.counts == {"joined": 20}
    assert exact(service, "fleetscope_model_labels_total", model="iris", outcome="joined") == 0  # counted before
    assert exact(service, "fleetscope_model_last_label_timestamp_seconds", model="iris") == START  # read back
    assert service.evaluate("iris").model_quality.labelled == 20


def test_duplicate_request_ids_in_outputs_keep_the_first_output(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    row = {"request_id": "r1", "score": 1.0, "label": "setosa", "confidence": 0.9, "region": "eu"}
    service.ingest("iris", json.dumps([row]).encode(), "application/json")
    service.ingest("iris", json.dumps([{**row, "label": "virginica"}]).encode(), "application/json")
    assert [outcome[1] for outcome in service.store.outcomes_between("iris", 0, START + 1)] == ["setosa"]
    assert service.store.total_rows("iris") == 2  # both outputs count for drift


def test_pre_joined_labels_of_a_model_whose_outputs_are_profiled_or_not_stored(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, quality={"task": "regression", "prediction": "score", "request_id": None,
                                                     "confidence": None},
                           columns={"score": "numerical", "region": "categorical"})
    rng = np.random.default_rng(3)
    actual = rng.normal(10, 2, 300)
    predicted = actual + rng.normal(0.3, 1, 300)
    rows = [{"score": float(p), "actual": float(a), "region": "eu" if index % 3 else "us",
             "output_time": START - 120} for index, (p, a) in enumerate(zip(predicted, actual, strict=True))]
    rows[0]["output_time"] = START - 3 * 86400  # older than the horizon
    result = service.ingest_labels("iris", json.dumps(rows).encode(), "application/json", batch_id="pj-1")
    assert result.counts == {"prejoined": 299, "beyond_horizon": 1}
    replay = service.ingest_labels("iris", json.dumps(rows).encode(), "application/json", batch_id="pj-1")
    assert replay.replayed and replay.counts == result.counts
    window = service.evaluate("iris").model_quality
    assert window.coverage == 1.0 and window.labelled == 299
    assert window.quality.overall["rmse"] == pytest.approx(metrics.root_mean_squared_error(actual[1:], predicted[1:]))
    assert window.quality.overall["r2"] == pytest.approx(metrics.r2_score(actual[1:], predicted[1:]))
    assert exact(service, "fleetscope_model_label_delay_seconds_count", model="iris") == 299
    assert exact(service, "fleetscope_model_label_delay_seconds_sum", model="iris") == pytest.approx(299 * 120)


def test_estimated_accuracy_tracks_the_realized_value_once_labels_arrive(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, quality={"window": "10m"})
    # an hour of labelled outputs to calibrate on, then a window whose labels have not arrived
    service.ingest_labels("iris", label_body(send_outputs(service, 3000, seed=1)), "application/json")
    clock.now += 3600
    pending = send_outputs(service, 2000, seed=2, first_id=10_000)
    window = service.evaluate("iris").model_quality
    assert window.labelled == 0 and window.calibration_rows == 3000 and window.quality is None
    estimate = window.estimated["accuracy"]
    assert exact(service, "fleetscope_model_quality_estimated", model="iris", metric="accuracy") == estimate.value
    assert exact(service, "fleetscope_model_quality_estimated_bound", model="iris", metric="accuracy",
                 bound="lower") == estimate.lower
    assert values(page_of(service), "fleetscope_model_quality", model="iris") == []  # nothing realized yet
    clock.now += 60
    service.ingest_labels("iris", label_body(pending), "application/json")
    realized = service.evaluate("iris").model_quality.quality.overall["accuracy"]
    assert estimate.lower <= realized <= estimate.upper


def test_binary_estimates_with_the_positive_class_probability(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, columns={"score": "numerical", "label": "categorical", "p": "numerical"},
                           segments=(), quality={"confidence": "p", "confidence_of": "positive", "positive": "fraud",
                                                 "window": "10m"})
    rng = np.random.default_rng(4)

    def send(rows: int, first: int) -> dict[str, str]:
        p = rng.random(rows)
        body = [{"request_id": f"t{first + i}", "score": 0.0, "label": "fraud" if p[i] >= 0.5 else "ok", "p": p[i]}
                for i in range(rows)]
        service.ingest("iris", json.dumps(body).encode(), "application/json")
        return {f"t{first + i}": "fraud" if rng.random() < p[i] else "ok" for i in range(rows)}

    service.ingest_labels("iris", label_body(send(3000, 0)), "application/json")
    clock.now += 3600
    truth = send(2000, 10_000)
    clock.now += 60
    service.ingest_labels("iris", label_body(truth), "application/json")
    window = service.evaluate("iris").model_quality
    assert set(window.estimated) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    realized = window.quality
    assert realized.overall["roc_auc"] == pytest.approx(metrics.roc_auc_score(
        [truth[f"t{10_000 + i}"] == "fraud" for i in range(2000)],
        [row[2] for row in service.store.outcomes_between("iris", clock.now - 600, clock.now)]), abs=1e-12)
    for name in ("accuracy", "roc_auc"):
        assert window.estimated[name].lower <= realized.overall[name] <= window.estimated[name].upper
    assert exact(service, "fleetscope_model_quality", model="iris", metric="log_loss") == realized.overall["log_loss"]


@pytest.mark.parametrize("body, status, reason, message", [
    ([{"request_id": "a", "actual": None}], 400, "missing_value", "row 0, column 'actual'"),
    ([{"request_id": "a", "actual": "setosa"}, {"request_id": None, "actual": "setosa"}], 400, "missing_value",
     "row 1, column 'request_id'"),
    ([{"request_id": "a", "actual": 1.5}], 400, "schema", "row 0, column 'actual'"),
    ([{"request_id": "a", "actual": "x" * 300}], 400, "too_long", "row 0, column 'actual'"),
    ([{"request_id": ["a"], "actual": "setosa"}], 400, "schema", "row 0, column 'request_id'"),
    ([{"request_id": "a", "actual": "setosa", "extra": 1}], 400, "schema", "unknown column 'extra'"),
    ([{"actual": "setosa"}], 400, "schema", "a label batch holds 'request_id' and 'actual'"),
    ([{"label": "setosa", "actual": "setosa", "confidence": 0.5, "region": "eu", "output_time": 4e9}], 400,
     "bad_time", "row 0, column 'output_time'"),
    ([{"label": "setosa", "actual": "setosa", "confidence": float("nan"), "region": "eu"}], 400,
     "not_finite", "row 0, column 'confidence'"),
])
def test_bad_label_batches_are_refused_naming_the_row_and_store_nothing(tmp_path, body, status, reason, message):
    clock = Clock(START)
    service = service_with(tmp_path, clock)
    send_outputs(service, 5, seed=1)
    text = json.dumps(body).encode()  # NaN written as JSON's extension, which Python reads
    with pytest.raises(BadBatch) as refused:
        service.ingest_labels("iris", text, "application/json")
    assert (refused.value.status, refused.value.reason) == (status, reason) and message in refused.value.message
    assert service.store.last_label_time("iris") is None
    assert all(row[3] is None for row in service.store.outcomes_between("iris", 0, clock.now + 1))


def test_a_model_without_a_quality_section_refuses_labels_and_configs_are_checked(tmp_path):
    clock = Clock(START)
    document = {"storage": {"path": str(tmp_path / "s.sqlite")},
                "models": {"plain": {"columns": {"score": "numerical"}}}}
    service = DriftService(service_config.parse(document), clock=clock)
    with pytest.raises(BadBatch) as refused:
        service.ingest_labels("plain", b'[{"request_id": "a", "actual": 1}]', "application/json")
    assert refused.value.status == 409 and "quality section" in refused.value.message
    base = {"columns": {"score": "numerical", "label": "categorical"}}
    for quality, message in [({"task": "ranking", "prediction": "label"}, "task must be"),
                             ({"task": "classification", "prediction": "score"}, "categorical columns"),
                             ({"task": "regression", "prediction": "label"}, "numerical columns"),
                             ({"task": "classification", "prediction": "label", "request_id": "score"},
                              "not one of the compared columns"),
                             ({"task": "classification", "prediction": "label", "confidence_of": "positive"},
                              "needs the confidence column"),
                             ({"task": "classification", "prediction": "label", "horizon": "30d"},
                              "longer than storage.retention")]:
        with pytest.raises(ConfigError, match=message):
            service_config.parse({"models": {"m": {**base, "quality": quality}}})


def test_labels_over_http_are_durable_before_the_answer_and_survive_kill_9(drift_service):
    config = """
models:
  iris:
    columns: {score: numerical, label: categorical, confidence: numerical}
    window: {type: sliding, duration: 10m}
    quality: {task: classification, request_id: request_id, prediction: label, confidence: confidence}
"""
    address = drift_service(config)
    rows = [{"request_id": f"r{i}", "score": 0.1 * i, "label": CLASSES[i % 3], "confidence": 0.9} for i in range(50)]
    assert call(address, "POST", "/v1/models/iris/outputs", rows)[0] == 202
    labels = [{"request_id": f"r{i}", "actual": CLASSES[(i // 2) % 3]} for i in range(40)] + \
        [{"request_id": "nobody", "actual": "setosa"}]
    status, body, headers = call(address, "POST", "/v1/models/iris/labels", labels)
    assert status == 202 and body["joined"] == 40 and body["unknown_request"] == 1
    csv = b"request_id,actual\nr40,setosa\n"
    status, body, headers = call(address, "POST", "/v1/models/iris/labels", csv, content_type="text/csv")
    assert (status, body["joined"]) == (202, 1)
    status, body, headers = call(address, "POST", "/v1/models/iris/labels", [{"request_id": "r1", "actual": 3.5}])
    assert status == 400 and "row 0, column 'actual'" in body["error"]
    drift_service.processes[-1].kill()  # kill -9: what was acknowledged is on disk
    address = drift_service(config)
    status, body, _ = call(address, "POST", "/v1/models/iris/evaluate")
    assert status == 200 and body["model_quality"]["labelled"] == 41 and body["model_quality"]["outputs"] == 50
    expected = metrics.accuracy_score([CLASSES[(i // 2) % 3] for i in range(40)] + ["setosa"],
                                      [CLASSES[i % 3] for i in range(41)])
    assert body["model_quality"]["realized"]["accuracy"] == pytest.approx(expected)
    status, replay, headers = call(address, "POST", "/v1/models/iris/labels", csv, content_type="text/csv")
    assert replay["duplicate"] == 1  # without an Idempotency-Key a resend is counted, not stored again


def test_outputs_without_a_prediction_or_confidence_are_left_out_of_the_figures(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, columns={"label": "categorical", "p": "numerical"}, segments=(),
                           quality={"confidence": "p", "confidence_of": "positive", "positive": "fraud"})
    rows = [{"request_id": "a", "label": "fraud", "p": 0.9}, {"request_id": "b", "label": None, "p": 0.2},
            {"request_id": "c", "label": "ok", "p": None}, {"request_id": "d", "label": "ok", "p": 0.1}]
    service.ingest("iris", json.dumps(rows).encode(), "application/json")
    truth = {"a": "fraud", "b": "ok", "c": "fraud", "d": "ok"}
    assert service.ingest_labels("iris", label_body(truth), "application/json").counts == {"joined": 4}
    window = service.evaluate("iris").model_quality
    assert window.labelled == 4 and window.quality.rows == 3  # b has no prediction to judge
    assert window.quality.overall["accuracy"] == pytest.approx(2 / 3)
    assert "roc_auc" not in window.quality.overall  # c has no probability


def test_a_model_fed_profiles_takes_pre_joined_labels(tmp_path):
    clock = Clock(START)
    model = {"mode": "profiles", "columns": {"label": "categorical", "p": "numerical"},
             "window": {"type": "sliding", "duration": "10m"},
             "quality": {"task": "classification", "prediction": "label", "confidence": "p"}}
    service = DriftService(service_config.parse({"storage": {"path": str(tmp_path / "s.sqlite")},
                                                 "models": {"chat": model}}), clock=clock)
    rows = [{"label": "a", "p": 0.9, "actual": "a"}, {"label": "b", "p": 0.6, "actual": "a"}]
    assert service.ingest_labels("chat", json.dumps(rows).encode(), "application/json").counts == {"prejoined": 2}
    window = service.evaluate("chat").model_quality
    assert (window.outputs, window.coverage, window.quality.overall["accuracy"]) == (2, 1.0, 0.5)
    with pytest.raises(ConfigError, match="pre-joined"):
        service_config.parse({"models": {"chat": {**model, "quality": {**model["quality"], "request_id": "id"}}}})
