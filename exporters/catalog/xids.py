"""NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors), as far as a data-centre fleet sees it:
each code's name, worded as dcgm-exporter words err_msg (internal/pkg/collector/xid_errors.go), and
what it asks of on-call:

- page: the GPU is faulty or unusable until reset, reboot or service (uncorrectable memory errors,
  fallen off the bus, firmware and NVLink faults);
- ticket: the hardware needs attention soon but the GPU still works (a row remapped, a contained ECC
  error, a high single-bit rate, a context-switch timeout that recurs);
- info: usually the application's own fault (13, 31, 43, 45), or the driver reporting on itself.

XID 154 says the driver's recommended recovery action changed; fleetscope_gpu_recovery_action_state carries
the action itself and FleetscopeGPURecoveryActionRequired pages on it, so 154 itself is info.
The alerts config takes its defaults from here; a code not listed is info.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Xid:
    code: int
    name: str
    action: str  # "page", "ticket" or "info"


CATALOG: dict[int, Xid] = {xid.code: xid for xid in (
    Xid(8, "GPU stopped processing", "info"),
    Xid(13, "Graphics Engine Exception", "info"),
    Xid(31, "GPU memory page fault", "info"),
    Xid(32, "Invalid or corrupted push buffer stream", "info"),
    Xid(38, "Driver firmware error", "info"),
    Xid(43, "GPU stopped processing", "info"),
    Xid(45, "Preemptive cleanup, due to previous errors -- Most likely to see when running multiple cuda", "info"),
    Xid(48, "Double Bit ECC Error", "page"),
    Xid(61, "Internal micro-controller breakpoint/warning", "page"),
    Xid(62, "Internal micro-controller halt", "page"),
    Xid(63, "ECC page retirement or row remapping recording event", "ticket"),
    Xid(64, "ECC page retirement or row remapper recording failure", "page"),
    Xid(68, "NVDEC0 Exception", "info"),
    Xid(69, "Graphics Engine class error", "info"),
    Xid(74, "NVLINK Error", "page"),
    Xid(79, "GPU has fallen off the bus", "page"),
    Xid(92, "High single-bit ECC error rate", "ticket"),
    Xid(94, "Contained ECC error", "ticket"),
    Xid(95, "Uncontained ECC error", "page"),
    Xid(109, "Context Switch Timeout Error", "info"),  # usually the application (a kernel that will not yield)
    Xid(119, "GSP RPC Timeout", "page"),
    Xid(120, "GSP Error", "page"),
    Xid(121, "C2C Link Error", "ticket"),
    Xid(123, "SPI PMU RPC Write Failure", "ticket"),
    Xid(136, "ALI Training Fail", "ticket"),
    Xid(137, "NVLink Privilege Error", "page"),
    Xid(140, "Unrecovered ECC Error", "page"),
    Xid(143, "GPU Initialization Failure", "page"),
    Xid(144, "NVLINK: Saw Error", "page"),
    Xid(145, "NVLINK: RLW Error", "page"),
    Xid(146, "NVLINK: TLW Error", "page"),
    Xid(147, "NVLINK: TREX Error", "page"),
    Xid(148, "NVLINK: NVLPW_CTRL Error", "page"),
    Xid(149, "NVLINK: NETIR Error", "page"),
    Xid(150, "NVLINK: MSE Error", "page"),
    Xid(154, "GPU Recovery Action Changed", "info"),
    Xid(155, "NVLINK: SW Defined Error", "ticket"),
)}
PAGE = tuple(code for code, xid in CATALOG.items() if xid.action == "page")
TICKET = tuple(code for code, xid in CATALOG.items() if xid.action == "ticket")
