"""A bounded /metrics page for the drift service (issue 35): limits.max_series holds whatever models, columns and
segment values clients create; what is left out is counted, said in /drift and logged once; a model's own limits
cannot multiply past the total; the evaluations' series are rendered once per evaluation, not per scrape."""

from __future__ import annotations

import json
import logging
import re
import threading

import numpy as np
import pytest

from fleetscope.drift import catalog
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import DriftService
from tests.drift.support import call
from tests.support.clock import Clock
from tests.support.exposition import samples, value

LIMITS = {"max_series": 1000, "max_models": 5, "max_columns": 6, "max_segments": 4}


def rows(count: int, columns: int, segments: int, seed: int, shift: float = 0.0) -> bytes:
    rng = np.random.default_rng(seed)
    found = [{**{f"c{index}": float(rng.normal(shift)) for index in range(columns)},
              "region": f"r{rng.integers(segments)}"} for _ in range(count)]
    return json.dumps(found).encode()


def new_model(service: DriftService, name: str, columns: int = 5, segments: int = 4) -> None:
    service.put_reference(name, rows(400, columns, segments, seed=1), "application/json", categorical=["region"],
                          segments=["region"])
    service.ingest(name, rows(400, columns, segments, seed=2, shift=1.0), "application/json")


def evaluation_series(page: str, model: str) -> int:
    return sum(1 for name, labels, _ in samples(page) if labels.get("model") == model and name in EVALUATION_NAMES)


EVALUATION_NAMES = {spec.name for spec in (catalog.SCORE, catalog.SCORE_ERROR_BOUND, catalog.THRESHOLD,
                                            catalog.DETECTED, catalog.SHARE, catalog.DATASET_DETECTED,
                                            catalog.WINDOW_ROWS, catalog.MISSING, catalog.NEW_CATEGORIES,
                                            catalog.OUT_OF_RANGE, catalog.DECISION_CERTAIN, catalog.UNCERTAIN_SHARE)}


def test_the_page_holds_max_series_and_says_what_it_left_out(tmp_path, caplog):
    document = {"storage": {"path": str(tmp_path / "store.sqlite")}, "evaluation_interval": "1h", "limits": LIMITS}
    service = DriftService(service_config.parse(document), clock=Clock(1_800_000_000.0))
    page = MetricsPage(service)  # as the HTTP API makes it at start: its counters count against the limit
    for name in ("a", "b", "c", "d"):
        new_model(service, name)
    with caplog.at_level(logging.WARNING, logger="fleetscope.drift"):
        for name in ("a", "b", "c", "d"):
            service.evaluate(name)
        text = page.render().decode()
        assert len(samples(text)) <= LIMITS["max_series"]
        # First come, first served: the models evaluated first whole; the page full for the rest.
        dropped = [service.model(name).latest.series_dropped for name in "abcd"]
        whole = evaluation_series(text, "a")
        assert dropped[0] == 0 and dropped[-1] > 0 and sorted(dropped) == dropped, dropped
        for name, left_out in zip("abcd", dropped, strict=True):
            assert value(text, "fleetscope_drift_dropped_series", model=name) == left_out
            assert evaluation_series(text, name) + left_out == whole  # whole blocks kept, the rest counted
            if left_out:
                drift = service.model(name).latest.to_json()
                assert drift["series_dropped"]["series"] == left_out
                assert "limits.max_series" in drift["series_dropped"]["reason"]
        assert value(text, "fleetscope_drift_max_series") == LIMITS["max_series"]
        for name in ("a", "b", "c", "d"):  # a second round: nothing newly logged, nobody pushed off
            service.evaluate(name)
        again = page.render().decode()
    assert [evaluation_series(again, name) for name in "abcd"] == [evaluation_series(text, name) for name in "abcd"]
    warnings = [record for record in caplog.records if "limits.max_series" in record.getMessage()]
    assert sorted(record.model for record in warnings) == [name for name, left_out in zip("abcd", dropped,
                                                                                            strict=True) if left_out]
    service.close()


def test_the_evaluations_are_rendered_once_per_evaluation_not_per_scrape(tmp_path):
    document = {"storage": {"path": str(tmp_path / "store.sqlite")}, "limits": LIMITS}
    service = DriftService(service_config.parse(document), clock=Clock(1_800_000_000.0))
    new_model(service, "a")
    service.evaluate("a")
    page = MetricsPage(service)
    first = page.render()
    rendered = page._rendered[1]
    pages = [b""] * 8
    scrapers = [threading.Thread(target=lambda index: pages.__setitem__(index, page.render()), args=(index,))
                for index in range(8)]
    for thread in scrapers:
        thread.start()
    for thread in scrapers:
        thread.join(60)
    assert page._rendered[1] is rendered  # not rendered again
    assert all(_without_runtime(found) == _without_runtime(first) for found in pages)
    service.ingest("a", rows(10, 5, 4, seed=3), "application/json")  # a counter moves at once
    assert value(page.render().decode(), "fleetscope_drift_rows_accepted_total", model="a") == 410
    assert page._rendered[1] is rendered
    service.evaluate("a")
    page.render()
    assert page._rendered[1] is not rendered
    service.close()


def test_one_models_limits_cannot_multiply_past_the_total():
    with pytest.raises(service_config.ConfigError, match=r"22,233 series for counters .* and 12,684 for one model's "
                                                         r"evaluation .* limits.max_series \(30,000\)"):
        service_config.parse({"limits": {"max_series": 30_000}})
    assert service_config.parse({}).limits.max_series == 50_000  # the defaults fit


def test_a_tokenless_client_cannot_grow_the_page_past_the_limit(drift_service):
    """The audit's shape, scaled down: models of many columns and segment values made by a client without a token
    on loopback; the real service's page stays within limits.max_series and concurrent scrapes all answer."""
    address = drift_service("evaluation_interval: 1h\nlimits: {max_series: 3000, max_models: 8, max_columns: 20, "
                            "max_segments: 10}\n")
    for index in range(8):
        reference = rows(300, 19, 20, seed=index)
        query = "categorical=region&segments=region"
        assert call(address, "PUT", f"/v1/models/m{index}/reference?{query}", reference)[0] == 200
        assert call(address, "POST", f"/v1/models/m{index}/outputs", rows(300, 19, 20, seed=index + 50))[0] == 202
        assert call(address, "POST", f"/v1/models/m{index}/evaluate")[0] == 200
    answers: list[tuple[int, str]] = []
    scrapers = [threading.Thread(target=lambda: answers.append(call(address, "GET", "/metrics")[:2]))
                for _ in range(8)]
    for thread in scrapers:
        thread.start()
    for thread in scrapers:
        thread.join(120)
    assert [status for status, _ in answers] == [200] * 8
    page = answers[0][1]
    assert len(samples(page)) <= 3000
    assert sum(value(page, "fleetscope_drift_dropped_series", model=f"m{index}") for index in range(8)) > 0


def _without_runtime(page: bytes) -> list[bytes]:
    """The page but for the process's own CPU, memory and garbage-collector series, which move between scrapes."""
    return [line for line in page.splitlines() if not re.match(rb"(# (HELP|TYPE) )?(process_|python_gc_)", line)]
