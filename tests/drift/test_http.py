"""The drift service as a real process: ingest, evaluation, reports, metrics, bad input,
access control, TLS, and kill -9 in the middle of work."""

from __future__ import annotations

import io
import ssl
import subprocess

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as parquet
import pytest

from fleetscope.drift import compare
from tests.conftest import promtool_check_metrics
from tests.drift.support import MODEL_CONFIG, call, outputs
from tests.support.exposition import value

READ_TOKEN = "read-token-0123456789abcdef"
WRITE_TOKEN = "write-token-0123456789abcdef"


def columns_of(rows: list[dict]) -> dict:
    return {"columns": {name: [row[name] for row in rows] for name in rows[0]}}


def test_outputs_are_evaluated_as_compare_evaluates_them_and_served_as_metrics(drift_service):
    address = drift_service()
    reference, current = outputs(3000, seed=1), outputs(2500, seed=2, shift=0.4)
    assert call(address, "PUT", "/v1/models/iris/reference", columns_of(reference))[0] == 200
    for start in range(0, 2500, 500):
        status, body, _ = call(address, "POST", "/v1/models/iris/outputs", current[start:start + 500])
        assert (status, body["accepted"]) == (202, 500)

    status, result, _ = call(address, "POST", "/v1/models/iris/evaluate")
    assert status == 200 and result["outcome"] == "success" and result["current"]["rows"] == 2500
    expected = compare(pd.DataFrame(reference), pd.DataFrame(current), numerical=["score"],
                       categorical=["label", "region"])
    for name, drift in expected.columns.items():
        served = result["columns"][name]
        assert (served["method"], served["drifted"]) == (drift.method, drift.drifted)
        assert served["score"] == pytest.approx(drift.score, rel=1e-9)
    assert result["drifted_share"] == pytest.approx(expected.drifted_share)
    assert set(result["segments"]) == {"region=eu", "region=us"}
    assert call(address, "GET", "/v1/models/iris/drift")[1] == result

    page = call(address, "GET", "/metrics")[1]
    assert promtool_check_metrics(page).returncode == 0, promtool_check_metrics(page).stderr
    score = expected.columns["score"]
    assert value(page, "fleetscope_drift_score", model="iris", column="score", method=score.method,
                 segment=None) == pytest.approx(score.score, rel=1e-9)
    assert value(page, "fleetscope_drift_detected", model="iris", column="score", segment=None) == score.drifted
    assert value(page, "fleetscope_drift_rows_accepted_total", model="iris") == 2500
    assert value(page, "fleetscope_drift_window_rows", model="iris", window="current", segment=None) == 2500
    assert value(page, "fleetscope_drift_window_rows", model="iris", window="current", segment="region=eu") == \
        result["segments"]["region=eu"]["current_rows"]

    status, html, headers = call(address, "GET", "/v1/models/iris/report")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "Value Drift for column score" in html and "\"column_name\": \"label\"" in html  # Evidently's widgets


def test_every_body_format_is_accepted(drift_service):
    address = drift_service()
    frame = pd.DataFrame(outputs(400, seed=3))
    assert call(address, "PUT", "/v1/models/iris/reference", frame.to_csv(index=False).encode(), "text/csv")[0] == 200
    sink = io.BytesIO()
    parquet.write_table(pa.Table.from_pandas(frame), sink)
    arrow = pa.BufferOutputStream()
    with pa.ipc.new_stream(arrow, pa.Table.from_pandas(frame).schema) as writer:
        writer.write_table(pa.Table.from_pandas(frame))
    bodies = [(sink.getvalue(), "application/vnd.apache.parquet"), (arrow.getvalue().to_pybytes(),
                                                                   "application/vnd.apache.arrow.stream"),
              (frame.to_csv(index=False).encode(), "text/csv")]
    for body, content_type in bodies:
        assert call(address, "POST", "/v1/models/iris/outputs", body, content_type)[:2] == (
            202, {"accepted": 400, "first_row": bodies.index((body, content_type)) * 400})


