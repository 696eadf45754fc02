"""Hostile bodies against the drift service as a real process: each is refused with a 4xx that
says why, counted by reason, and the service stays up, small and serving. The bodies are the
ones that crashed it or took gigabytes before (issue 14), made small enough to send in a test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.drift import hostile
from tests.drift.support import MODEL_CONFIG, call, declared_over, outputs
from tests.support.exposition import value

REGRESSIONS = Path(__file__).parent / "hostile"
LIMITS = "limits: {max_rows_per_batch: 20000, max_decoded_bytes: 4000000}\n"
ROW = '{"score": 1.0, "label": "setosa", "region": "eu"}'


def json_body(text: str) -> bytes:
    return text.encode()


def hostile_bodies() -> list[tuple[str, bytes, str, int, str]]:
    """(what, body, content type, status, reason)."""
    iris = hostile.iris_table()
    stream, zstd = hostile.arrow_stream(iris), hostile.arrow_stream(iris, "zstd")
    bodies = [(f"crashed the service: {path.name}", path.read_bytes(),
               hostile.ARROW_STREAM if path.suffix == ".arrows" else hostile.ARROW_FILE, 400, "malformed")
              for path in sorted(REGRESSIONS.iterdir())]
    return bodies + [
        ("a batch declaring 2^40 rows", hostile.with_declared_rows(stream, 2 ** 40), hostile.ARROW_STREAM, 413,
         "too_many_rows"),
        ("a file whose batch declares 2^40 rows", _as_file(hostile.with_declared_rows(stream, 2 ** 40)),
         hostile.ARROW_FILE, 413, "too_many_rows"),
        ("three batches of 10,000 rows where a body may hold 20,000",
         hostile.arrow_stream(hostile.iris_table(30_000), "zstd", batch_rows=10_000), hostile.ARROW_STREAM, 413,
         "too_many_rows"),
        ("zstd buffers declaring 5 TiB", hostile.with_declared_uncompressed_size(zstd, 5 << 40), hostile.ARROW_STREAM,
         413, "too_large"),
        # 10,000 characters may be a text (limits.max_text_length): refused for what its rows expand to
        ("a Parquet dictionary of one 10,000-character value on 20,000 rows",
         hostile.parquet_bytes(hostile.dictionary_bomb(20_000, 10_000), compression="zstd"), hostile.PARQUET, 413,
         "too_large"),
        ("a Parquet dictionary of one 70,000-character value on 20 rows",
         hostile.parquet_bytes(hostile.dictionary_bomb(20, 70_000), compression="zstd"), hostile.PARQUET, 400,
         "too_long"),
        ("an Arrow dictionary expanding to 8 MB (limit 4 MB)",
         hostile.arrow_stream(hostile.dictionary_bomb(20_000, 200), "zstd"), hostile.ARROW_STREAM, 413, "too_large"),
        ("a Parquet file declaring more rows than a batch may have",
         hostile.parquet_bytes(hostile.iris_table(20_001)), hostile.PARQUET, 413, "too_many_rows"),
        ("JSON of many empty containers", json_body("[" + ",".join(['{"c":[]}'] * 30_000) + "]"),
         "application/json", 413, "too_many_rows"),
        ("JSON of nested lists", json_body("[" + ",".join(["[]"] * 30_000) + "]"), "application/json", 413,
         "too_many_rows"),
        ("JSON nested 15,000 deep", json_body("[" * 15_000), "application/json", 400, "too_deep"),
        ("a row with no columns", json_body("[{}]"), "application/json", 400, "schema"),
        ("a lone surrogate in a category", json_body('[{"score": 1.0, "label": "\\ud800", "region": "eu"}]'),
         "application/json", 400, "bad_text"),
        ("a number of 400 digits", json_body('[{"score": 1' + "0" * 400 + ', "label": "a", "region": "eu"}]'),
         "application/json", 400, "schema"),
        ("a number of 5,000 digits", json_body('[{"score": 1' + "0" * 5000 + ', "label": "a", "region": "eu"}]'),
         "application/json", 400, "malformed"),
        ("CSV nan in a numerical column", b"score,label,region\nnan,setosa,eu\n", "text/csv", 400, "not_finite"),
        ("CSV NA in a numerical column", b"score,label,region\nNA,setosa,eu\n", "text/csv", 400, "schema"),
        ("CSV null in a numerical column", b"score,label,region\n1.0,setosa,eu\nnull,setosa,eu\n", "text/csv", 400,
         "schema"),
    ]


def _as_file(stream: bytes) -> bytes:
    """An Arrow IPC file around a stream's messages (magic, stream, a minimal footer)."""
    import pyarrow as pa

    footer = hostile.arrow_file(pa.table({"x": [1]}))
    footer_length = int.from_bytes(footer[-10:-6], "little")
    return b"ARROW1\0\0" + stream + footer[-10 - footer_length:]


