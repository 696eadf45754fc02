"""--simulate moves like a real node: values change, counters only rise, XIDs and throttling come and go."""

from __future__ import annotations

import pytest

from fleetscope.exporters.gpu.collector import GpuCollector
from fleetscope.simulation.gpu import Simulation, scaled_recording, simulated_nvml
from fleetscope.simulation.nvml import FakeNvml
from tests.support.exposition import render, samples, value


def _run(simulation: Simulation, gpus: int, steps: int, step_seconds: float) -> list[FakeNvml]:
    """Drives the simulation's clock by hand and returns the fake after each step's reading."""
    fake = FakeNvml(scaled_recording(gpus))
    simulation.fake = fake
    pages = []
    collector = GpuCollector(fake, "sim", xid_events=True)
    try:
        for step in range(steps):
            for device in fake.devices:
                simulation.animate(device, 1_000_000.0 + step * step_seconds)
            pages.append(render(collector.collect()))
    finally:
        collector.close()
    return pages


def test_counters_never_decrease_and_gauges_move():
    pages = _run(Simulation(seed=7, xid_mean_interval=120, throttle_mean_interval=60), gpus=2, steps=60,
                 step_seconds=10)
    previous: dict = {}
    moved = set()
    for page in pages:
        for name, labels, reading in samples(page):
            key = (name, tuple(sorted(labels.items())))
            if name.endswith("_total") and key in previous:
                assert reading >= previous[key], f"{name} went down"
            if key in previous and reading != previous[key]:
                moved.add(name)
            previous[key] = reading
    assert {"fleetscope_gpu_power_watts", "fleetscope_gpu_temperature_celsius", "fleetscope_gpu_utilization_ratio",
            "fleetscope_gpu_energy_joules_total", "fleetscope_gpu_nvlink_transmit_bytes_total"} <= moved


def test_throttling_and_xids_appear_now_and_then():
    pages = _run(Simulation(seed=3, xid_mean_interval=100, throttle_mean_interval=50), gpus=2, steps=60,
                 step_seconds=10)
    throttled = [v for page in pages for n, labels, v in samples(page)
                 if n == "fleetscope_gpu_clock_event_active"
                 and labels["reason"] in ("sw_power_cap", "hw_thermal_slowdown")]
    assert 1 in throttled and 0 in throttled
    assert sum(v for n, labels, v in samples(pages[-1]) if n == "fleetscope_gpu_clock_event_duration_seconds_total"
               and labels["reason"] == "sw_power_cap") > 0


def test_same_seed_same_story():
    a = _run(Simulation(seed=11), gpus=1, steps=10, step_seconds=30)
    b = _run(Simulation(seed=11), gpus=1, steps=10, step_seconds=30)

    def strip(page):
        return [s for s in samples(page) if "timestamp" not in s[0]]

    assert [strip(p) for p in a] == [strip(p) for p in b]


@pytest.mark.parametrize("gpus", [1, 8, 64])
def test_any_number_of_gpus_have_distinct_identities(gpus):
    fake = simulated_nvml(gpus=gpus)
    uuids = {d.values["nvmlDeviceGetUUID"] for d in fake.devices}
    buses = {d.values["nvmlDeviceGetPciInfo"]["busId"] for d in fake.devices}
    assert len(uuids) == len(buses) == gpus


def test_scheduled_xids_arrive_on_their_gpu_after_their_delay():
    import time

    from fleetscope.simulation.gpu import ScheduledXid

    simulation = Simulation(seed=1, xid_mean_interval=1e12,
                            scheduled_xids=[ScheduledXid(after=30, gpu=1, code=79), ScheduledXid(60, 0, 48)])
    fake = FakeNvml(scaled_recording(2))
    simulation.fake = fake
    collector = GpuCollector(fake, "sim", xid_events=True)

    def xids() -> set[tuple[str, str]]:
        return {(labels["gpu"], labels["xid"]) for name, labels, _ in samples(render(collector.collect()))
                if name == "fleetscope_gpu_xid_errors_total"}

    try:
        assert xids() == set()  # the collector starts watching for XID events
        for step in range(6):  # 0 to 50 s after the start: only the first is due
            for device in fake.devices:
                simulation.animate(device, 1_000_000.0 + step * 10)
        deadline = time.monotonic() + 10
        while not xids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert xids() == {("1", "79")}
        # XID 79 is the GPU falling off the bus: it is down, and none of its values are served.
        page = render(collector.collect())
        assert value(page, "fleetscope_gpu_up", gpu="1") == 0 and value(page, "fleetscope_gpu_up", gpu="0") == 1
        assert not [name for name, labels, _ in samples(page) if labels.get("gpu") == "1" and name not in (
            "fleetscope_gpu_up", "fleetscope_gpu_last_update_timestamp_seconds", "fleetscope_gpu_xid_events_total",
            "fleetscope_gpu_xid_errors_total", "fleetscope_gpu_last_xid", "fleetscope_gpu_last_xid_timestamp_seconds")]
    finally:
        collector.close()


@pytest.mark.parametrize("flag", ["--simulate.xid=soon:1:79", "--simulate.xid=30s:x:79", "--simulate.xid=30s:1"])
def test_malformed_scheduled_xids_are_refused(flag, capsys):
    from fleetscope.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["exporter", "--simulate", flag])
    assert exit_info.value.code == 2 and "AFTER:GPU:CODE" in capsys.readouterr().err


def test_scheduled_xid_on_a_gpu_the_node_lacks_is_refused():
    import argparse

    from fleetscope import log
    from fleetscope.exporters import command
    from fleetscope.simulation import node

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    node.add_arguments(parser)
    args = parser.parse_args(["--simulate", "--simulate.gpus=2", "--simulate.xid=1s:2:79"])
    with pytest.raises(log.UserError, match="GPU 2"):
        node.build(args)


def test_a_scheduled_xid_154_leaves_the_gpu_asking_for_a_reset():
    from fleetscope.simulation.gpu import ScheduledXid

    simulation = Simulation(seed=1, xid_mean_interval=1e12, scheduled_xids=[ScheduledXid(after=5, gpu=0, code=154)])
    fake = FakeNvml(scaled_recording(1))
    simulation.fake = fake
    collector = GpuCollector(fake, "sim", xid_events=False)
    try:
        for step in range(3):
            simulation.animate(fake.devices[0], 1_000_000.0 + step * 5)
        page = render(collector.collect())
        assert value(page, "fleetscope_gpu_recovery_action_state", action="gpu_reset") == 1
        assert value(page, "fleetscope_gpu_recovery_action_state", action="none") == 0
    finally:
        collector.close()
