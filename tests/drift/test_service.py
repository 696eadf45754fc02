"""DriftService in process, on a hand-moved clock: windows, rolling references, segments,
retention, limits and overload."""

from __future__ import annotations

import json
import threading
import time

import pytest

from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.service import DriftService, Overloaded
from tests.drift.support import outputs
from tests.support.clock import Clock

START = 1_800_000_000.0  # a multiple of 5 minutes, so tumbling periods start here


def service_with(tmp_path, clock, window: dict | None = None, reference: dict | None = None, **extra) -> DriftService:
    model = {"columns": {"score": "numerical", "label": "categorical", "region": "categorical"},
             "segments": ["region"], **({"window": window} if window else {}),
             **({"reference": reference} if reference else {})}
    document = {"storage": {"path": str(tmp_path / "store.sqlite"), "retention": "2d"},
                "models": {"iris": model}, **extra}
    return DriftService(service_config.parse(document), clock=clock)


def send(service: DriftService, rows: list[dict], model: str = "iris") -> int:
    return service.ingest(model, json.dumps(rows).encode(), "application/json").rows


def test_sliding_window_by_time_and_rows(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, window={"type": "sliding", "duration": "10m", "rows": 250})
    service.put_reference("iris", json.dumps(outputs(500, seed=1)).encode(), "application/json")
    send(service, outputs(100, seed=2))
    clock.now += 11 * 60  # the first batch has slid out
    send(service, outputs(100, seed=3))
    assert service.evaluate("iris").current_rows == 100
    for seed in range(4, 7):
        send(service, outputs(100, seed=seed))
    evaluation = service.evaluate("iris")
    assert evaluation.current_rows == 250 and evaluation.current.end == 500  # the newest 250 rows


def test_tumbling_windows_by_time_and_by_rows(tmp_path):
    clock = Clock(START + 10)
    service = service_with(tmp_path, clock, window={"type": "tumbling", "duration": "5m"})
    service.put_reference("iris", json.dumps(outputs(500, seed=1)).encode(), "application/json")
    send(service, outputs(70, seed=2))
    assert service.evaluate("iris").outcome == "no_data"  # the period is not complete yet
    clock.now = START + 5 * 60 + 1
    send(service, outputs(30, seed=3))  # belongs to the next period
    assert service.evaluate("iris").current_rows == 70

    by_rows = service_with(tmp_path / "rows", Clock(START), window={"type": "tumbling", "rows": 100})
    by_rows.put_reference("iris", json.dumps(outputs(500, seed=1)).encode(), "application/json")
    for seed in range(5):
        send(by_rows, outputs(45, seed=10 + seed))  # 225 rows: blocks [0, 100) and [100, 200) are complete
    assert (by_rows.evaluate("iris").current.first, by_rows.evaluate("iris").current.end) == (100, 200)


def test_rolling_reference_is_the_same_hour_yesterday(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, window={"type": "sliding", "duration": "1h"},
                           reference={"rolling": {"offset": "1d", "duration": "1h"}})
    send(service, outputs(300, seed=1))  # yesterday
    with pytest.raises(BadBatch, match="rolling reference"):
        service.put_reference("iris", json.dumps(outputs(10, seed=0)).encode(), "application/json")
    clock.now += 86400 + 1800
    send(service, outputs(200, seed=2, shift=1.0))
    evaluation = service.evaluate("iris")
    assert (evaluation.outcome, evaluation.reference_rows, evaluation.current_rows) == ("success", 300, 200)
    assert evaluation.result.columns["score"].drifted


def test_segments_are_bounded_and_evaluated_against_their_own_reference(tmp_path):
    service = service_with(tmp_path, Clock(START), limits={"max_segments": 1})
    service.put_reference("iris", json.dumps(outputs(800, seed=1)).encode(), "application/json")
    rows = outputs(600, seed=2)
    for index, row in enumerate(rows):
        row["region"] = "eu" if index % 3 else "us"  # eu has twice the rows
    send(service, rows)
    evaluation = service.evaluate("iris")
    assert list(evaluation.segments) == ["region=eu"]
    assert "max_segments" in evaluation.skipped_segments["region=us"]
    assert evaluation.segment_rows["region=eu"][0] == 400
    assert set(evaluation.segments["region=eu"].columns) == {"score", "label"}  # not the segment column itself


def test_retention_deletes_old_outputs_and_keeps_row_numbers(tmp_path):
    clock = Clock(START)
    service = service_with(tmp_path, clock, window={"type": "sliding", "rows": 10_000})
    service.put_reference("iris", json.dumps(outputs(300, seed=1)).encode(), "application/json")
    send(service, outputs(100, seed=2))
    clock.now += 3 * 86400
    send(service, outputs(50, seed=3))
    assert service.compact() == 1
    assert service.evaluate("iris").current_rows == 50
    service.close()
    reopened = service_with(tmp_path, clock)
    assert reopened.ingest("iris", json.dumps(outputs(5, seed=4)).encode(), "application/json").first == 150


def test_empty_columns_are_skipped_with_a_reason(tmp_path):
    service = service_with(tmp_path, Clock(START))
    service.put_reference("iris", json.dumps(outputs(300, seed=1)).encode(), "application/json")
    rows = outputs(100, seed=2)
    for row in rows:
        row["score"] = None
    send(service, rows)
    evaluation = service.evaluate("iris")
    assert evaluation.outcome == "success"
    assert evaluation.result.skipped["score"] == "no values in the current window"


