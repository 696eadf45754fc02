"""XIDs the NVIDIA driver wrote to the kernel log since boot (as far back as the kernel's ring buffer reaches).

The driver logs each as `NVRM: Xid (PCI:0000:18:00): 79, pid=..., name=..., GPU has fallen off the bus.`; the same
line arrives through /dev/kmsg (`4,1234,567,-;NVRM: ...`), `dmesg` (`[  12.3] NVRM: ...`) or journald's export,
so the parser looks for the message wherever it sits on the line.
"""

from __future__ import annotations

import errno
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_XID = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F]+):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})(?:\.[0-7])?\): (\d+)\b")
KMSG = Path("/dev/kmsg")
MAX_BYTES = 64 * 1024 * 1024  # more kernel log than any ring buffer holds: a file past it is read no further


@dataclass
class KernelXids:
    source: str  # where they were read
    error: str = ""  # why they could not be: then nothing is known about XIDs
    by_bus: dict[str, Counter[int]] = field(default_factory=dict)  # bus_key(...) -> XID code -> times

    def of(self, pci_bus_id: str) -> Counter[int]:
        return self.by_bus.get(bus_key(pci_bus_id), Counter())


def bus_key(pci_bus_id: str) -> str:
    """'00000000:18:00.0' (NVML) and '0000:18:00' (the driver's log) both -> '0:18:00'."""
    parts = pci_bus_id.split(".")[0].split(":")
    if len(parts) != 3:
        return pci_bus_id.lower()
    domain, bus, device = parts
    try:
        return f"{int(domain, 16):x}:{bus.lower()}:{device.lower()}"
    except ValueError:
        return pci_bus_id.lower()


def parse(text: str, source: str) -> KernelXids:
    xids = KernelXids(source)
    for match in _XID.finditer(text):
        domain, bus, device, code = match.groups()
        xids.by_bus.setdefault(bus_key(f"{domain}:{bus}:{device}"), Counter())[int(code)] += 1
    return xids


def read(path: Path | None = None) -> KernelXids:
    """From a file of kernel log lines (dmesg's output, a journal export), or /dev/kmsg by default."""
    if path is not None and path != KMSG:
        try:
            with open(path, "rb") as file:
                return parse(file.read(MAX_BYTES).decode(errors="replace"), str(path))
        except OSError as error:
            return KernelXids(str(path), error=f"cannot read {path}: {error.strerror}")
    return _read_kmsg()


def _read_kmsg() -> KernelXids:
    """Every record /dev/kmsg still holds. Opened non-blocking: a read past the last record answers EAGAIN
    instead of waiting for the next one."""
    try:
        descriptor = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        return KernelXids(str(KMSG), error=f"cannot read {KMSG}: {error.strerror} (run as root, or pass "
                                            "--kernel-log with `dmesg` output)")
    records, size = [], 0
    try:
        while size < MAX_BYTES:
            try:
                record = os.read(descriptor, 8192)
            except OSError as error:
                if error.errno == errno.EPIPE:  # the ring buffer overwrote the record we were at: go on
                    continue
                if error.errno == errno.EAGAIN:
                    break
                raise
            if not record:
                break
            records.append(record)
            size += len(record)
    finally:
        os.close(descriptor)
    return parse(b"".join(records).decode(errors="replace"), str(KMSG))