BAD_BATCHES = [
    (b'[{"score": 1.0, "label": "setosa"', "application/json", 400, "not valid JSON"),
    (b'[{"score": "high", "label": "setosa", "region": "eu"}]', "application/json", 400,
     "row 0, column 'score'"),
    (b'[{"score": 1.0, "label": "setosa", "region": "eu"}, {"score": 1.0, "label": "setosa", "region": "eu", '
     b'"colour": "red"}]', "application/json", 400, "row 1: column 'colour'"),
    (b'{"columns": {"score": [1.0], "label": ["setosa"], "region": ["eu"], "colour": ["red"]}}',
     "application/json", 400, "unknown column 'colour'"),
    (b'[{"score": NaN, "label": "setosa", "region": "eu"}]', "application/json", 400, "nan is not accepted"),
    (b'[{"score": 1.0, "label": "setosa", "region": "eu"}, {"score": Infinity, "label": "setosa", "region": "eu"}]',
     "application/json", 400, "row 1, column 'score': inf"),
    (b'[]', "application/json", 400, "no rows"),
    (b'', "application/json", 400, "empty"),
    (b'[{"score": 1.0, "label": ["a"], "region": "eu"}]', "application/json", 400, "is not a category"),
    (b'score,label,region\n1.0,setosa,eu\n', "application/xml", 415, "not accepted"),
]


def test_bad_batches_answer_clearly_and_nothing_is_half_written(drift_service):
    address = drift_service(MODEL_CONFIG + "limits: {max_body_bytes: 20000, max_rows_per_batch: 100, max_models: 2}\n")
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(150, seed=4))[0] == 200
    good = outputs(50, seed=5)
    assert call(address, "POST", "/v1/models/iris/outputs", good)[0] == 202
    for body, content_type, status, message in BAD_BATCHES:
        answer = call(address, "POST", "/v1/models/iris/outputs", body, content_type)
        assert answer[0] == status and message in answer[1]["error"], (body, answer)
    # the good rows of a mixed batch are not kept either: all or nothing
    mixed = good[:10] + [{"score": "oops", "label": "setosa", "region": "eu"}]
    assert "row 10" in call(address, "POST", "/v1/models/iris/outputs", mixed)[1]["error"]
    assert call(address, "POST", "/v1/models/iris/outputs", outputs(101, seed=6))[:2] == (
        413, {"error": "the batch has 101 rows and the limit is 100: send it in smaller batches",
              "reason": "too_many_rows"})
    assert call(address, "POST", "/v1/models/iris/outputs", b"[" + b" " * 30000 + b"]")[0] == 413
    assert call(address, "POST", "/v1/models/nope/outputs", good)[0] == 404
    assert call(address, "PUT", "/v1/models/second/reference", outputs(50, seed=7))[0] == 200
    status, body, _ = call(address, "PUT", "/v1/models/third/reference", outputs(50, seed=8))
    assert status == 409 and "limits.max_models" in body["error"]
    status, body, _ = call(address, "PUT", "/v1/models/bad%20name!/reference", outputs(50, seed=8))
    assert status == 400 and "model name" in body["error"]

    result = call(address, "POST", "/v1/models/iris/evaluate")[1]
    assert result["current"]["rows"] == 50  # only the one good batch
    page = call(address, "GET", "/metrics")[1]
    assert value(page, "fleetscope_drift_rows_accepted_total", model="iris") == 50
    assert value(page, "fleetscope_drift_batches_rejected_total", model="iris", reason="not_finite") == 2
    assert value(page, "fleetscope_drift_batches_rejected_total", model="_unknown", reason="unknown_model") == 1
    assert value(page, "fleetscope_drift_models") == 2


def test_kill_9_in_the_middle_of_work_loses_nothing_accepted(drift_service):
    address = drift_service()
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(500, seed=9))[0] == 200
    assert call(address, "PUT", "/v1/models/fresh/reference?categorical=label", outputs(200, seed=10))[0] == 200
    accepted = 0
    for seed in range(20):
        status, body, _ = call(address, "POST", "/v1/models/iris/outputs", outputs(97, seed=100 + seed))
        assert status == 202
        accepted += body["accepted"]
    drift_service.processes[-1].kill()

    address = drift_service()  # same store, new process
    result = call(address, "POST", "/v1/models/iris/evaluate")[1]
    assert result["outcome"] == "success" and result["current"]["rows"] == accepted == 20 * 97
    assert call(address, "GET", "/v1/models")[1]["fresh"]["columns"]["label"] == "categorical"
    status, body, _ = call(address, "POST", "/v1/models/iris/outputs", outputs(3, seed=11))
    assert (status, body["first_row"]) == (202, accepted)  # row numbering carries on


