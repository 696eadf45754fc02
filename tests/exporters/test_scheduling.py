"""The registry guards and times collectors; polling serves fresh results and never stale ones."""

from __future__ import annotations

import threading
import time

import pytest

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import gpu as gpu_metrics
from fleetscope.exporters.registry import ExporterRegistry
from fleetscope.exporters.scheduling import OnScrape, Polled
from tests.support.exposition import render, value, values


class Counting:
    """A collector whose every collection returns one more; it can be made to fail or hang."""

    def __init__(self, name: str = "counting"):
        self.name = name
        self.calls = 0
        self.fail = False
        self.hang = threading.Event()
        self.hang.set()
        self.closed = False

    def collect(self):
        self.hang.wait()
        self.calls += 1
        if self.fail:
            raise RuntimeError("sensor unplugged")
        out = FamilySet()
        out.add(gpu_metrics.XID_EVENTS, {"gpu": "0"}, self.calls)
        return out.metrics()

    def close(self):
        self.closed = True


def page(registry: ExporterRegistry) -> str:
    return render(registry.collect())


def test_a_failing_collector_is_marked_and_the_others_are_served():
    good, bad = Counting("good"), Counting("bad")
    bad.fail = True
    registry = ExporterRegistry([OnScrape(good), OnScrape(bad)])
    text = page(registry)
    assert value(text, "fleetscope_exporter_collector_success", collector="good") == 1
    assert value(text, "fleetscope_exporter_collector_success", collector="bad") == 0
    assert value(text, "fleetscope_exporter_collector_duration_seconds", collector="bad") >= 0
    assert values(text, "fleetscope_exporter_collector_last_success_timestamp_seconds", collector="bad") == []
    assert value(text, "fleetscope_gpu_xid_events_total") == 1
    assert value(text, "fleetscope_build_info") == 1
    assert values(text, "process_start_time_seconds") == []  # a page of a simulated node is no process


def test_the_exporters_own_process_is_served_with_its_metrics():
    from fleetscope.self_metrics import RuntimeCollector

    text = page(ExporterRegistry([OnScrape(Counting())], RuntimeCollector()))
    assert value(text, "process_start_time_seconds") > 0
    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "fleetscope_build_info") == 1


def test_on_scrape_collects_at_every_scrape():
    collector = Counting()
    registry = ExporterRegistry([OnScrape(collector)])
    page(registry)
    assert value(page(registry), "fleetscope_gpu_xid_events_total") == 2


def test_polled_serves_the_cached_result_between_polls():
    collector = Counting()
    polled = Polled(collector, interval=3600)
    polled.start()
    registry = ExporterRegistry([polled])
    for _ in range(3):
        assert value(page(registry), "fleetscope_gpu_xid_events_total") == 1
    assert collector.calls == 1
    polled.close()
    assert collector.closed


def test_polled_keeps_polling_in_the_background():
    collector = Counting()
    polled = Polled(collector, interval=0.05)
    polled.start()
    try:
        deadline = time.monotonic() + 10
        while collector.calls < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert collector.calls >= 3
    finally:
        polled.close()


def test_a_stuck_poll_is_reported_instead_of_serving_stale_values():
    collector = Counting()
    polled = Polled(collector, interval=0.05, max_age=0.3)
    polled.start()
    collector.hang.clear()  # the next poll blocks, as a hung NVML call would
    try:
        registry = ExporterRegistry([polled])
        time.sleep(0.5)
        text = page(registry)
        assert value(text, "fleetscope_exporter_collector_success", collector="counting") == 0
        assert values(text, "fleetscope_gpu_xid_events_total") == []
        # When it last succeeded is still said, so an alert can show how old the data is.
        assert value(text, "fleetscope_exporter_collector_last_success_timestamp_seconds", collector="counting") > 0
    finally:
        collector.hang.set()
        polled.close()


def test_poll_interval_must_be_positive():
    with pytest.raises(ValueError):
        Polled(Counting(), interval=0)


def test_the_page_reuses_a_polled_collectors_rendering_until_the_next_poll(monkeypatch):
    from fleetscope.exporters import server

    collector = Counting()
    polled = Polled(collector, interval=3600)
    polled.start()
    renderer = server.PageRenderer(ExporterRegistry([polled, OnScrape(Counting("live"))]))
    encoded = []
    real = server.encode
    monkeypatch.setattr(server, "encode", lambda metrics, *a: encoded.append(len(metrics)) or real(metrics, *a))
    first, _ = renderer.render("")
    second, _ = renderer.render("")
    # Own metrics and the on-scrape collector each time; the polled one only once.
    assert len(encoded) == 5
    # The polled collector's value stays at its one poll; the on-scrape one has collected twice.
    assert values(second.decode(), "fleetscope_gpu_xid_events_total") == [1, 2]
    polled.refresh()
    renderer.render("")
    assert len(encoded) == 8
    polled.close()
    assert first.count(b"# TYPE fleetscope_exporter_collector_success") == 1


