"""The fabric collector against sysfs trees laid out as the kernel lays them out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetscope.exporters.fabric.collector import FabricCollector, parse_rate, parse_state
from fleetscope.simulation.fabric import SimulatedFabric
from tests.conftest import promtool_check_metrics
from tests.support.exposition import render, samples, value, values

# As a ConnectX-7 port on an NDR fabric reports them (words of 4 bytes for the data counters).
IB_PORT = {
    "state": "4: ACTIVE\n", "phys_state": "5: LinkUp\n", "rate": "400 Gb/sec (4X NDR)\n",
    "link_layer": "InfiniBand\n", "lid": "0x2a\n", "sm_lid": "0x1\n",
    "counters/port_xmit_data": "2500000000\n", "counters/port_rcv_data": "2400000000\n",
    "counters/port_xmit_packets": "9765625\n", "counters/port_rcv_packets": "9375000\n",
    "counters/symbol_error": "3\n", "counters/link_downed": "1\n", "counters/link_error_recovery": "2\n",
    "counters/port_xmit_wait": "123456\n", "counters/port_rcv_errors": "0\n", "counters/port_xmit_discards": "7\n",
    "counters/VL15_dropped": "0\n", "counters/local_link_integrity_errors": "0\n",
    "counters/excessive_buffer_overrun_errors": "0\n", "counters/port_rcv_remote_physical_errors": "0\n",
    "counters/port_rcv_switch_relay_errors": "0\n", "counters/port_xmit_constraint_errors": "0\n",
    "counters/port_rcv_constraint_errors": "0\n", "counters/unicast_xmit_packets": "9765600\n",
    "hw_counters/out_of_sequence": "12\n", "hw_counters/local_ack_timeout_err": "0\n",
    "hw_counters/lifespan": "10\n",  # not a counter of ours: ignored
}
ROCE_PORT = {
    "state": "4: ACTIVE\n", "phys_state": "5: LinkUp\n", "rate": "200 Gb/sec (4X HDR)\n", "link_layer": "Ethernet\n",
    "counters/port_xmit_data": "N/A (no PMA)\n", "counters/port_rcv_data": "100\n",
    "hw_counters/np_cnp_sent": "55\n", "hw_counters/rp_cnp_handled": "50\n",
    "hw_counters/np_ecn_marked_roce_packets": "60\n",
}


def make_device(sysfs: Path, name: str, ports: dict[str, dict[str, str]], pci: str = "0000:18:00.0") -> None:
    """Writes the device under devices/ and links it from class/infiniband/, as sysfs does."""
    device = sysfs / "devices" / "pci0000:00" / pci / "infiniband" / name
    for file, text in {"hca_type": "MT4129\n", "fw_ver": "28.39.1002\n", "board_id": "MT_0000000838\n"}.items():
        device.mkdir(parents=True, exist_ok=True)
        (device / file).write_text(text)
    for port, files in ports.items():
        for relative, text in files.items():
            path = device / "ports" / port / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    link = sysfs / "class" / "infiniband" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(device, link.parent))


def page(sysfs: Path) -> str:
    return render(FabricCollector(sysfs, "node-a").collect())


def test_ports_are_read_in_base_units(tmp_path):
    make_device(tmp_path, "mlx5_0", {"1": IB_PORT})
    text = page(tmp_path)
    port = {"device": "mlx5_0", "port": "1"}
    assert value(text, "fleetscope_fabric_port_transmit_bytes_total", **port) == 2500000000 * 4
    assert value(text, "fleetscope_fabric_port_receive_bytes_total", **port) == 2400000000 * 4
    assert value(text, "fleetscope_fabric_port_rate_bytes_per_second", **port) == 5e10
    assert value(text, "fleetscope_fabric_port_state", **port) == 4
    assert value(text, "fleetscope_fabric_port_physical_state", **port) == 5
    assert value(text, "fleetscope_fabric_port_symbol_errors_total", **port) == 3
    assert value(text, "fleetscope_fabric_port_link_downed_total", **port) == 1
    assert value(text, "fleetscope_fabric_port_link_error_recoveries_total", **port) == 2
    assert value(text, "fleetscope_fabric_port_transmit_wait_ticks_total", **port) == 123456
    assert value(text, "fleetscope_fabric_port_errors_total", type="port_xmit_discards", **port) == 7
    assert value(text, "fleetscope_fabric_port_errors_total", type="vl15_dropped", **port) == 0
    assert value(text, "fleetscope_fabric_port_hw_errors_total", type="out_of_sequence", **port) == 12
    assert values(text, "fleetscope_fabric_port_hw_errors_total", type="lifespan") == []
    assert value(text, "fleetscope_fabric_port_unreadable_files", **port) == 0
    info = [labels for n, labels, _ in samples(text) if n == "fleetscope_fabric_device_info"][0]
    assert info == {"hostname": "node-a", "device": "mlx5_0", "hca_type": "MT4129", "firmware_version": "28.39.1002",
                    "board_id": "MT_0000000838"}
    assert promtool_check_metrics(text).returncode == 0


def test_roce_ports_report_congestion_and_unsupported_counters_are_absent(tmp_path):
    make_device(tmp_path, "mlx5_1", {"1": ROCE_PORT})
    text = page(tmp_path)
    assert value(text, "fleetscope_fabric_port_info", link_layer="Ethernet") == 1
    assert value(text, "fleetscope_fabric_port_congestion_notifications_total", type="cnp_sent") == 55
    assert value(text, "fleetscope_fabric_port_congestion_notifications_total", type="ecn_marked") == 60
    assert values(text, "fleetscope_fabric_port_transmit_bytes_total") == []  # N/A (no PMA): absent, not 0
    assert value(text, "fleetscope_fabric_port_receive_bytes_total") == 400
    assert value(text, "fleetscope_fabric_port_unreadable_files") == 0


@pytest.mark.parametrize("garbage", ["-5\n", "12abc\n", "\n", "0x10\n", "1.5\n", "\x00\x01"])
def test_a_corrupt_counter_is_absent_and_counted_and_the_rest_served(tmp_path, garbage):
    make_device(tmp_path, "mlx5_0", {"1": {**IB_PORT, "counters/symbol_error": garbage}})
    text = page(tmp_path)
    assert values(text, "fleetscope_fabric_port_symbol_errors_total") == []
    assert value(text, "fleetscope_fabric_port_unreadable_files") == 1
    assert value(text, "fleetscope_fabric_port_transmit_bytes_total") == 1e10


def test_an_unreadable_counter_file_is_counted(tmp_path):
    make_device(tmp_path, "mlx5_0", {"1": IB_PORT})
    target = next((tmp_path / "class" / "infiniband" / "mlx5_0" / "ports" / "1" / "counters").glob("link_downed"))
    target.unlink()
    target.mkdir()  # reading a directory fails, as a file that cannot be read does
    assert value(page(tmp_path), "fleetscope_fabric_port_unreadable_files") == 1


def test_no_rdma_devices_means_no_series(tmp_path):
    assert page(tmp_path) == ""


def test_a_device_vanishing_mid_read_is_skipped(tmp_path):
    make_device(tmp_path, "mlx5_0", {"1": IB_PORT})
    make_device(tmp_path, "mlx5_1", {"1": IB_PORT}, pci="0000:2a:00.0")
    (tmp_path / "class" / "infiniband" / "mlx5_9").symlink_to("../../devices/gone")  # dangling, as after unplug
    text = page(tmp_path)
    devices = {labels["device"] for n, labels, _ in samples(text) if n == "fleetscope_fabric_port_state"}
    assert devices == {"mlx5_0", "mlx5_1"}


def test_many_ports_are_ordered_numerically(tmp_path):
    make_device(tmp_path, "mlx5_0", {str(p): IB_PORT for p in (1, 2, 10)})
    ports = [labels["port"] for n, labels, _ in samples(page(tmp_path)) if n == "fleetscope_fabric_port_state"]
    assert ports == ["1", "2", "10"]


@pytest.mark.parametrize("text, expected", [("4: ACTIVE", 4), ("1: DOWN", 1), ("ACTIVE", None), (None, None)])
def test_parse_state(text, expected):
    assert parse_state(text) == expected


@pytest.mark.parametrize("text, expected", [("400 Gb/sec (4X NDR)", 5e10), ("2.5 Gb/sec (1X SDR)", 2.5e9 / 8),
                                            ("Unknown", None)])
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


def test_simulated_fabric_moves_and_flaps():
    fabric = SimulatedFabric(devices=2, seed=5, flap_mean_interval=30)
    try:
        collector = FabricCollector(fabric.root, "sim")
        start = 1_000_000.0
        fabric.advance(start)
        first = render(collector.collect())
        states = []
        for step in range(1, 40):
            fabric.advance(start + step * 5)
            text = render(collector.collect())
            states += values(text, "fleetscope_fabric_port_state")
        assert value(text, "fleetscope_fabric_port_transmit_bytes_total", device="mlx5_0") > \
            value(first, "fleetscope_fabric_port_transmit_bytes_total", device="mlx5_0")
        assert 1 in states and 4 in states  # a link went down and came back
        assert sum(values(text, "fleetscope_fabric_port_link_downed_total")) >= 1
        assert value(text, "fleetscope_fabric_port_congestion_notifications_total", device="mlx5_2",
                     type="cnp_sent") > 0
    finally:
        fabric.close()
    assert not fabric.root.exists()
