"""Hang detection from NCCL RAS, against a service speaking its protocol on loopback."""

from __future__ import annotations

import json

import pytest

from fleetscope.exporters.nccl import ras
from fleetscope.localstack.process import free_port
from tests.support.exposition import render, value, values
from tests.support.ras import FakeRas, report

COMM = "0xa1349768e9517ed7"


@pytest.fixture
def service():
    fake = FakeRas()
    yield fake
    fake.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def collector_for(tmp_path, address, clock, timeout_factor: float = 1.0) -> ras.RasCollector:
    return ras.RasCollector(address, "node-a", hang_after=60, timeout_factor=timeout_factor, clock=clock)


def test_a_healthy_job(tmp_path, service):
    service.answer = report({COMM: {0: 5, 1: 5}})
    text = render(collector_for(tmp_path, service.address, Clock()).collect())
    assert value(text, "fleetscope_nccl_ras_up") == 1
    assert value(text, "fleetscope_nccl_ras_comm_ranks", comm_id=COMM) == 2
    assert value(text, "fleetscope_nccl_ras_comm_hung", comm_id=COMM) == 0
    assert values(text, "fleetscope_nccl_ras_lagging_rank_collectives") == []


def test_ranks_that_disagree_and_stop_moving_are_a_hang(tmp_path, service):
    clock = Clock()
    collector = collector_for(tmp_path, service.address, clock)
    service.answer = report({COMM: {0: 9, 1: 9, 2: 7, 3: 9}})
    text = render(collector.collect())
    assert value(text, "fleetscope_nccl_ras_comm_hung", comm_id=COMM) == 0  # not stalled long enough yet
    assert value(text, "fleetscope_nccl_ras_lagging_rank_collectives", comm_id=COMM, rank="2") == 2
    clock.now += 90
    text = render(collector.collect())
    assert value(text, "fleetscope_nccl_ras_comm_hung", comm_id=COMM) == 1
    assert value(text, "fleetscope_nccl_ras_comm_min_collectives", comm_id=COMM) == 7
    service.answer = report({COMM: {0: 12, 1: 12, 2: 12, 3: 12}})  # it recovered
    clock.now += 5
    assert value(render(collector.collect()), "fleetscope_nccl_ras_comm_hung", comm_id=COMM) == 0


def test_a_job_that_is_merely_slow_is_not_hung(tmp_path, service):
    clock = Clock()
    collector = collector_for(tmp_path, service.address, clock)
    for step in range(5):
        service.answer = report({COMM: {0: 10 + step, 1: 9 + step}})  # one behind, but moving
        clock.now += 30
        assert value(render(collector.collect()), "fleetscope_nccl_ras_comm_hung", comm_id=COMM) == 0


def test_missing_dead_and_erring_ranks_from_nccl_2_28_9s_invalid_json(tmp_path, service):
    service.answer = report({COMM: {0: 4}}, missing={COMM: [(1, True)]}, errors={COMM: [0]}, missing_comma=True)
    with pytest.raises(json.JSONDecodeError):
        json.loads(service.answer)  # exactly as NCCL 2.28.9 writes it
    text = render(collector_for(tmp_path, service.address, Clock()).collect())
    assert value(text, "fleetscope_nccl_ras_comm_missing_ranks", comm_id=COMM) == 1
    assert value(text, "fleetscope_nccl_ras_comm_dead_ranks", comm_id=COMM) == 1
    assert value(text, "fleetscope_nccl_ras_comm_error_ranks", comm_id=COMM) == 1
    assert value(text, "fleetscope_nccl_ras_comm_ranks", comm_id=COMM) == 2


def test_no_job_on_the_node_is_not_an_error(tmp_path):
    text = render(collector_for(tmp_path, ("127.0.0.1", free_port()), Clock()).collect())
    assert value(text, "fleetscope_nccl_ras_up") == 0


@pytest.mark.parametrize("answer, fmt", [("not json at all", "OK"), (report({}), "ERROR unknown command")])
def test_bad_answers_mark_ras_down(tmp_path, service, answer, fmt):
    service.answer, service.format_answer = answer, fmt
    text = render(collector_for(tmp_path, service.address, Clock()).collect())
    assert value(text, "fleetscope_nccl_ras_up") == 0


def test_many_lagging_ranks_are_bounded(tmp_path, service):
    ranks = {rank: 3 for rank in range(100)}
    ranks[0] = 4
    service.answer = report({COMM: ranks})
    text = render(collector_for(tmp_path, service.address, Clock()).collect())
    assert len(values(text, "fleetscope_nccl_ras_lagging_rank_collectives")) == ras.MAX_LAGGING_RANKS


def test_parse_report_refuses_what_is_not_a_report():
    with pytest.raises(ras.RasError):
        ras.parse_report('{"communicators": 5}')
    assert ras.parse_report(report({})).get("communicators") == []


def test_a_report_slowed_by_an_unresponsive_peer_is_waited_for_as_ncclras_waits(tmp_path, service):
    """The service answers STATUS only after a collective leg to a dead peer times out (5 s, plus 5 s
    of extra): ncclras waits 11 s, and so does the collector, where a 10 s wait would call RAS down."""
    assert ras.report_timeout() == 11.0
    service.answer = report({COMM: {0: 9}}, missing={COMM: [(1, False)]})
    service.delay = 10.3
    text = render(collector_for(tmp_path, service.address, Clock()).collect())
    assert value(text, "fleetscope_nccl_ras_up") == 1
    assert value(text, "fleetscope_nccl_ras_comm_missing_ranks", comm_id=COMM) == 1


def test_the_wait_stretches_with_the_jobs_ras_timeout_factor(tmp_path, service):
    """NCCL_RAS_TIMEOUT_FACTOR stretches the service's legs; a factor of 0.05 makes the wait 1.5 s."""
    assert ras.report_timeout(0.05) == pytest.approx(1.5)
    service.answer = report({COMM: {0: 3, 1: 3}})
    collector = collector_for(tmp_path, service.address, Clock(), timeout_factor=0.05)
    service.delay = 1.1
    assert value(render(collector.collect()), "fleetscope_nccl_ras_up") == 1
    service.delay = 1.9
    assert value(render(collector.collect()), "fleetscope_nccl_ras_up") == 0


def test_the_exporter_queries_ras_on_its_own_thread_so_a_slow_report_delays_nothing_else(service):
    import argparse
    import time

    from fleetscope.exporters import command
    from fleetscope.simulation import node

    service.answer = report({COMM: {0: 9, 1: 9}})
    service.delay = 5.0
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    node.add_arguments(parser)
    args = parser.parse_args(["--simulate", "--no-collector.gpu", "--no-collector.fabric", "--no-collector.health",
                              f"--collector.nccl.ras-address=127.0.0.1:{service.address[1]}",
                              "--web.listen-address=127.0.0.1:0"])
    registry, server = node.build(args)
    try:
        sources = {source.name: source for source in registry.sources}
        assert set(sources) == {"nccl", "nccl_ras"}
        started = time.monotonic()
        deadline = started + 30
        while not sources["nccl"].ready and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sources["nccl"].ready and time.monotonic() - started < 4, "the Inspector files waited for RAS"
        assert not sources["nccl_ras"].ready
        assert registry.wait_ready(30), registry.not_ready()
        assert value(render(sources["nccl_ras"].latest().metrics), "fleetscope_nccl_ras_up") == 1
    finally:
        registry.close()
        server.shutdown()
