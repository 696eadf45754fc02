"""Embedding and text columns in the drift service, in process: configured, ingested as JSON and Arrow, stored,
compared and put on /metrics; hostile values refused whole (4xx naming the row and the column) with nothing stored."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import DriftService
from tests.drift.test_text_drift import texts
from tests.support.clock import Clock
from tests.support.exposition import value

START = 1_800_000_000.0
DIMENSIONS = 8


def search_service(tmp_path, dimensions: dict | None = None, limits: dict | None = None, **model) -> DriftService:
    columns = {"vec": "embedding", "query": "text", "latency": "numerical"}
    document = {"storage": {"path": str(tmp_path / "store.sqlite")},
                "limits": {"max_embedding_dimensions": 64, "max_text_length": 2000, **(limits or {})},
                "models": {"search": {"columns": columns, **({"dimensions": dimensions} if dimensions else {}),
                                      **model}}}
    return DriftService(service_config.parse(document), clock=Clock(START))


def rows(count: int, seed: int, shift: float = 0.0, dimensions: int = DIMENSIONS) -> list[dict]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(shift, 1, (count, dimensions))
    return [{"vec": vector.tolist(), "query": text, "latency": float(latency)}
            for vector, text, latency in zip(vectors, texts(count, seed, shift), rng.gamma(2, 1, count), strict=True)]


def send(service: DriftService, body: list[dict] | bytes, content_type: str = "application/json") -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return service.ingest("search", data, content_type).rows


def arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_embedding_and_text_columns_are_compared_and_served_as_column_series(tmp_path):
    service = search_service(tmp_path, dimensions={"vec": DIMENSIONS})
    service.put_reference("search", json.dumps(rows(600, seed=1)).encode(), "application/json")
    send(service, rows(300, seed=2, shift=1.0))
    drifted = rows(300, seed=3, shift=1.0)  # the same drifted rows as Arrow: fixed-size lists of float32
    table = pa.table({"vec": pa.array([row["vec"] for row in drifted], pa.list_(pa.float32(), DIMENSIONS)),
                      "query": [row["query"] for row in drifted], "latency": [row["latency"] for row in drifted]})
    send(service, arrow_stream(table), "application/vnd.apache.arrow.stream")
    evaluation = service.evaluate("search")
    assert evaluation.outcome == "success", evaluation.message
    columns = evaluation.result.columns
    assert set(columns) == {"vec", "query", "latency", "query.text_length", "query.word_count",
                            "query.non_letter_percentage", "query.sentence_count"}
    assert (columns["vec"].method, columns["vec"].drifted) == ("model_bootstrap", True)  # 600 rows: bootstrap
    assert columns["query"].method == "perc_text_content_drift" and columns["query"].drifted
    assert evaluation.quality["vec"].missing_share == 0
    page = MetricsPage(service).render().decode()
    assert value(page, "fleetscope_drift_score", model="search", column="vec", method="model_bootstrap") == \
        pytest.approx(columns["vec"].score)
    assert value(page, "fleetscope_drift_detected", model="search", column="query.word_count") == \
        columns["query.word_count"].drifted
    assert evaluation.to_json()["columns"]["vec"]["kind"] == "embedding"


def test_methods_and_thresholds_are_chosen_per_column(tmp_path):
    service = search_service(tmp_path, methods={"vec": "distance_cosine", "query": "abs_text_content_drift",
                                                "query.text_length": "psi"}, thresholds={"vec": 0.5})
    service.put_reference("search", json.dumps(rows(300, seed=1)).encode(), "application/json")
    send(service, rows(300, seed=2))
    columns = service.evaluate("search").result.columns
    assert (columns["vec"].method, columns["vec"].threshold) == ("distance_cosine", 0.5)
    assert columns["query"].method == "abs_text_content_drift"
    assert columns["query.text_length"].method == "psi"


@pytest.mark.parametrize(("model", "message"), [
    ({"methods": {"vec": "ks"}}, "embedding drift method 'ks'"),
    ({"methods": {"query": "psi"}}, "text content drift method 'psi'"),
    ({"methods": {"query.length": "psi"}}, "'query.length' is not one of the model's columns"),
    ({"dimensions": {"latency": 3}}, "not one of the model's embedding columns"),
    ({"dimensions": {"vec": 65}}, "limits.max_embedding_dimensions"),
    ({"dimensions": {"vec": 0}}, "from 1 to"),
    ({"mode": "profiles", "window": {"duration": "1h"}}, "no method is set, and Evidently's default"),
    ({"columns": {"query": "text", "query.word_count": "numerical"}}, "also the name of a text column's descriptor"),
])
def test_configurations_that_cannot_work_are_refused_saying_why(tmp_path, model, message):
    with pytest.raises(service_config.ConfigError, match=message):
        search_service(tmp_path, **model)


def test_a_text_column_counts_as_itself_and_its_descriptors_toward_max_columns(tmp_path):
    with pytest.raises(service_config.ConfigError, match="compares 7 columns"):
        search_service(tmp_path, limits={"max_columns": 6})
    search_service(tmp_path, limits={"max_columns": 7})


def hostile() -> list[tuple[str, bytes, str, int, str, str]]:
    """(what, body, content type, status, reason, column): bodies each refused whole by a model that declares
    the dimension 8 (or, for the first, declares none)."""
    good = rows(3, seed=9)

    def json_with(index: int, **values) -> bytes:
        changed = [dict(row) for row in good]
        changed[index].update(values)
        return json.dumps(changed).encode()

    def arrow(vectors: pa.Array) -> bytes:
        return arrow_stream(pa.table({"vec": vectors, "query": ["a", "b", "c"], "latency": [1.0, 2.0, 3.0]}))

    return [
        ("more dimensions than the limit", json_with(0, vec=[0.5] * 65), "application/json", 400,
         "too_many_dimensions", "vec"),
        ("another dimension than declared", json_with(2, vec=[0.5] * 7), "application/json", 400, "ragged", "vec"),
        ("NaN", json_with(1, vec=[float("nan")] * DIMENSIONS), "application/json", 400, "not_finite", "vec"),
        ("infinity", json_with(1, vec=[1e400] * DIMENSIONS), "application/json", 400, "not_finite", "vec"),
        ("a string in a vector", json_with(0, vec=["1"] * DIMENSIONS), "application/json", 400, "schema", "vec"),
        ("a boolean in a vector", json_with(0, vec=[True] * DIMENSIONS), "application/json", 400, "schema", "vec"),
        ("a number for a vector", json_with(0, vec=3.0), "application/json", 400, "schema", "vec"),
        ("a nested vector", json_with(0, vec=[[0.0]] * DIMENSIONS), "application/json", 400, "schema", "vec"),
        ("a number for a text", json_with(1, query=12), "application/json", 400, "schema", "query"),
        ("a 10 MB text", json_with(0, query="x" * 10_000_000), "application/json", 400, "too_long", "query"),
        ("ragged Arrow lists", arrow(pa.array([[0.0] * 8, [0.0] * 7, [0.0] * 8], pa.list_(pa.float64()))),
         "application/vnd.apache.arrow.stream", 400, "ragged", "vec"),
        ("an Arrow NaN", arrow(pa.array([[0.0] * 8, [0.0] * 7 + [float("nan")], [0.0] * 8],
                                        pa.list_(pa.float32(), 8))),
         "application/vnd.apache.arrow.stream", 400, "not_finite", "vec"),
        ("an Arrow null component", arrow(pa.array([[0.0] * 8, [0.0] * 7 + [None], [0.0] * 8],
                                                   pa.list_(pa.float64(), 8))),
         "application/vnd.apache.arrow.stream", 400, "not_finite", "vec"),
        ("Arrow strings for vectors", arrow(pa.array(["a", "b", "c"])), "application/vnd.apache.arrow.stream", 400,
         "schema", "vec"),
    ]


@pytest.mark.parametrize(("what", "body", "content_type", "status", "reason", "column"), hostile(),
                         ids=[case[0] for case in hostile()])
def test_hostile_values_are_refused_whole_and_the_service_keeps_what_it_had(tmp_path, what, body, content_type,
                                                                           status, reason, column):
    # the limit refuses a vector where nothing sets the dimension yet: no declared one, no reference
    undeclared = reason == "too_many_dimensions"
    service = search_service(tmp_path, dimensions=None if undeclared else {"vec": DIMENSIONS})
    if not undeclared:
        service.put_reference("search", json.dumps(rows(50, seed=1)).encode(), "application/json")
    send(service, rows(40, seed=2))
    with pytest.raises(BadBatch) as refused:
        send(service, body, content_type)
    assert (refused.value.status, refused.value.reason, refused.value.column) == (status, reason, column), what
    assert f"column {column!r}" in refused.value.message
    whole_column = content_type != "application/json" and reason == "schema"  # a column of the wrong type
    assert whole_column or refused.value.message.startswith("row "), refused.value.message
    assert service.store.total_rows("search") == 40
    if undeclared:
        service.put_reference("search", json.dumps(rows(50, seed=1)).encode(), "application/json")
    assert service.evaluate("search").current_rows == 40
    assert service.batches_rejected["search", reason] == 1


def test_without_a_declared_dimension_a_batch_keeps_one_and_the_reference_sets_it(tmp_path):
    service = search_service(tmp_path)
    send(service, rows(30, seed=5, dimensions=5))  # no reference yet: the batch's first vector sets the length
    with pytest.raises(BadBatch, match="row 1, column 'vec': a vector of 5 components; this column's vectors have 8$"):
        send(service, [rows(1, seed=2)[0], rows(1, seed=3, dimensions=5)[0]])
    service.put_reference("search", json.dumps(rows(100, seed=1)).encode(), "application/json")
    for body, content_type in ((rows(50, seed=4, dimensions=5), "application/json"),  # consistent in itself
                               (arrow_stream(pa.table({"vec": pa.array([[0.5] * 5] * 3, pa.list_(pa.float32(), 5)),
                                                       "query": ["a", "b", "c"], "latency": [1.0, 2.0, 3.0]})),
                                "application/vnd.apache.arrow.stream")):
        with pytest.raises(BadBatch) as refused:
            send(service, body, content_type)
        assert (refused.value.status, refused.value.reason, refused.value.column) == (400, "ragged", "vec")
        assert refused.value.message == ("row 0, column 'vec': a vector of 5 components; this column's vectors "
                                         "have 8 (the reference's dimension)")
    assert service.store.total_rows("search") == 30  # nothing of the refused batches
    assert send(service, rows(50, seed=4)) == 50
    # the window holds the outputs stored before the reference was set, of another length: found out when evaluated
    evaluation = service.evaluate("search")
    assert evaluation.outcome == "success" and "vec" not in evaluation.result.columns
    assert "vectors of 2 different lengths (5, 8...)" in evaluation.result.skipped["vec"]
    assert {"query", "latency"} <= set(evaluation.result.columns)
    service.clock.now += 3600  # a window (10 minutes by default) of vectors of the reference's length: compared
    send(service, rows(50, seed=6))
    assert service.evaluate("search").result.columns["vec"].current_rows == 50


def test_the_reference_dimension_holds_after_a_restart_and_follows_a_new_reference(tmp_path):
    service = search_service(tmp_path)
    service.put_reference("search", json.dumps(rows(100, seed=1)).encode(), "application/json")
    send(service, rows(40, seed=2))
    service.close()
    service = search_service(tmp_path)  # the same storage path: the dimension is read from the stored reference
    with pytest.raises(BadBatch, match="row 0, column 'vec': a vector of 5 components; this column's vectors have "
                                       r"8 \(the reference's dimension\)"):
        send(service, rows(20, seed=3, dimensions=5))
    assert service.store.total_rows("search") == 40
    assert send(service, rows(20, seed=3)) == 20
    # a new reference of another length is the model's new reference: its length is the one expected
    service.put_reference("search", json.dumps(rows(100, seed=4, dimensions=5)).encode(), "application/json")
    with pytest.raises(BadBatch, match="have 5 \\(the reference's dimension\\)"):
        send(service, rows(20, seed=3))
    assert send(service, rows(20, seed=3, dimensions=5)) == 20
    assert service.store.total_rows("search") == 80


def test_a_reference_of_another_dimension_than_declared_is_refused_naming_both(tmp_path):
    service = search_service(tmp_path, dimensions={"vec": DIMENSIONS})
    with pytest.raises(BadBatch) as refused:
        service.put_reference("search", json.dumps(rows(100, seed=1, dimensions=5)).encode(), "application/json")
    assert (refused.value.status, refused.value.reason, refused.value.column) == (400, "ragged", "vec")
    assert refused.value.message == ("row 0, column 'vec': a vector of 5 components; this column's vectors have 8 "
                                     "(its declared dimension)")
    assert service.store.reference("search") is None


def test_a_missing_vector_or_text_is_a_missing_value(tmp_path):
    service = search_service(tmp_path, dimensions={"vec": DIMENSIONS})
    service.put_reference("search", json.dumps(rows(100, seed=1)).encode(), "application/json")
    batch = rows(60, seed=2)
    for row in batch[:15]:
        row["vec"], row["query"] = None, None
    send(service, batch)
    evaluation = service.evaluate("search")
    assert evaluation.result.columns["vec"].current_rows == 45
    assert evaluation.quality["vec"].missing_share == pytest.approx(0.25)


def test_the_report_shows_evidentlys_view_of_the_columns_it_has_a_place_for(tmp_path):
    service = search_service(tmp_path, dimensions={"vec": DIMENSIONS})
    service.put_reference("search", json.dumps(rows(200, seed=1)).encode(), "application/json")
    send(service, rows(200, seed=2, shift=0.5))
    assert service.evaluate("search").outcome == "success"
    page = service.report("search").html  # text content and latency; the vectors have no place in the preset
    assert "query" in page and "latency" in page


def test_parquet_carries_vectors_and_texts_longer_than_a_category(tmp_path):
    import pyarrow.parquet as parquet

    service = search_service(tmp_path, dimensions={"vec": DIMENSIONS})
    service.put_reference("search", json.dumps(rows(50, seed=1)).encode(), "application/json")
    table = pa.table({"vec": pa.array([[0.5] * DIMENSIONS, None, [1.5] * DIMENSIONS], pa.list_(pa.float32())),
                      "query": ["a question " * 100, None, "short"], "latency": [1.0, 2.0, 3.0]})
    sink = pa.BufferOutputStream()
    parquet.write_table(table, sink)
    assert send(service, sink.getvalue().to_pybytes(), "application/vnd.apache.parquet") == 3
    stored = service.store.read("search", service.store.rows_between_times("search", 0, START + 1), ["vec", "query"])
    assert stored.column("vec").type == pa.list_(pa.float64(), DIMENSIONS)
    assert stored.column("query").to_pylist()[0] == "a question " * 100