def test_hostile_bodies_are_refused_with_a_reason_and_the_service_stays_up(drift_service):
    address = drift_service(MODEL_CONFIG + LIMITS)
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(200, seed=1))[0] == 200
    refused: dict[str, int] = {}
    for what, body, content_type, status, reason in hostile_bodies():
        answer = call(address, "POST", "/v1/models/iris/outputs", body, content_type)
        assert (answer[0], answer[1].get("reason")) == (status, reason), (what, answer)
        assert drift_service.processes[-1].running, what
        refused[reason] = refused.get(reason, 0) + 1
    # still serving, nothing of the above stored, every refusal counted by its reason
    assert call(address, "POST", "/v1/models/iris/outputs", outputs(10, seed=2))[:2] == (
        202, {"accepted": 10, "first_row": 0})
    page = call(address, "GET", "/metrics")[1]
    for reason, count in refused.items():
        assert value(page, "fleetscope_drift_batches_rejected_total", model="iris", reason=reason) == count, reason


def test_brackets_inside_strings_are_not_taken_for_rows(drift_service):
    address = drift_service(MODEL_CONFIG + "limits: {max_rows_per_batch: 5, max_columns: 3}\n")
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(50, seed=1))[0] == 200
    rows = [{"score": 1.0, "label": "[{" * 100, "region": "eu"} for _ in range(3)]
    assert call(address, "POST", "/v1/models/iris/outputs", rows)[:2] == (202, {"accepted": 3, "first_row": 0})


def test_an_error_quotes_what_the_client_sent_cut_short(drift_service):
    """A 15 MB column name was echoed whole in a 15 MB answer (issue 35); in a model's name too."""
    address = drift_service()
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(50, seed=1))[0] == 200
    name = "x" * 15_000_000
    status, answer, _ = call(address, "POST", "/v1/models/iris/outputs", [{"score": 1.0, "label": "a",
                                                                           "region": "eu", name: 1}])
    assert (status, answer["reason"]) == (400, "schema") and "15,000,002 characters" in answer["error"]
    assert len(answer["error"]) < 400, len(answer["error"])
    status, answer, _ = call(address, "PUT", "/v1/models/" + "m" * 8000 + "/reference", outputs(5, seed=1))
    assert (status, answer["reason"]) == (400, "bad_model_name") and len(answer["error"]) < 400


def test_an_error_body_never_carries_internal_text(drift_service, tmp_path):
    address = drift_service()
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(50, seed=1))[0] == 200
    import sqlite3

    locker = sqlite3.connect(tmp_path / "store.sqlite", timeout=0)
    locker.execute("BEGIN EXCLUSIVE")  # the service's writes now fail after its 5 s busy timeout
    try:
        status, body, headers = call(address, "POST", "/v1/models/iris/outputs", outputs(5, seed=2))
    finally:
        locker.rollback()
        locker.close()
    assert status == 503 and {key.lower(): item for key, item in headers.items()}["retry-after"] == "5"
    assert body == {"error": "the service could not complete the request; its log has the details"}
    assert "database is locked" in drift_service.processes[-1].log_tail(60)  # the detail is in the log


@pytest.mark.parametrize("token", [b"caf\xc3\xa9-token-0123456789", b"\xff" * 20])
def test_a_non_ascii_bearer_token_is_refused_not_an_error(drift_service, token):
    import http.client

    address = drift_service(MODEL_CONFIG + "auth: {write_tokens: [write-token-0123456789abcdef]}\n")
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/v1/models/iris/outputs")
    connection.putheader("Authorization", b"Bearer " + token)
    connection.putheader("Content-Type", "application/json")
    body = json.dumps(outputs(3, seed=1)).encode()
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    assert response.status == 401, response.read()
    assert "Traceback" not in drift_service.processes[-1].log_tail(60)


# Refusals decided by reading the body, before any schema: a label batch meets them as an output batch does.
BEFORE_THE_SCHEMA = {"too_many_rows", "too_large", "too_long", "too_deep", "malformed"}
LABELLED = MODEL_CONFIG + "    quality: {task: classification, request_id: request_id, prediction: label}\n"


def test_hostile_label_batches_are_refused_with_a_reason_and_join_nothing(drift_service):
    address = drift_service(LABELLED + "limits: {max_rows_per_batch: 20000, max_decoded_bytes: 4000000, "
                                       "max_body_bytes: 500000}\n")
    rows = [{**row, "request_id": f"r{index}"} for index, row in enumerate(outputs(20, seed=1))]
    assert call(address, "POST", "/v1/models/iris/outputs", rows)[0] == 202
    cases = [case for case in hostile_bodies() if case[4] in BEFORE_THE_SCHEMA]
    cases.append(("a lone surrogate in a request id", json_body('[{"request_id": "\\ud800", "actual": "setosa"}]'),
                  "application/json", 400, "bad_text"))
    for what, body, content_type, status, reason in cases:
        answer = call(address, "POST", "/v1/models/iris/labels", body, content_type)
        assert (answer[0], answer[1].get("reason")) == (status, reason), (what, answer)
        assert drift_service.processes[-1].running, what
    assert len(cases) > 10
    assert declared_over(address, "/v1/models/iris/labels", 550_000)[:2] == (413, "too_large")
    status, body, _ = call(address, "POST", "/v1/models/iris/evaluate")
    assert status == 200 and body["model_quality"]["labelled"] == 0  # nothing of the above joined
    labels = [{"request_id": f"r{index}", "actual": row["label"]} for index, row in enumerate(rows)]
    assert call(address, "POST", "/v1/models/iris/labels", labels)[1]["joined"] == 20
