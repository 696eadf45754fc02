"""The policy a node is judged by: what it should have (GPU count and model, driver and CUDA versions, MIG layout,
PCIe link, NVLink links, InfiniBand ports and rate, limits) and which XIDs make a GPU unfit.

A policy file is YAML with any of the sections below; what it leaves out keeps its default, and a default of None
means "not checked" (the node is not compared with an expectation nobody wrote down). Every key is checked:
an unknown key or a value of the wrong kind is a PolicyError naming it.

    gpus: {count: 8, model: NVIDIA H100 80GB HBM3, mig: disabled, mig_profiles: [], pcie_generation: 5,
           pcie_width: 16, nvlink_links: 18, persistence_mode: true, fabric: true, temperature_margin_celsius: 5,
           power_limit_min_watts: 700, retired_pages_max: 60}
    driver: {version: "550.90.07", cuda: "12.4"}
    infiniband: {ports: 8, rate_gbps: 400}
    limits: {memlock: unlimited, nofile: 65536, hugepages: 0}
    clock_sync: true
    nccl_env: true
    xid: {unfit: [48, 79, ...], degraded: [63, 94, ...]}
    active: {gemm_tflops: 600, h2d_gbps: 40, allreduce_busbw_gbps: 350, unfit_ratio: 0.5}

`active` holds the figures `fleetscope check --active` measures against (PyTorch's GEMM burn per GPU, host-to-device
copy per GPU, all-reduce bus bandwidth across the node's GPUs): below a figure is degraded, below unfit_ratio of it
unfit. Measure a known-good node of the model first and write down what it reaches; without a figure the value is
reported, not judged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetscope import log

# XIDs that follow a fault in the application, not the GPU (NVIDIA's XID catalog, docs.nvidia.com/deploy/xid-errors:
# "user application fault" or "preemptive cleanup"): a job's bug must never drain a node, so the policy refuses them
# as unfit or degraded.
APPLICATION_XIDS = (13, 31, 43, 45, 69, 109)
# Hardware, firmware and NVLink faults that leave the GPU unusable until reset, reboot or service.
UNFIT_XIDS = (48, 61, 62, 64, 74, 79, 95, 119, 120, 137, 140, 143, 144, 145, 146, 147, 148, 149, 150)
# The GPU works but needs attention (a row remapped, a contained ECC error, a high single-bit rate, C2C and SPI errors).
DEGRADED_XIDS = (63, 92, 94, 121, 123, 136, 155)
UNLIMITED = -1  # resource.RLIM_INFINITY as the policy holds it


class PolicyError(log.UserError):
    """A policy file that cannot be used; the message names the key."""


@dataclass(frozen=True)
class GpuPolicy:
    count: int | None = None
    model: str | None = None
    mig: str | None = None  # "enabled" or "disabled"
    mig_profiles: tuple[str, ...] = ()  # on every GPU in MIG mode, e.g. [3g.40gb, 3g.40gb, 1g.10gb]
    pcie_generation: int | None = None  # below the GPU's own maximum is reported anyway
    pcie_width: int | None = None
    nvlink_links: int | None = None  # links up per GPU; without it, any link reported down fails
    persistence_mode: bool = True
    fabric: bool = True  # NVSwitch fabric registration, where NVML reports it
    temperature_margin_celsius: float = 5.0  # degraded within this of the slowdown temperature
    power_limit_min_watts: float | None = None  # without it: below the board's default limit is degraded
    retired_pages_max: int = 60


@dataclass(frozen=True)
class DriverPolicy:
    version: str | None = None  # "550.90.07", or a prefix of whole components: "550"
    cuda: str | None = None  # "12.4"


@dataclass(frozen=True)
class InfinibandPolicy:
    ports: int | None = None  # InfiniBand and RoCE ports that must be ACTIVE
    rate_gbps: float | None = None  # each active port at least this


@dataclass(frozen=True)
class LimitsPolicy:
    memlock: int | None = UNLIMITED  # bytes, or unlimited; RDMA registers memory it must pin
    nofile: int | None = 65536
    hugepages: int | None = None  # HugePages_Total at least this


@dataclass(frozen=True)
class XidPolicy:
    unfit: tuple[int, ...] = UNFIT_XIDS
    degraded: tuple[int, ...] = DEGRADED_XIDS


@dataclass(frozen=True)
class ActivePolicy:
    gemm_tflops: float | None = None  # dense bf16 GEMM per GPU
    h2d_gbps: float | None = None  # pinned host-to-device copy per GPU, GB/s (10^9 bytes)
    allreduce_busbw_gbps: float | None = None  # nccl-tests' busbw of an all-reduce across the node's GPUs
    unfit_ratio: float = 0.5  # below this share of a figure: unfit (below the figure itself: degraded)


@dataclass(frozen=True)
class Policy:
    gpus: GpuPolicy = field(default_factory=GpuPolicy)
    driver: DriverPolicy = field(default_factory=DriverPolicy)
    infiniband: InfinibandPolicy = field(default_factory=InfinibandPolicy)
    limits: LimitsPolicy = field(default_factory=LimitsPolicy)
    clock_sync: bool = True
    nccl_env: bool = True
    xid: XidPolicy = field(default_factory=XidPolicy)
    active: ActivePolicy = field(default_factory=ActivePolicy)


def load(path: str | Path | None) -> Policy:
    """The defaults, or the defaults with what the YAML file at `path` sets over them."""
    if path is None:
        return Policy()
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(f"cannot read policy file {path}: {error}") from None
    return from_mapping(document)


def from_mapping(document: Any) -> Policy:
    policy = _build(Policy, document, "")
    _check_xids(policy.xid)
    if policy.gpus.mig not in (None, "enabled", "disabled"):
        raise PolicyError(f"gpus.mig: {policy.gpus.mig!r} is not enabled or disabled")
    if not 0 < policy.active.unfit_ratio <= 1:
        raise PolicyError(f"active.unfit_ratio: expected a share above 0 and at most 1, got "
                          f"{policy.active.unfit_ratio}")
    return policy


def _build(cls: Any, document: Any, where: str) -> Any:
    if not isinstance(document, dict):
        raise PolicyError(f"{where or 'the policy'} must be a mapping, got {type(document).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(document) - set(fields))
    if unknown:
        raise PolicyError(f"unknown key {_join(where, str(unknown[0]))}: known are {', '.join(sorted(fields))}")
    defaults = cls()
    values = {name: _value(getattr(defaults, name), value, _join(where, name)) for name, value in document.items()}
    return cls(**values)


def _value(default: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(default):
        return _build(type(default), value, where)
    if where.endswith("memlock") and value == "unlimited":
        return UNLIMITED
    if value is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise PolicyError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise PolicyError(f"{where}: expected a list, got {value!r}")
        kind = int if where.startswith("xid.") else str
        for item in value:
            if not isinstance(item, kind) or isinstance(item, bool):
                raise PolicyError(f"{where}: {item!r} is not a{'n XID code' if kind is int else ' name'}")
        return tuple(value)
    if where.endswith(("version", "cuda", "model", "mig")):
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise PolicyError(f"{where}: expected text, got {value!r}")
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{where}: expected a number, got {value!r}")
    if value < 0:
        raise PolicyError(f"{where}: must not be negative, got {value!r}")
    if isinstance(default, float) or where.endswith(("gbps", "watts", "tflops")):
        return float(value)
    if value != int(value):
        raise PolicyError(f"{where}: expected a whole number, got {value!r}")
    return int(value)


def _check_xids(xid: XidPolicy) -> None:
    for key, codes in (("xid.unfit", xid.unfit), ("xid.degraded", xid.degraded)):
        application = sorted(set(codes) & set(APPLICATION_XIDS))
        if application:
            raise PolicyError(f"{key}: XID {', '.join(map(str, application))} follow(s) a fault in the application, "
                              "not the GPU; a job's bug must not take a node out of service (see "
                              "exporters/health/policy.py APPLICATION_XIDS)")
    both = sorted(set(xid.unfit) & set(xid.degraded))
    if both:
        raise PolicyError(f"xid: {', '.join(map(str, both))} listed both as unfit and as degraded")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