def test_writes_beyond_the_concurrency_limit_are_told_to_retry(tmp_path):
    service = service_with(tmp_path, Clock(START), limits={"max_concurrent_writes": 1})
    service.put_reference("iris", json.dumps(outputs(100, seed=1)).encode(), "application/json")
    with service.write_slot():  # another write in progress
        with pytest.raises(Overloaded) as refused:
            send(service, outputs(10, seed=2))
        assert refused.value.retry_after >= 1
    assert send(service, outputs(10, seed=2)) == 10
    assert service.batches_rejected["iris", "overloaded"] == 1


def test_concurrent_writers_lose_nothing(tmp_path):
    service = service_with(tmp_path, Clock(START), window={"type": "sliding", "rows": 100_000},
                           limits={"max_concurrent_writes": 8})
    service.put_reference("iris", json.dumps(outputs(100, seed=1)).encode(), "application/json")
    accepted = []

    def writer(seed: int) -> None:
        for batch in range(10):
            accepted.append(send(service, outputs(20, seed=seed * 100 + batch)))

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == 6 * 10 * 20 == service.evaluate("iris").current_rows


@pytest.mark.parametrize(("document", "message"), [
    ({"models": {"m": {"columns": {}}}}, "at least one column"),
    ({"models": {"m": {"columns": {"a": "datetime"}}}}, "not one of numerical, categorical, text or embedding"),
    ({"models": {"m": {"columns": {"a": "numerical"}, "segments": ["a"]}}}, "categorical columns"),
    ({"models": {"m": {"columns": {"a": "numerical"}, "methods": {"a": "chisquare"}}}}, "does not apply"),
    ({"models": {"m": {"columns": {"a": "numerical"}, "window": {"type": "tumbling", "duration": "5m",
                                                                   "rows": 10}}}}, "not both"),
    ({"models": {"m": {"columns": {"a": "numerical"}, "reference": {"rolling": {"offset": "30d",
                                                                                  "duration": "1h"}}}}},
     "retention"),
    ({"limits": {"max_models": 0}}, "positive whole number"),
    ({"auth": {"write_tokens": ["short"]}}, "at least 16 characters"),
    ({"auth": {"write_tokens": ["caf\u00e9-0123456789abcdef"]}}, "printable ASCII"),
    ({"auth": {"read_tokens": ["tab\tinside-0123456789abcdef"]}}, "printable ASCII"),
    ({"storage": {"retention": "soon"}}, "invalid duration"),
    ({"colour": "blue"}, "unknown setting"),
])
def test_bad_configs_are_refused_with_the_setting_named(document, message):
    with pytest.raises(service_config.ConfigError, match=message):
        service_config.parse(document)


def test_a_non_ascii_token_file_is_refused_at_load(tmp_path):
    (tmp_path / "tokens").write_bytes(b"caf\xc3\xa9-0123456789abcdef\n")
    with pytest.raises(service_config.ConfigError, match="printable ASCII"):
        service_config.parse({"auth": {"write_tokens_file": "tokens"}}, base=tmp_path)
    (tmp_path / "tokens").write_bytes(b"\xff\xfe-0123456789abcdef\n")  # not even UTF-8
    with pytest.raises(service_config.ConfigError, match="write_tokens_file"):
        service_config.parse({"auth": {"write_tokens_file": "tokens"}}, base=tmp_path)


def test_a_batch_id_is_stored_once_however_often_it_is_sent(tmp_path):
    service = service_with(tmp_path, Clock(START), window={"type": "sliding", "rows": 10_000})
    service.put_reference("iris", json.dumps(outputs(100, seed=1)).encode(), "application/json")
    body = json.dumps(outputs(30, seed=2)).encode()
    first = service.ingest("iris", body, "application/json", batch_id="batch-1")
    again = service.ingest("iris", body, "application/json", batch_id="batch-1")
    assert (first.first, first.rows, first.replayed) == (0, 30, False)
    assert (again.first, again.rows, again.replayed) == (0, 30, True)
    assert service.ingest("iris", body, "application/json", batch_id="batch-2").first == 30
    service.close()
    reopened = service_with(tmp_path, Clock(START))  # remembered across restarts
    assert reopened.ingest("iris", body, "application/json", batch_id="batch-1").replayed
    assert reopened.evaluate("iris").current_rows == 60 and reopened.rows_accepted["iris"] == 0


def test_concurrent_report_requests_build_it_once_and_never_starve_evaluations(tmp_path, monkeypatch):
    service = service_with(tmp_path, Clock(START), limits={"max_concurrent_evaluations": 1})
    service.put_reference("iris", json.dumps(outputs(300, seed=1)).encode(), "application/json")
    send(service, outputs(300, seed=2))
    service.evaluate("iris")
    builds, release = [], threading.Event()
    real = service._build_report

    def slow_build(model, latest):
        builds.append(latest.evaluated_at)
        release.wait(30)
        return real(model, latest)

    monkeypatch.setattr(service, "_build_report", slow_build)
    pages = []
    readers = [threading.Thread(target=lambda: pages.append(service.report("iris"))) for _ in range(12)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 10
    while not builds and time.monotonic() < deadline:
        time.sleep(0.01)
    # while the report is being built, the scheduler's evaluation (which never waits) still runs
    service.model("iris").next_due = 0
    service.run_due()
    assert service.evaluations["iris", "success"] == 2
    release.set()
    for reader in readers:
        reader.join(60)
    assert len(builds) == 1 and len(pages) == 12 and len({id(page) for page in pages}) == 1


def test_ready_while_the_store_answers(tmp_path):
    service = service_with(tmp_path, Clock(START))
    assert service.ready()
    service.close()
    assert not service.ready()
