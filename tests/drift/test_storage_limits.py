"""A bounded disk: batches stored compressed, storage.max_bytes and per-model quotas (507, or the oldest data
deleted with when_full: drop_oldest), the accounting across a restart, profile mode's segment values and replicas
bounded per interval, and an Idempotency-Key bound to its first body (422 for another)."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as parquet
import pytest

from fleetscope.drift.profiles import profile
from fleetscope.drift.service import store as store_module
from fleetscope.drift.service.config import ConfigError, StorageLimits, parse
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.store import StorageRefused, Store
from tests.drift.support import call, outputs
from tests.support.clock import Clock
from tests.support.exposition import value

START = 1_800_000_000.0
PARQUET = "application/vnd.apache.parquet"
COLUMNS = "columns: {score: numerical, label: categorical, region: categorical}"


def config(storage: str = "", limits: str = "", models: tuple[str, ...] = ("iris",), extra: str = "") -> str:
    text = "evaluation_interval: 1h\n"
    text += f"storage: {{{storage}}}\n" if storage else ""
    text += f"limits: {{{limits}}}\n" if limits else ""
    text += "models:\n" + "".join(f"  {name}:\n    {COLUMNS}\n    window: {{type: sliding, rows: 1000000}}\n"
                                  for name in models)
    return text + extra


def random_table(rows: int, seed: int) -> pa.Table:
    """Outputs that compress little: a random score a row."""
    rng = np.random.default_rng(seed)
    return pa.table({"score": rng.normal(size=rows), "label": rng.choice(["setosa", "versicolor", "virginica"], rows),
                     "region": rng.choice(["eu", "us"], rows)})


def parquet_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    parquet.write_table(table, sink, compression="zstd", use_dictionary=True)
    return sink.getvalue()


def audit_body(rows: int = 100_000) -> bytes:
    """The audit's body: one 256-character label on every row of a dictionary-encoded column, zstd Parquet."""
    zeros = pa.array(np.zeros(rows, dtype=np.int32))
    return parquet_body(pa.table({"score": np.zeros(rows),
                                  "label": pa.DictionaryArray.from_arrays(zeros, pa.array(["l" * 256])),
                                  "region": pa.DictionaryArray.from_arrays(zeros, pa.array(["eu"]))}))