def test_openmetrics_page_has_one_eof_and_parses():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    from fleetscope.exporters import server

    renderer = server.PageRenderer(ExporterRegistry([OnScrape(Counting("a")), OnScrape(Counting("b"))]))
    body, content_type = renderer.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.count(b"# EOF") == 1 and body.endswith(b"# EOF\n")
    with pytest.raises(ValueError):  # both collectors serve the same family: OpenMetrics refuses duplicates
        list(text_string_to_metric_families(body.decode()))
    body, _ = server.PageRenderer(ExporterRegistry([OnScrape(Counting("a"))])).render(
        "application/openmetrics-text; version=1.0.0")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert "fleetscope_gpu_xid_events" in names and "fleetscope_exporter_collector_success" in names


def test_ready_only_after_the_first_collection():
    from fleetscope.exporters.server import routes
    from fleetscope.web.server import Request

    slow = Counting("gpu")
    slow.hang.clear()  # the first collection takes as long as NVML's start on a big node can
    polled = Polled(slow, interval=3600)
    polled.start(wait=False)
    ready = routes(ExporterRegistry([polled, OnScrape(Counting("fabric"))]), "/metrics")["/-/ready"]
    request = Request("GET", "/-/ready", {}, {})
    try:
        answer = ready(request)
        assert answer.status == 503 and b"first collection of gpu" in answer.body
    finally:
        slow.hang.set()
    assert polled.wait_ready(10)
    assert ready(request).status == 200
    polled.close()


def test_hung_background_collectors_never_delay_the_page_and_are_reported_stale(monkeypatch):
    """Every collector as the exporter builds it is polled, with the staleness rule: here each one's
    second read hangs (a stuck sysfs read, NVML call or file system), the page is still served at
    once from what was read, and once the reading is older than the rule allows it is marked failed
    and its series withheld, never served stale."""
    from fleetscope.cli import build_parser
    from fleetscope.exporters.fabric.collector import FabricCollector
    from fleetscope.exporters.gpu.collector import GpuCollector
    from fleetscope.exporters.nccl.collector import NcclCollector
    from fleetscope.exporters.server import PageRenderer
    from fleetscope.simulation.node import build

    release = threading.Event()
    for cls in (GpuCollector, FabricCollector, NcclCollector):
        real, calls = cls.collect, []

        def collect(self, real=real, calls=calls):
            calls.append(1)
            if len(calls) > 1:
                release.wait(60)
            return real(self)

        monkeypatch.setattr(cls, "collect", collect)
    interval = 0.2
    args = build_parser().parse_args(["exporter", "--simulate", "--web.listen-address=127.0.0.1:0",
                                      *(f"--collector.{name}.poll-interval={interval}s"
                                        for name in ("gpu", "fabric", "nccl"))])
    registry, server = build(args)
    renderer = PageRenderer(registry)
    try:
        assert registry.wait_ready(30), registry.not_ready()
        first = renderer.render("")[0].decode()
        for name in ("gpu", "fabric", "nccl"):
            assert value(first, "fleetscope_exporter_collector_success", collector=name) == 1
        deadline = time.monotonic() + 30  # the rule: older than max(3 intervals, interval + 10 s)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            page = renderer.render("")[0].decode()
            assert time.perf_counter() - started < 1.0  # never waits for a hung collector
            if all(values(page, "fleetscope_exporter_collector_success", collector=name) == [0]
                   for name in ("gpu", "fabric", "nccl")):
                break
            time.sleep(0.5)
        for name, series in (("gpu", "fleetscope_gpu_power_watts"), ("fabric", "fleetscope_fabric_port_state"),
                             ("nccl", "fleetscope_nccl_inspector_files")):
            assert value(page, "fleetscope_exporter_collector_success", collector=name) == 0, name
            assert values(page, series) == [], name
            # when it last succeeded stays on the page, for the alert that says how old the data is
            assert value(page, "fleetscope_exporter_collector_last_success_timestamp_seconds", collector=name) > 0
    finally:
        release.set()
        registry.close()
