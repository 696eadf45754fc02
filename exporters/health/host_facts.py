"""What the node checks read from the host: RDMA ports in sysfs, network interfaces, the NCCL environment,
resource limits, hugepages and the kernel's clock synchronization state."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleetscope.exporters.fabric.collector import parse_rate, parse_state

ACTIVE = 4  # /sys/class/infiniband/*/ports/*/state: "4: ACTIVE"
NCCL_VARIABLES = ("NCCL_IB_HCA", "NCCL_SOCKET_IFNAME")


@dataclass(frozen=True)
class RdmaPort:
    device: str
    port: str
    state: int | None
    state_text: str
    rate_gbps: float | None
    link_layer: str

    @property
    def name(self) -> str:
        return f"{self.device}/{self.port}"


@dataclass(frozen=True)
class ClockSync:
    synchronized: bool | None  # None: unknown
    detail: str


@dataclass
class HostFacts:
    rdma_ports: list[RdmaPort] = field(default_factory=list)
    rdma_readable: bool = True
    net_interfaces: set[str] | None = None  # None: /sys/class/net could not be listed
    nccl_env: dict[str, str] = field(default_factory=dict)
    memlock: int | None = None  # soft limits, bytes or files; resource.RLIM_INFINITY for unlimited
    nofile: int | None = None
    hugepages: int | None = None  # HugePages_Total
    clock: ClockSync = ClockSync(None, "not read")


def read(sysfs: Path, procfs: Path, env: Mapping[str, str] | None = None, infiniband: Path | None = None) -> HostFacts:
    """infiniband: where the RDMA devices are listed, when not under sysfs (a simulated node's tree)."""
    env = os.environ if env is None else env
    facts = HostFacts(nccl_env={name: env[name] for name in NCCL_VARIABLES if env.get(name)})
    facts.rdma_ports, facts.rdma_readable = _rdma_ports(infiniband or sysfs / "class" / "infiniband")
    try:
        facts.net_interfaces = set(os.listdir(sysfs / "class" / "net"))
    except OSError:
        facts.net_interfaces = None
    facts.memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    facts.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    facts.hugepages = _hugepages(procfs / "meminfo")
    facts.clock = clock_sync()
    return facts


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _rdma_ports(root: Path) -> tuple[list[RdmaPort], bool]:
    try:
        devices = sorted(os.listdir(root))
    except FileNotFoundError:
        return [], True  # no RDMA devices
    except OSError:
        return [], False
    ports = []
    for device in devices:
        try:
            names = sorted(os.listdir(root / device / "ports"), key=lambda name: (len(name), name))
        except OSError:
            continue
        for port in names:
            path = root / device / "ports" / port
            state_text = _read(path / "state")
            rate = parse_rate(_read(path / "rate"))
            ports.append(RdmaPort(device, port, parse_state(state_text), state_text,
                                  None if rate is None else rate * 8 / 1e9, _read(path / "link_layer")))
    return ports, True


def _hugepages(meminfo: Path) -> int | None:
    for line in _read(meminfo).splitlines():
        name, _, value = line.partition(":")
        if name == "HugePages_Total" and value.strip().isdigit():
            return int(value.strip())
    return None


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux), enough to read the kernel's synchronization status."""
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("reserved", ctypes.c_int * 11)]


_TIME_ERROR = 5  # adjtimex's answer while the clock is not synchronized (STA_UNSYNC set)


def clock_sync() -> ClockSync:
    """The kernel's own view, which chrony, ntpd and systemd-timesyncd all keep up to date: adjtimex(2) with no
    change requested. Unknown where the C library or the call is unavailable."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError) as error:
        return ClockSync(None, f"adjtimex unavailable: {error}")
    if state < 0:
        return ClockSync(None, f"adjtimex failed: {os.strerror(ctypes.get_errno())}")
    if state == _TIME_ERROR:
        return ClockSync(False, "the kernel clock is not synchronized (adjtimex: TIME_ERROR)")
    return ClockSync(True, f"synchronized, maximum error {timex.maxerror / 1000:g} ms")