def test_tokens_guard_reads_and_writes_and_a_refused_write_stores_nothing(drift_service, tmp_path):
    config = MODEL_CONFIG + f"auth: {{read_tokens: [{READ_TOKEN}], write_tokens: [{WRITE_TOKEN}]}}\n"
    address = drift_service(config)
    rows = outputs(100, seed=12)
    assert call(address, "PUT", "/v1/models/iris/reference", rows)[0] == 401
    assert call(address, "PUT", "/v1/models/iris/reference", rows, token=READ_TOKEN)[0] == 401
    assert call(address, "POST", "/v1/models/iris/outputs", rows, token="wrong-token-0123456789")[0] == 401
    assert call(address, "POST", "/v1/models/iris/outputs", rows, token=READ_TOKEN)[1]["error"] == \
        "a write token is required"
    assert call(address, "PUT", "/v1/models/iris/reference", rows, token=WRITE_TOKEN)[0] == 200
    result = call(address, "POST", "/v1/models/iris/evaluate", token=WRITE_TOKEN)[1]
    assert result["outcome"] == "no_data"  # none of the refused outputs were stored
    assert call(address, "GET", "/v1/models/iris/drift")[0] == 401
    assert call(address, "GET", "/v1/models/iris/drift", token=READ_TOKEN)[0] == 200
    assert call(address, "GET", "/metrics")[0] == 200  # open unless metrics_require_token

    protected = drift_service(config.replace("]}", "], metrics_require_token: true}"))
    assert call(protected, "GET", "/metrics")[0] == 401
    assert call(protected, "GET", "/metrics", token=READ_TOKEN)[0] == 200


def test_tls(drift_service, tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    address = drift_service(MODEL_CONFIG + f"tls: {{cert_file: {cert}, key_file: {key}}}\n", scheme="https")
    context = ssl.create_default_context(cafile=str(cert))
    status, body, _ = call(address, "PUT", "/v1/models/iris/reference", outputs(50, seed=13), scheme="https",
                           context=context)
    assert (status, body["rows"]) == (200, 50)


def test_repeated_kill_9_under_concurrent_writers_keeps_every_acknowledged_row_exactly_once(drift_service, tmp_path):
    """Writers retry each batch with its Idempotency-Key until acknowledged, as the drift client
    does, while the service is killed mid-work again and again: afterwards every acknowledged
    row is stored, and no row twice (a retry after a lost acknowledgement included)."""
    import json
    import threading
    import time
    import urllib.request
    import uuid

    from fleetscope.drift.service.store import RowRange, Store

    config = MODEL_CONFIG.replace("rows: 5000", "rows: 1000000")
    current = {"address": drift_service(config)}
    assert call(current["address"], "PUT", "/v1/models/iris/reference", outputs(200, seed=1))[0] == 200
    acknowledged: list[float] = []
    retries = [0]
    lock, done = threading.Lock(), threading.Event()
    deadline = time.monotonic() + 120

    def writer(number: int) -> None:
        for batch in range(1000):
            if done.is_set():
                return
            marker = number * 1_000_000 + batch * 1_000
            rows = [{"score": float(marker + index), "label": "setosa", "region": "eu"} for index in range(25)]
            body, key = json.dumps(rows).encode(), uuid.uuid4().hex
            while time.monotonic() < deadline:
                request = urllib.request.Request(f"http://{current['address']}/v1/models/iris/outputs", data=body,
                                                 method="POST", headers={"Content-Type": "application/json",
                                                                         "Idempotency-Key": key})
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        if response.status == 202:
                            with lock:
                                acknowledged.extend(row["score"] for row in rows)
                            break
                except OSError:  # refused, reset, 5xx, 429: the service is restarting or busy
                    with lock:
                        retries[0] += 1
                    time.sleep(0.05)

    writers = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    for thread in writers:
        thread.start()
    for _ in range(3):
        time.sleep(1.0)
        drift_service.processes[-1].kill()
        current["address"] = drift_service(config)  # same store, new process
    time.sleep(1.0)
    done.set()  # each writer finishes the batch in hand (until acknowledged) and stops
    for thread in writers:
        thread.join(150)
    drift_service.processes[-1].stop()

    print(f"kill -9 x3: {len(acknowledged)} rows acknowledged, {retries[0]} retries")
    assert acknowledged and retries[0] > 0
    store = Store(tmp_path / "store.sqlite")
    stored = store.read("iris", RowRange(0, store.total_rows("iris")), ["score"]).column("score").to_pylist()
    store.close()
    assert len(stored) == len(set(stored)), "a row was stored twice"
    assert sorted(stored) == sorted(acknowledged)
