"""--simulate for the fabric: a sysfs tree of eight ConnectX-7 NDR InfiniBand ports (the
compute fabric) and one 200 Gb/s RoCE port (the frontend network), written to a temporary
directory and advanced before each read, so the real reading code runs on it.

Traffic follows a training job's rhythm; symbol errors trickle in; now and then a link
flaps (link_downed rises, the port is down for a while, then active again).
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PORT_COUNTERS = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets", "symbol_error",
                 "link_downed", "link_error_recovery", "port_xmit_wait", "port_rcv_errors", "port_xmit_discards",
                 "port_rcv_remote_physical_errors", "port_rcv_switch_relay_errors", "port_xmit_constraint_errors",
                 "port_rcv_constraint_errors", "local_link_integrity_errors", "excessive_buffer_overrun_errors",
                 "VL15_dropped")
HW_COUNTERS = ("out_of_sequence", "local_ack_timeout_err", "rnr_nak_retry_err", "packet_seq_err",
               "duplicate_request", "out_of_buffer")
ROCE_CONGESTION = ("np_cnp_sent", "rp_cnp_handled", "np_ecn_marked_roce_packets")
RATES = {"InfiniBand": ("400 Gb/sec (4X NDR)", 400e9 / 8), "Ethernet": ("200 Gb/sec (4X HDR)", 200e9 / 8)}


@dataclass
class _Port:
    path: Path
    link_layer: str
    counters: dict[str, int]
    hw: dict[str, int]
    down_until: float = 0.0


class SimulatedFabric:
    DEVICES = 8  # InfiniBand devices, beside one RoCE device

    def __init__(self, devices: int = DEVICES, seed: int = 1, flap_mean_interval: float = 3600.0):
        self.root = Path(tempfile.mkdtemp(prefix="fleetscope-sysfs-"))
        self._rng = random.Random(seed)
        self._flap_mean_interval = flap_mean_interval
        self._ports: list[_Port] = []
        self._written: dict[str, str] = {}  # what each file holds, so an advance rewrites only what changed
        self._created: set[Path] = set()
        for index in range(devices + 1):
            link_layer = "InfiniBand" if index < devices else "Ethernet"
            port = self.root / "class" / "infiniband" / f"mlx5_{index}" / "ports" / "1"
            _write_device(port.parent.parent, index)
            hw = HW_COUNTERS + (ROCE_CONGESTION if link_layer == "Ethernet" else ())
            self._ports.append(_Port(port, link_layer, dict.fromkeys(PORT_COUNTERS, 0), dict.fromkeys(hw, 0)))
        self._at = time.time()
        self.advance(self._at)

    def advance(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        dt, self._at = max(0.0, now - self._at), now
        rng = self._rng
        for port in self._ports:
            down = now < port.down_until
            if not down and rng.random() < dt / self._flap_mean_interval:
                port.down_until = now + rng.uniform(10, 60)
                port.counters["link_downed"] += 1
                down = True
            counters, hw = port.counters, port.hw
            if not down:
                load = rng.uniform(0.55, 0.8)
                words = int(RATES[port.link_layer][1] * load * dt / 4)
                counters["port_xmit_data"] += words
                counters["port_rcv_data"] += int(words * rng.uniform(0.97, 1.0))
                counters["port_xmit_packets"] += words * 4 // 4096
                counters["port_rcv_packets"] += words * 4 // 4096
                counters["port_xmit_wait"] += int(dt * rng.uniform(0, 2000))
                if rng.random() < dt / 120:
                    counters["symbol_error"] += rng.randint(1, 5)
                if rng.random() < dt / 600:
                    hw["out_of_sequence"] += rng.randint(1, 20)
                if "np_cnp_sent" in hw:
                    marked = int(dt * rng.uniform(0, 500))
                    hw["np_ecn_marked_roce_packets"] += marked
                    hw["np_cnp_sent"] += marked
                    hw["rp_cnp_handled"] += int(marked * rng.uniform(0.9, 1.0))
            self._write_port(port.path, port.link_layer, counters, hw, down)

    def flap(self, device: int, seconds: float) -> None:
        """Takes device mlx5_<device>'s link down now for `seconds`, as a failing cable would."""
        if not 0 <= device < len(self._ports):
            raise ValueError(f"no fabric device {device}: there are {len(self._ports)}")
        port = self._ports[device]
        port.down_until = time.time() + seconds
        port.counters["link_downed"] += 1

    def _write_port(self, port: Path, link_layer: str, counters: dict[str, int], hw: dict[str, int],
                    down: bool) -> None:
        if port not in self._created:
            (port / "counters").mkdir(parents=True, exist_ok=True)
            (port / "hw_counters").mkdir(exist_ok=True)
            self._created.add(port)
        files = {"link_layer": link_layer, "state": "1: DOWN" if down else "4: ACTIVE",
                 "phys_state": "2: Polling" if down else "5: LinkUp", "rate": RATES[link_layer][0],
                 **{f"counters/{name}": str(value) for name, value in counters.items()},
                 **{f"hw_counters/{name}": str(value) for name, value in hw.items()}}
        for name, text in files.items():
            path = f"{port}/{name}"
            if self._written.get(path) != text:
                with open(path, "w") as out:
                    out.write(f"{text}\n")
                self._written[path] = text

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _write_device(device: Path, index: int) -> None:
    device.mkdir(parents=True, exist_ok=True)
    (device / "hca_type").write_text("MT4129\n")
    (device / "fw_ver").write_text("28.39.1002\n")
    (device / "board_id").write_text("MT_0000000838\n")
