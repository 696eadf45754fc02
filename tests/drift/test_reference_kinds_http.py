"""A model created by its first reference over HTTP, with embedding and text columns declared in the PUT's query
(?embedding=, ?text=): the reference's vectors set the dimension outputs must have, kept across a restart; bad
declarations and values refused with a 400 naming the column, and no model created."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tests.drift.support import call
from tests.drift.test_embeddings_service import arrow_stream
from tests.drift.test_text_drift import texts
from tests.support.exposition import value

CONFIG = "evaluation_interval: 1h\nlimits: {max_columns: 12, max_embedding_dimensions: 64}\n"
DIMENSIONS = 6
QUERY = "/v1/models/search/reference?embedding=vec&text=query&numerical=latency"


def rows(count: int, seed: int, dimensions: int = DIMENSIONS, shift: float = 0.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"vec": vector.tolist(), "query": query, "latency": float(latency)}
            for vector, query, latency in zip(rng.normal(shift, 1, (count, dimensions)), texts(count, seed, shift),
                                              rng.gamma(2, 1, count), strict=True)]


def test_a_put_reference_declares_embedding_and_text_columns_and_sets_the_dimension(drift_service):
    address = drift_service(CONFIG)
    status, body, _ = call(address, "PUT", QUERY, rows(300, seed=1))
    assert status == 200, body
    assert body["columns"] == {"vec": "embedding", "query": "text", "latency": "numerical"}
    assert body["dimensions"] == {"vec": DIMENSIONS}
    status, body, _ = call(address, "POST", "/v1/models/search/outputs", rows(20, seed=2, dimensions=DIMENSIONS + 1))
    assert (status, body["reason"]) == (400, "ragged")
    assert body["error"] == ("row 0, column 'vec': a vector of 7 components; this column's vectors have 6 (its "
                             "declared dimension)")
    vectors = pa.array([[0.5] * 4] * 3, pa.list_(pa.float32(), 4))  # Arrow's fixed-size lists are checked too
    status, body, _ = call(address, "POST", "/v1/models/search/outputs",
                           arrow_stream(pa.table({"vec": vectors, "query": ["a", "b", "c"], "latency": [1.0] * 3})),
                           "application/vnd.apache.arrow.stream")
    assert (status, body["reason"]) == (400, "ragged") and body["error"].startswith("row 0, column 'vec'")
    assert call(address, "POST", "/v1/models/search/outputs", rows(300, seed=3, shift=1.0))[0] == 202
    # (evaluating them is tests/drift/test_embeddings_service.py's: the same columns, in process)
    page = call(address, "GET", "/metrics")[1]
    assert value(page, "fleetscope_drift_rows_accepted_total", model="search") == 300  # none of the refused
    assert value(page, "fleetscope_drift_batches_rejected_total", model="search", reason="ragged") == 2

    drift_service.processes[-1].kill()
    address = drift_service(CONFIG)  # the same store, a new process: the dimension was stored with the schema
    assert call(address, "GET", "/v1/models")[1]["search"]["columns"]["vec"] == "embedding"
    status, body, _ = call(address, "POST", "/v1/models/search/outputs", rows(5, seed=4, dimensions=3))
    assert (status, body["reason"]) == (400, "ragged") and "this column's vectors have 6" in body["error"]
    assert call(address, "POST", "/v1/models/search/outputs", rows(5, seed=4))[0] == 202


def test_declarations_and_values_that_cannot_make_a_model_are_refused_naming_the_column(drift_service):
    address = drift_service(CONFIG)
    good = rows(20, seed=1)
    not_vectors = [{**row, "vec": 0.5} for row in good]
    ragged = [*good[:3], {**good[3], "vec": [0.5] * 4}, *good[4:]]
    nan = [*good[:2], {**good[2], "vec": [float("nan")] * DIMENSIONS}, *good[3:]]
    numbers_as_text = [{**row, "query": 3} for row in good]
    wide = [{**row, **{f"x{index}": 1.0 for index in range(4)}} for row in good]  # compared: 7 + 4 descriptors
    for query, body, status, reason, says in [
        (QUERY, not_vectors, 400, "schema", "row 0, column 'vec': 0.5 is not a vector"),
        (QUERY, ragged, 400, "ragged", "row 3, column 'vec': a vector of 4 components; this column's vectors have 6"),
        (QUERY, nan, 400, "not_finite", "row 2, column 'vec': a vector with the component nan"),
        (QUERY, numbers_as_text, 400, "schema", "row 0, column 'query': 3 is not a text"),
        ("/v1/models/search/reference?embedding=vec&numerical=latency", good, 400, "schema",
         "column 'query' looks like text data, which is only compared where declared: declare it with ?text="),
        ("/v1/models/search/reference?embedding=vec&text=vec,query", good, 400, "schema",
         "column 'vec' is declared both embedding and text"),
        ("/v1/models/search/reference?embedding=vector&text=query", good, 400, "schema",
         "declared column(s) ['vector'] are not in the reference"),
        (f"{QUERY}&text=query,x0", wide, 400, "too_many_columns",
         "the reference's 7 columns compare as 15 (each text column is itself and 4 descriptors); "
         "limits.max_columns is 12"),
    ]:
        status_found, answer, _ = call(address, "PUT", query, body)
        assert (status_found, answer.get("reason")) == (status, reason), (says, answer)
        assert says in answer["error"], (says, answer["error"])
        assert "search" not in call(address, "GET", "/v1/models")[1]
    status, answer, _ = call(address, "PUT", QUERY, wide)  # 11 compared columns: within the limit
    assert status == 200, answer