def post(address: str, path: str, body: bytes, content_type: str, key: str | None = None) -> tuple[int, dict, Any]:
    """(status, the JSON answer, its headers: looked up by any case)."""
    headers = {"Content-Type": content_type, **({"Idempotency-Key": key} if key else {})}
    request = urllib.request.Request(f"http://{address}{path}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def metric(address: str, name: str, **labels: str) -> float:
    status, page, _ = call(address, "GET", "/metrics")
    assert status == 200
    return value(page, name, **labels)


def fill(address: str, model: str, seed: int, rows: int = 20_000, tries: int = 40) -> tuple[int, dict, int]:
    """Posts random batches until one is refused: (status, answer, batches accepted before it)."""
    for number in range(tries):
        body = parquet_body(random_table(rows, seed + number))
        status, answer, _ = post(address, f"/v1/models/{model}/outputs", body, PARQUET)
        if status != 202:
            return status, answer, number
    raise AssertionError(f"{tries} batches of model {model} were all accepted")


def evaluated_rows(address: str, model: str) -> int:
    status, result, _ = call(address, "POST", f"/v1/models/{model}/evaluate")
    assert status == 200 and result["outcome"] == "success", result
    return result["current"]["rows"]


# -- through the service ------------------------------------------------------------------------------------------

def test_the_audits_parquet_body_is_stored_compressed(drift_service):
    """Issue: a 19 KB zstd Parquet body of 100k rows of one 256-character label was stored at ~1,373x its size."""
    address = drift_service(config())
    body = audit_body()
    before = metric(address, "fleetscope_drift_storage_model_bytes", model="iris")
    answers: list[int] = []
    writers = [threading.Thread(target=lambda: answers.append(post(address, "/v1/models/iris/outputs", body,
                                                                   PARQUET)[0])) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert answers == [202] * 4
    stored = metric(address, "fleetscope_drift_storage_model_bytes", model="iris") - before
    assert 0 < stored < len(body) * 4  # was 1,373 times: now less than it took to send
    assert metric(address, "fleetscope_drift_rows_accepted_total", model="iris") == 400_000


def test_a_full_store_and_a_full_quota_answer_507_store_nothing_and_survive_a_restart(drift_service):
    text = config(storage="max_bytes: 5MiB, max_bytes_per_model: 3MiB", models=("iris", "other"))
    address = drift_service(text)
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(200, seed=1))[0] == 200
    assert call(address, "PUT", "/v1/models/other/reference", outputs(200, seed=1))[0] == 200

    status, answer, batches = fill(address, "iris", seed=10)
    assert (status, answer["reason"]) == (507, "model_quota") and batches >= 5
    assert "storage.max_bytes_per_model" in answer["error"]
    accepted = metric(address, "fleetscope_drift_rows_accepted_total", model="iris")
    assert accepted == batches * 20_000 and evaluated_rows(address, "iris") == accepted  # earlier data intact
    assert metric(address, "fleetscope_drift_batches_rejected_total", model="iris", reason="model_quota") == 1
    assert metric(address, "fleetscope_drift_storage_model_bytes", model="iris") <= 3 * 1024 ** 2

    # Another model still writes, until the whole store is full.
    status, answer, others = fill(address, "other", seed=100)
    assert (status, answer["reason"]) == (507, "storage_full") and others >= 3
    assert "storage.max_bytes" in answer["error"]
    assert metric(address, "fleetscope_drift_rows_accepted_total", model="other") == others * 20_000
    assert evaluated_rows(address, "other") == others * 20_000
    assert metric(address, "fleetscope_drift_storage_used_bytes") <= 5 * 1024 ** 2 + 64 * 1024  # pages round up
    assert metric(address, "fleetscope_drift_storage_limit_bytes", scope="store") == 5 * 1024 ** 2
    assert metric(address, "fleetscope_drift_storage_limit_bytes", scope="model") == 3 * 1024 ** 2
    held = {model: metric(address, "fleetscope_drift_storage_model_bytes", model=model) for model in ("iris", "other")}
    assert metric(address, "fleetscope_drift_storage_evicted_bytes_total", model="iris") == 0

    # Stopped and started on the same store: the bytes counted from the database equal those kept while running,
    # and the limits hold as before.
    drift_service.processes[-1].stop()
    address = drift_service(text)
    assert {model: metric(address, "fleetscope_drift_storage_model_bytes", model=model)
            for model in ("iris", "other")} == held
    assert post(address, "/v1/models/iris/outputs", parquet_body(random_table(20_000, 7)), PARQUET)[1]["reason"] == \
        "model_quota"
    assert post(address, "/v1/models/other/outputs", parquet_body(random_table(20_000, 8)), PARQUET)[1]["reason"] == \
        "storage_full"
    assert evaluated_rows(address, "iris") == accepted


def test_drop_oldest_evicts_the_oldest_batches_and_counts_them(drift_service):
    address = drift_service(config(storage="max_bytes_per_model: 1MiB, when_full: drop_oldest"))
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(200, seed=1))[0] == 200
    for seed in range(12):  # about 170 KB each: twice the quota in all
        assert post(address, "/v1/models/iris/outputs", parquet_body(random_table(20_000, seed)), PARQUET)[0] == 202
    assert metric(address, "fleetscope_drift_rows_accepted_total", model="iris") == 240_000
    held = metric(address, "fleetscope_drift_storage_model_bytes", model="iris")
    evicted = metric(address, "fleetscope_drift_storage_evicted_bytes_total", model="iris")
    assert held <= 1024 ** 2 and evicted > 1024 ** 2 * 0.8
    status, result, _ = call(address, "POST", "/v1/models/iris/evaluate")
    assert status == 200 and result["current"]["end_row"] == 240_000  # the newest rows are all there
    assert 0 < result["current"]["rows"] < 240_000 and result["current"]["rows"] % 20_000 == 0


