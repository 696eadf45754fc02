"""Reads every RDMA port under <sysfs>/class/infiniband, as the kernel lays it out:

    class/infiniband/mlx5_0/{hca_type,fw_ver,board_id}
    class/infiniband/mlx5_0/ports/1/{state,phys_state,rate,link_layer}
    class/infiniband/mlx5_0/ports/1/counters/port_xmit_data ...
    class/infiniband/mlx5_0/ports/1/hw_counters/out_of_sequence ...   (mlx5 and others)

A counter the port does not have (no file, or "N/A (no PMA)") is absent from the page; one
whose file cannot be read or parsed is absent too and counted in
fleetscope_fabric_port_unreadable_files. A device that vanishes while being read (hot
unplug, driver reload) is skipped. None of these fails the collection.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client.metrics_core import Metric

from fleetscope.catalog import FamilySet, MetricSpec
from fleetscope.exporters.catalog import fabric as m

# counters/<file>: (metric, extra labels, factor to the base unit)
COUNTERS: dict[str, tuple[MetricSpec, dict[str, str], float]] = {
    "port_xmit_data": (m.TRANSMIT_BYTES, {}, 4.0),
    "port_rcv_data": (m.RECEIVE_BYTES, {}, 4.0),
    "port_xmit_packets": (m.TRANSMIT_PACKETS, {}, 1.0),
    "port_rcv_packets": (m.RECEIVE_PACKETS, {}, 1.0),
    "symbol_error": (m.SYMBOL_ERRORS, {}, 1.0),
    "link_downed": (m.LINK_DOWNED, {}, 1.0),
    "link_error_recovery": (m.LINK_ERROR_RECOVERIES, {}, 1.0),
    "port_xmit_wait": (m.TRANSMIT_WAIT, {}, 1.0),
    **{name: (m.ERRORS, {"type": name.lower()}, 1.0) for name in (
        "port_rcv_errors", "port_rcv_remote_physical_errors", "port_rcv_switch_relay_errors", "port_xmit_discards",
        "port_xmit_constraint_errors", "port_rcv_constraint_errors", "local_link_integrity_errors",
        "excessive_buffer_overrun_errors", "VL15_dropped")},
}
# hw_counters/<file>: a fixed list, so the label stays bounded whatever the driver adds.
HW_COUNTERS: dict[str, tuple[MetricSpec, dict[str, str], float]] = {
    **{name: (m.HW_ERRORS, {"type": name}, 1.0) for name in (
        "out_of_buffer", "out_of_sequence", "packet_seq_err", "local_ack_timeout_err", "rnr_nak_retry_err",
        "implied_nak_seq_err", "duplicate_request", "req_cqe_error", "resp_cqe_error", "req_remote_access_errors",
        "req_remote_invalid_request", "resp_local_length_error", "resp_remote_access_errors",
        "rx_icrc_encapsulated", "roce_adp_retrans", "roce_adp_retrans_to", "roce_slow_restart")},
    "np_cnp_sent": (m.CONGESTION_NOTIFICATIONS, {"type": "cnp_sent"}, 1.0),
    "rp_cnp_handled": (m.CONGESTION_NOTIFICATIONS, {"type": "cnp_handled"}, 1.0),
    "rp_cnp_ignored": (m.CONGESTION_NOTIFICATIONS, {"type": "cnp_ignored"}, 1.0),
    "np_ecn_marked_roce_packets": (m.CONGESTION_NOTIFICATIONS, {"type": "ecn_marked"}, 1.0),
}
_STATE = re.compile(r"^\s*(\d+)\s*:")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*Gb/sec")


def _read(path: str) -> str | None:
    """A sysfs attribute's text. os.read on a string path: a node has a few hundred of these
    files, and pathlib's and io's layers cost more than the read itself."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            return os.read(descriptor, 4096).decode().strip()
        finally:
            os.close(descriptor)
    except (OSError, UnicodeDecodeError):
        return None


def parse_state(text: str | None) -> int | None:
    """'4: ACTIVE' -> 4."""
    match = _STATE.match(text or "")
    return int(match.group(1)) if match else None


def parse_rate(text: str | None) -> float | None:
    """'400 Gb/sec (4X NDR)' -> bytes per second."""
    match = _RATE.match(text or "")
    return float(match.group(1)) * 1e9 / 8 if match else None


class Unreadable(ValueError):
    """A counter file that exists but does not hold a counter."""


def parse_counter(text: str | None) -> int | None:
    """A counter file's value; None where the port does not support it ('N/A (no PMA)')."""
    if text is None:
        raise Unreadable("cannot read")
    if text.startswith("N/A"):
        return None
    if not text.isdigit():
        raise Unreadable(f"not a counter: {text[:40]!r}")
    return int(text)


class FabricCollector:
    name = "fabric"

    def __init__(self, sysfs: Path, hostname: str, before_read: Callable[[], None] | None = None):
        self._root = str(Path(sysfs) / "class" / "infiniband")
        self._hostname = hostname
        self._before_read = before_read

    def collect(self) -> list[Metric]:
        if self._before_read is not None:
            self._before_read()
        out = FamilySet()
        try:
            devices = sorted(os.listdir(self._root))
        except FileNotFoundError:
            return []  # no RDMA devices on this node
        for device in devices:
            self._read_device(device, f"{self._root}/{device}", out)
        return out.metrics()

    def close(self) -> None:
        pass

    def _read_device(self, device: str, path: str, out: FamilySet) -> None:
        try:
            ports = sorted(os.listdir(f"{path}/ports"), key=lambda name: (len(name), name))
        except OSError:
            return  # gone while we looked (hot unplug, driver reload)
        out.add(m.DEVICE_INFO, {"hostname": self._hostname, "device": device,
                                "hca_type": _read(f"{path}/hca_type") or "",
                                "firmware_version": _read(f"{path}/fw_ver") or "",
                                "board_id": _read(f"{path}/board_id") or ""}, 1)
        for port in ports:
            self._read_port(device, port, f"{path}/ports/{port}", out)

    def _read_port(self, device: str, port: str, path: str, out: FamilySet) -> None:
        labels = {"hostname": self._hostname, "device": device, "port": port}
        out.add(m.PORT_INFO, {**labels, "link_layer": _read(f"{path}/link_layer") or ""}, 1)
        for spec, value in ((m.PORT_STATE, parse_state(_read(f"{path}/state"))),
                            (m.PORT_PHYSICAL_STATE, parse_state(_read(f"{path}/phys_state"))),
                            (m.PORT_RATE, parse_rate(_read(f"{path}/rate")))):
            if value is not None:
                out.add(spec, labels, value)
        unreadable = 0
        for folder, table in (("counters", COUNTERS), ("hw_counters", HW_COUNTERS)):
            try:
                present = set(os.listdir(f"{path}/{folder}"))
            except OSError:
                continue  # drivers differ in which folders they provide
            for file, (spec, extra, scale) in table.items():
                if file not in present:
                    continue
                try:
                    value = parse_counter(_read(f"{path}/{folder}/{file}"))
                except Unreadable:
                    unreadable += 1
                    continue
                if value is not None:
                    out.add(spec, {**labels, **extra}, value * scale)
        out.add(m.UNREADABLE, labels, unreadable)
