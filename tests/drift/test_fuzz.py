"""A seeded, time-bounded fuzz run against the drift service as a real process: mutated bodies of
every format, sent by several clients at once. Every answer is 2xx or 4xx and the service stays
up. FLEETSCOPE_FUZZ_SECONDS (per format) and FLEETSCOPE_FUZZ_SEED change the run."""

from __future__ import annotations

import json
import os
import random
import threading
import time

from tests.drift.fuzz import mutate, seed_bodies, send_mutations
from tests.drift.support import MODEL_CONFIG, call, outputs

SECONDS = float(os.environ.get("FLEETSCOPE_FUZZ_SECONDS", "4"))
SEED = int(os.environ.get("FLEETSCOPE_FUZZ_SEED", "20261129"))


def _send_mutations(address: str, name: str, body: bytes, content_type: str, deadline: float,
                    statuses: dict[int, int], failures: list[str], number: int,
                    path: str = "/v1/models/iris/outputs") -> None:
    """One client: mutated copies of `body` until the deadline or the first failure."""
    text = content_type in ("application/json", "text/csv")
    send_mutations(address, path, content_type, lambda rng: mutate(body, rng, text=text),
                   random.Random(f"{SEED}-{name}-{number}"), deadline, statuses, failures)


def test_mutated_bodies_of_every_format_never_crash_the_service_or_get_a_5xx(drift_service):
    address = drift_service(MODEL_CONFIG + "limits: {max_rows_per_batch: 5000, max_decoded_bytes: 50000000}\n")
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(300, seed=1))[0] == 200
    failures: list[str] = []
    counts: dict[str, dict[int, int]] = {}
    for name, (body, content_type) in seed_bodies().items():
        assert call(address, "POST", "/v1/models/iris/outputs", body, content_type)[0] == 202, name
        statuses: dict[int, int] = {}
        deadline = time.monotonic() + SECONDS
        clients = [threading.Thread(target=_send_mutations,
                                    args=(address, name, body, content_type, deadline, statuses, failures, number))
                   for number in range(4)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(SECONDS + 60)
        counts[name] = statuses
        assert drift_service.processes[-1].running, f"the service died fuzzing {name}"
        assert not failures, failures[:3]
    print("fuzz cases per format:", {name: sum(statuses.values()) for name, statuses in counts.items()})
    assert all(sum(statuses.values()) > 20 for statuses in counts.values()), counts
    assert call(address, "GET", "/-/ready")[0] == 200


LABELLED_MODEL = """
models:
  iris:
    columns: {score: numerical, label: categorical, region: categorical}
    quality: {task: classification, request_id: request_id, prediction: label}
"""


def test_mutated_label_batches_never_crash_the_service_or_get_a_5xx(drift_service):
    import pyarrow as pa
    import pyarrow.parquet as parquet

    address = drift_service(LABELLED_MODEL)
    rows = [{**row, "request_id": f"r{index}"} for index, row in enumerate(outputs(200, seed=1))]
    assert call(address, "POST", "/v1/models/iris/outputs", rows)[0] == 202
    labels = [{"request_id": f"r{index}", "actual": row["label"]} for index, row in enumerate(rows[:60])]
    sink = pa.BufferOutputStream()
    parquet.write_table(pa.Table.from_pylist(labels), sink)
    bodies = {"json": (json.dumps(labels).encode(), "application/json"),
              "csv": (b"request_id,actual\n" + "".join(f"{label['request_id']},{label['actual']}\n"
                                                     for label in labels).encode(), "text/csv"),
              "parquet": (sink.getvalue().to_pybytes(), "application/vnd.apache.parquet")}
    failures: list[str] = []
    for name, (body, content_type) in bodies.items():
        assert call(address, "POST", "/v1/models/iris/labels", body, content_type)[0] == 202, name
        statuses: dict[int, int] = {}
        deadline = time.monotonic() + SECONDS
        clients = [threading.Thread(target=_send_mutations, args=(address, name, body, content_type, deadline,
                                                                  statuses, failures, number,
                                                                  "/v1/models/iris/labels"))
                   for number in range(3)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(SECONDS + 60)
        assert drift_service.processes[-1].running, f"the service died fuzzing labels as {name}"
        assert not failures, failures[:3]
        assert sum(statuses.values()) > 20, statuses
    assert call(address, "POST", "/v1/models/iris/evaluate")[1]["model_quality"]["outputs"] == 200
