"""The fleet simulator: many nodes, one target each, each serving what `fleetscope exporter --simulate`
serves for one node; faults scheduled on a chosen node."""

from __future__ import annotations

import argparse
import time
import urllib.request

import pytest

from fleetscope.exporters import command
from fleetscope.exporters.collectors import AVAILABLE
from fleetscope.exporters.registry import ExporterRegistry
from fleetscope.exporters.server import encode
from fleetscope.simulation import node
from fleetscope.simulation.fleet import Fault, SimulatedFleet
from fleetscope.simulation.fleet_command import add_arguments
from tests.support.exposition import samples, value, values


def _page(fleet: SimulatedFleet, cluster: str, hostname: str) -> str:
    with urllib.request.urlopen(f"http://{fleet.address}/{cluster}/{hostname}/metrics", timeout=10) as response:
        return response.read().decode()


def _single_node_page() -> str:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    node.add_arguments(parser)
    args = parser.parse_args(["--simulate", "--collector.hostname=one", "--collector.gpu.poll-interval=0s",
                              "--collector.fabric.poll-interval=0s", "--collector.nccl.poll-interval=0s"])
    node.prepare(args)
    registry = ExporterRegistry([source for option in AVAILABLE for source in option.build(args)])
    try:
        list(registry.collect())  # GPM's rates need a first sample, as the fleet's nodes have had
        return encode(list(registry.collect())).decode()
    finally:
        registry.close()


def test_each_node_serves_what_the_simulated_exporter_serves_under_its_own_identity():
    # Not compared: per-process utilization, which NVML samples only once time has passed since the last
    # poll, and the NCCL RAS querier's up, which a simulated node has no RAS service to ask.
    unsampled = {"fleetscope_gpu_process_utilization_ratio", "fleetscope_nccl_ras_up"}
    single = {name for name, _, _ in samples(_single_node_page())} - unsampled
    with SimulatedFleet(["east", "west"], 2, refresh_interval=0.5) as fleet:
        # GPM's rates need a node refreshed twice, some time apart: on a loaded machine that can take a while.
        deadline = time.monotonic() + 30
        while True:
            pages = {(node.cluster, node.hostname): _page(fleet, node.cluster, node.hostname) for node in fleet.nodes}
            if all({name for name, _, _ in samples(page)} >= single for page in pages.values()) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert set(pages) == {("east", "east-node-0000"), ("east", "east-node-0001"),
                              ("west", "west-node-0000"), ("west", "west-node-0001")}
        uuids = set()
        for (_, hostname), page in pages.items():
            assert {name for name, _, _ in samples(page)} - unsampled == single, hostname
            assert {labels["hostname"] for _, labels, _ in samples(page) if "hostname" in labels} == {hostname}
            node_uuids = {labels["uuid"] for name, labels, _ in samples(page) if name == "fleetscope_gpu_up"}
            assert len(node_uuids) == 8
            uuids |= node_uuids
        assert len(uuids) == 32, "every GPU of the fleet has its own UUID"
        # Each cluster's targets: one per node, its own path, the instance a real exporter would have, its cluster.
        assert fleet.targets("west") == [
            {"targets": [fleet.address], "labels": {"__metrics_path__": f"/west/west-node-000{i}/metrics",
                                                   "instance": f"west-node-000{i}:9835", "cluster": "west"}}
            for i in range(2)]


def test_faults_land_on_the_node_they_name():
    faults = [Fault.parse("west/west-node-0001:0:xid:5:79"), Fault.parse("east/east-node-0000:0:link-flap:2:60")]
    with SimulatedFleet(["east", "west"], 2, refresh_interval=0.5, faults=faults) as fleet:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            west, east = _page(fleet, "west", "west-node-0001"), _page(fleet, "east", "east-node-0000")
            if value(west, "fleetscope_gpu_up", gpu="5") == 0 and \
                    values(east, "fleetscope_fabric_port_state", device="mlx5_2") == [1.0]:
                break
            time.sleep(0.25)
        assert value(west, "fleetscope_gpu_up", gpu="5") == 0  # fallen off the bus: nothing else is served of it
        assert value(east, "fleetscope_fabric_port_link_downed_total", device="mlx5_2") >= 1
        assert values(east, "fleetscope_fabric_port_state", device="mlx5_2") == [1.0]  # down
        for cluster, hostname in (("east", "east-node-0001"), ("west", "west-node-0000")):
            other = _page(fleet, cluster, hostname)
            assert values(other, "fleetscope_gpu_xid_errors_total", xid="79") == []
            assert set(values(other, "fleetscope_gpu_up")) == {1.0}


@pytest.mark.parametrize("text", ["east/node:5:xid:1", "east:5:xid:1:79", "east/node:soon:xid:1:79",
                                  "east/node:5:reboot:1", "east/node:5:link-flap:one"])
def test_malformed_faults_are_refused(text):
    with pytest.raises(ValueError, match="CLUSTER/HOST:AFTER"):
        Fault.parse(text)


def test_a_fault_on_a_node_the_fleet_lacks_is_refused_before_anything_starts(capsys):
    with pytest.raises(ValueError, match="no simulated node east/east-node-0007"):
        SimulatedFleet(["east"], 2, faults=[Fault.parse("east/east-node-0007:1:xid:0:79")])
    with pytest.raises(ValueError, match="no GPU 8 on east-node-0001: it has 8"):
        SimulatedFleet(["east"], 2, faults=[Fault.parse("east/east-node-0001:1:xid:8:79")])
    with pytest.raises(ValueError, match="no fabric device 9 on east-node-0001: it has 9"):
        SimulatedFleet(["east"], 2, faults=[Fault.parse("east/east-node-0001:1:link-flap:9")])
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--clusters", "east,,west"])
    assert "names are letters" in capsys.readouterr().err