def test_profile_mode_bounds_segment_values_and_replicas_per_interval(drift_service):
    address = drift_service(
        "evaluation_interval: 1h\nlimits: {max_segment_values: 3, max_replicas: 2}\nmodels:\n  chat:\n"
        f"    mode: profiles\n    {COLUMNS}\n    segments: [region]\n    window: {{type: sliding, duration: 10m}}\n")
    frame = pd.DataFrame(outputs(200, seed=1))
    body = profile(frame[["score", "label"]], numerical=["score"], categorical=["label"]).to_bytes()
    start = (time.time() // 60 - 2) * 60

    def send(replica: str, region: str, at: float = start) -> tuple[int, dict]:
        query = urllib.parse.urlencode({"replica": replica, "start": repr(at), "seconds": "60",
                                        "segment": f"region={region}"})
        status, answer, _ = post(address, f"/v1/models/chat/profiles?{query}", body,
                                 "application/vnd.fleetscope.profile")
        return status, answer

    assert [send("r0", region)[0] for region in ("eu", "us", "ap")] == [202] * 3
    status, answer = send("r0", "sa")
    assert (status, answer["reason"]) == (400, "too_many_segment_values") and "limits.max_segment_values" in \
        answer["error"]
    assert send("r1", "eu")[0] == 202 and send("r0", "eu")[0] == 202  # a second replica; a retry replays
    status, answer = send("r2", "eu")
    assert (status, answer["reason"]) == (400, "too_many_replicas") and "limits.max_replicas" in answer["error"]
    assert send("r2", "sa", start + 60)[0] == 202  # the next interval has room
    assert metric(address, "fleetscope_drift_batches_rejected_total", model="chat",
                  reason="too_many_replicas") == 1


QUALITY_MODEL = """  rated:
    columns: {score: numerical, label: categorical}
    window: {type: sliding, duration: 10m}
    quality: {task: classification, request_id: request_id, prediction: label, window: 1h, horizon: 1d}
"""


def test_an_idempotency_key_replays_its_body_and_refuses_another_422(drift_service):
    address = drift_service(config(extra=QUALITY_MODEL))
    first, second = json.dumps(outputs(50, seed=1)).encode(), json.dumps(outputs(50, seed=2)).encode()
    assert post(address, "/v1/models/iris/outputs", first, "application/json", key="batch-1")[0] == 202
    status, answer, headers = post(address, "/v1/models/iris/outputs", first, "application/json", key="batch-1")
    assert (status, headers.get("Idempotent-Replayed"), answer["first_row"]) == (202, "true", 0)
    status, answer, _ = post(address, "/v1/models/iris/outputs", second, "application/json", key="batch-1")
    assert (status, answer["reason"]) == (422, "idempotency_key_reused")
    assert "used for another body" in answer["error"]
    # The same body under another Content-Type is another request, too.
    assert post(address, "/v1/models/iris/outputs", first, "application/json; charset=utf-8",
                key="batch-1")[0] == 422
    assert metric(address, "fleetscope_drift_rows_accepted_total", model="iris") == 50

    rated = [{"request_id": f"q{index}", "score": 0.5, "label": "a"} for index in range(10)]
    assert post(address, "/v1/models/rated/outputs", json.dumps(rated).encode(), "application/json")[0] == 202
    labels = json.dumps([{"request_id": f"q{index}", "actual": "a"} for index in range(5)]).encode()
    others = json.dumps([{"request_id": f"q{index}", "actual": "b"} for index in range(5, 10)]).encode()
    status, answer, _ = post(address, "/v1/models/rated/labels", labels, "application/json", key="labels-1")
    assert (status, answer["joined"]) == (202, 5)
    status, answer, headers = post(address, "/v1/models/rated/labels", labels, "application/json", key="labels-1")
    assert (status, answer["joined"], headers.get("Idempotent-Replayed")) == (202, 5, "true")
    status, answer, _ = post(address, "/v1/models/rated/labels", others, "application/json", key="labels-1")
    assert (status, answer["reason"]) == (422, "idempotency_key_reused")
    assert metric(address, "fleetscope_model_labels_total", model="rated", outcome="joined") == 5


# -- settings -----------------------------------------------------------------------------------------------------

def test_sizes_are_bytes_or_a_number_and_a_unit_and_the_quota_defaults_to_a_quarter():
    assert parse({}).storage_limits == StorageLimits(16 * 1024 ** 3, None, "refuse")
    assert parse({}).storage_limits.model_quota == 4 * 1024 ** 3
    for written, size in (("16GiB", 16 * 1024 ** 3), ("500 MB", 500_000_000), (1048576, 1024 ** 2),
                          ("1.5MiB", 3 * 1024 ** 2 // 2), ("3000000", 3_000_000)):
        assert parse({"storage": {"max_bytes": written}}).storage_limits.max_bytes == size
    limits = parse({"storage": {"max_bytes": "2GiB", "max_bytes_per_model": "2GiB", "when_full": "drop_oldest"}})
    assert limits.storage_limits == StorageLimits(2 * 1024 ** 3, 2 * 1024 ** 3, "drop_oldest")


@pytest.mark.parametrize("storage, message", [
    ({"max_bytes": "20Gi"}, "storage.max_bytes: '20Gi' is not a size; write a number of bytes, or a number and one of"),
    ({"max_bytes": True}, "storage.max_bytes must be a number of bytes or a size such as 16GiB"),
    ({"max_bytes": -1}, "storage.max_bytes: -1 is not a size"),
    ({"max_bytes": "512KiB"}, "storage.max_bytes must be at least 1MiB"),
    ({"max_bytes": "9" * 400}, "storage.max_bytes must be less than 1EiB"),
    ({"max_bytes": 10 ** 400}, "storage.max_bytes must be less than 1EiB"),
    ({"max_bytes_per_model": "2000000TiB"}, "storage.max_bytes_per_model must be less than 1EiB"),
    ({"max_bytes_per_model": "0"}, "storage.max_bytes_per_model must be more than 0 bytes"),
    ({"max_bytes": "2GiB", "max_bytes_per_model": "3GiB"}, "storage.max_bytes_per_model (3221225472 bytes) is "
                                                           "larger than storage.max_bytes"),
    ({"when_full": "evict"}, "storage.when_full must be refuse or drop_oldest, not 'evict'"),
    ({"max_size": "1GiB"}, "storage: unknown setting(s) max_size"),
])
def test_storage_settings_are_checked_naming_the_setting(storage, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse({"storage": storage})


def test_profile_bounds_are_limits():
    limits = parse({"limits": {"max_segment_values": 5, "max_replicas": 7}}).limits
    assert (limits.max_segment_values, limits.max_replicas) == (5, 7)
    assert (parse({}).limits.max_segment_values, parse({}).limits.max_replicas) == (100, 1000)
    with pytest.raises(ConfigError, match="limits.max_replicas must be a positive whole number"):
        parse({"limits": {"max_replicas": 0}})


# -- the store itself ---------------------------------------------------------------------------------------------

def recounted(path, model: str) -> int:
    """The model's bytes counted afresh from the database, as a store opening it counts them."""
    store = Store(path)
    try:
        return store.model_bytes(model)
    finally:
        store.close()


def test_blobs_are_zstd_and_dictionary_encoded_and_old_plain_blobs_still_read(tmp_path):
    store = Store(tmp_path / "store.sqlite")
    table = pa.table({"score": np.zeros(100_000), "label": ["l" * 256] * 100_000, "region": ["eu", "us"] * 50_000})
    stored = store.append("iris", table)
    assert store.read("iris", stored, ["score", "label", "region"]).equals(table)
    blob = store._writer.execute("SELECT data FROM batches").fetchone()[0]
    assert len(blob) < 10_000 < table.nbytes // 2000  # 26 MB of table in a few KB
    # A batch written before blobs were compressed (a plain Arrow IPC stream) reads as it did.
    plain = random_table(1000, seed=2)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, plain.schema) as writer:
        writer.write_table(plain)
    store._writer.execute("INSERT INTO batches (model, received_at, first_row, rows, data) VALUES ('old', 0, 0, ?, ?)",
                          (plain.num_rows, sink.getvalue().to_pybytes()))
    assert store.read("old", store_module.RowRange(0, 1000), ["score", "label", "region"]).equals(plain)
    store.close()


def test_a_store_written_before_digests_opens_migrated_and_replays(tmp_path):
    path = tmp_path / "store.sqlite"
    store = Store(path)
    first = store.append("iris", random_table(100, seed=1), batch_id="old-batch")
    store.add_joined("iris", [(None, "", "a", None, "a")], batch_id="old-labels")
    store.close()
    db = sqlite3.connect(path, isolation_level=None)  # the tables as the first release made them
    for table in ("batch_ids", "label_batches"):
        db.execute(f"ALTER TABLE {table} DROP COLUMN digest")
    db.close()
    store = Store(path)
    assert {row[1] for row in store._writer.execute("PRAGMA table_info(batch_ids)")} >= {"digest"}
    replay = store.append("iris", random_table(100, seed=2), batch_id="old-batch", digest=Store.digest(b"x", "a/b"))
    assert replay.replayed and (replay.first, replay.end) == (first.first, first.end)  # no digest: cannot check
    assert store.add_joined("iris", [], batch_id="old-labels", digest=b"y" * 32).replayed
    fresh = store.append("iris", random_table(100, seed=3), batch_id="new-batch", digest=Store.digest(b"x", "a/b"))
    assert store.append("iris", random_table(100, seed=3), batch_id="new-batch",
                        digest=Store.digest(b"x", "a/b")).first == fresh.first
    with pytest.raises(BadBatch) as refused:
        store.append("iris", random_table(100, seed=3), batch_id="new-batch", digest=Store.digest(b"z", "a/b"))
    assert (refused.value.status, refused.value.reason) == (422, "idempotency_key_reused")
    store.close()


def test_the_accounting_follows_every_write_and_delete_and_equals_a_recount(tmp_path):
    clock = Clock(START)
    path = tmp_path / "store.sqlite"
    store = Store(path, clock=clock)
    for seed in range(3):
        clock.now += 60
        store.append("iris", random_table(1000, seed), batch_id=f"b{seed}", digest=b"d" * 32,
                     outcomes=[(f"req-{seed}-{row}", "region=eu", "setosa", 0.5) for row in range(100)])
    store.add_labels("iris", [(f"req-0-{row}", "versicolor") for row in range(50)], 0.0, batch_id="l1")
    store.add_joined("iris", [(None, "", "setosa", 0.9, "setosa")] * 20)
    store.put_reference("iris", random_table(500, seed=9))
    frame = pd.DataFrame(outputs(300, seed=4))[["score", "label"]]
    for minute in range(3):
        for replica in ("r0", "r1"):
            store.add_profile("chat", "region=eu", START + 60 * minute, 60.0, replica,
                              profile(frame, numerical=["score"], categorical=["label"]))
    assert {model: store.model_bytes(model) for model in ("iris", "chat")} == \
        {model: recounted(path, model) for model in ("iris", "chat")}
    clock.now = START + 3 * 86400
    store.roll_up(START + 86400)
    assert store.model_bytes("chat") == recounted(path, "chat") > 0
    store.compact(retention=86400)
    assert store.model_bytes("iris") == recounted(path, "iris") > 0  # the reference stays
    assert store.model_bytes("chat") == recounted(path, "chat") == 0
    store.close()


def test_drop_oldest_deletes_the_oldest_first_across_models_and_never_what_it_stores(tmp_path):
    clock = Clock(START)
    path = tmp_path / "store.sqlite"
    store = Store(path, clock=clock, limits=StorageLimits(8 * 1024 ** 2, 1024 ** 2, "drop_oldest"))
    for seed in range(12):  # about 170 KB each
        clock.now += 1
        store.append("iris" if seed % 2 else "other", random_table(20_000, seed))
    for seed in range(12, 24):
        clock.now += 1
        store.append("iris", random_table(20_000, seed))
    assert store.model_bytes("iris") <= 1024 ** 2 and store.evicted_bytes["iris"] > 0
    kept = [row[0] for row in store._writer.execute("SELECT first_row FROM batches WHERE model = 'iris' "
                                                    "ORDER BY first_row")]
    newest = 20_000 * 17  # iris has sent 6 + 12 batches of 20,000 rows
    assert kept == list(range(newest - 20_000 * (len(kept) - 1), newest + 1, 20_000))  # the newest, contiguous
    assert store.model_bytes("iris") == recounted(path, "iris")

    # The whole store's limit deletes the oldest of any model, here the other model's first batches.
    store.limits = StorageLimits(store._pages_used(store._writer) + 50_000, 8 * 1024 ** 2, "drop_oldest")
    before = store._writer.execute("SELECT COUNT(*) FROM batches WHERE model = 'other'").fetchone()[0]
    clock.now += 1
    store.append("iris", random_table(20_000, seed=99))
    assert store._writer.execute("SELECT COUNT(*) FROM batches WHERE model = 'other'").fetchone()[0] < before
    assert store.evicted_bytes["other"] > 0

    # A batch larger than the quota itself is refused, and nothing it would have evicted is lost.
    store.limits = StorageLimits(64 * 1024 ** 2, 100_000, "drop_oldest")
    held = store.model_bytes("iris")
    with pytest.raises(StorageRefused) as refused:
        store.append("iris", random_table(20_000, seed=100))
    assert (refused.value.status, refused.value.reason) == (507, "model_quota")
    assert "even with the oldest data deleted" in refused.value.message and store.model_bytes("iris") == held
    store.close()


def test_refuse_stores_nothing_past_either_limit(tmp_path):
    store = Store(tmp_path / "store.sqlite", limits=StorageLimits(2 * 1024 ** 2, 400_000, "refuse"))
    store.append("iris", random_table(20_000, seed=1))
    held, used = store.model_bytes("iris"), store.used_bytes()
    with pytest.raises(StorageRefused) as refused:
        for seed in range(2, 10):
            store.append("iris", random_table(20_000, seed))
    assert (refused.value.status, refused.value.reason) == (507, "model_quota") and refused.value.rows == 20_000
    assert store.model_bytes("iris") >= held
    rows = store.total_rows("iris")
    with pytest.raises(StorageRefused):
        store.append("iris", random_table(20_000, seed=11))
    assert store.total_rows("iris") == rows and store.evicted_bytes["iris"] == 0
    with pytest.raises(StorageRefused) as refused:
        for seed in range(20, 40):
            store.append(f"m{seed}", random_table(20_000, seed))
    assert refused.value.reason == "storage_full" and store.used_bytes() <= 2 * 1024 ** 2 + 64 * 1024
    assert used > 0
    store.close()
