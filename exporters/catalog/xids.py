"""NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors), as far as a data-centre fleet sees it:
each code's name, worded as dcgm-exporter words err_msg (internal/pkg/collector/xid_errors.go).

XID 154 says the driver's recommended recovery action changed; fleetscope_gpu_recovery_action_state carries
the action itself. Which codes page and which open a ticket is on-call policy, the monitoring config's
(mixin/config.py: gpu.xid_page, gpu.xid_ticket).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Xid:
    code: int
    name: str


CATALOG: dict[int, Xid] = {xid.code: xid for xid in (
    Xid(8, "GPU stopped processing"),
    Xid(13, "Graphics Engine Exception"),
    Xid(31, "GPU memory page fault"),
    Xid(32, "Invalid or corrupted push buffer stream"),
    Xid(38, "Driver firmware error"),
    Xid(43, "GPU stopped processing"),
    Xid(45, "Preemptive cleanup, due to previous errors -- Most likely to see when running multiple cuda"),
    Xid(48, "Double Bit ECC Error"),
    Xid(61, "Internal micro-controller breakpoint/warning"),
    Xid(62, "Internal micro-controller halt"),
    Xid(63, "ECC page retirement or row remapping recording event"),
    Xid(64, "ECC page retirement or row remapper recording failure"),
    Xid(68, "NVDEC0 Exception"),
    Xid(69, "Graphics Engine class error"),
    Xid(74, "NVLINK Error"),
    Xid(79, "GPU has fallen off the bus"),
    Xid(92, "High single-bit ECC error rate"),
    Xid(94, "Contained ECC error"),
    Xid(95, "Uncontained ECC error"),
    Xid(109, "Context Switch Timeout Error"),  # usually the application (a kernel that will not yield)
    Xid(119, "GSP RPC Timeout"),
    Xid(120, "GSP Error"),
    Xid(121, "C2C Link Error"),
    Xid(123, "SPI PMU RPC Write Failure"),
    Xid(136, "ALI Training Fail"),
    Xid(137, "NVLink Privilege Error"),
    Xid(140, "Unrecovered ECC Error"),
    Xid(143, "GPU Initialization Failure"),
    Xid(144, "NVLINK: Saw Error"),
    Xid(145, "NVLINK: RLW Error"),
    Xid(146, "NVLINK: TLW Error"),
    Xid(147, "NVLINK: TREX Error"),
    Xid(148, "NVLINK: NVLPW_CTRL Error"),
    Xid(149, "NVLINK: NETIR Error"),
    Xid(150, "NVLINK: MSE Error"),
    Xid(154, "GPU Recovery Action Changed"),
    Xid(155, "NVLINK: SW Defined Error"),
)}
