"""The passive checks: what was read (gpu_facts, host_facts, kernel_log) against a policy, one Result per check and
GPU or node. Pure functions of their inputs, so each is tested on facts made for it."""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterable

import pynvml

from fleetscope.exporters.catalog.xids import CATALOG
from fleetscope.exporters.health.gpu_facts import GpuFacts, NodeGpuFacts
from fleetscope.exporters.health.host_facts import ACTIVE, HostFacts
from fleetscope.exporters.health.kernel_log import KernelXids
from fleetscope.exporters.health.model import DEGRADED, OK, UNFIT, UNKNOWN, Result
from fleetscope.exporters.health.policy import UNLIMITED, Policy

# Every check's name: the `check` label of fleetscope_gpu_health_state and fleetscope_node_health_state, so a fixed
# set; no name is both a GPU's and the node's, so the rules can put the two side by side.
GPU_CHECKS = ("nvml", "model", "ecc_mode", "ecc_uncorrectable", "retired_pages", "row_remap", "throttling",
              "temperature", "power_limit", "pcie_link", "nvlink", "fabric", "persistence_mode", "mig", "xid")
NODE_CHECKS = ("nvml_library", "gpu_count", "driver_version", "cuda_version", "infiniband", "nccl_env", "memlock",
               "nofile", "hugepages", "clock_sync")

# Clock event reasons that mean the hardware, not the workload or a setting, is holding the clocks down.
# sw_power_cap is how a GPU at full load normally holds its power limit, and is left out.
HARDWARE_THROTTLES = {
    "hw_slowdown": pynvml.nvmlClocksEventReasonHwSlowdown,
    "hw_thermal_slowdown": pynvml.nvmlClocksEventReasonHwThermalSlowdown,
    "hw_power_brake_slowdown": pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
    "sw_thermal_slowdown": pynvml.nvmlClocksEventReasonSwThermalSlowdown,
}
RESET = "drain the node and reset the GPU when its jobs end (nvidia-smi -r -i <gpu>, or reboot)"


def gpu_results(gpu: GpuFacts, policy: Policy, xids: KernelXids | None) -> list[Result]:
    """Every GPU check of one GPU; a GPU that could not be read has only its nvml result. xids None: the kernel
    log was not read (the exporter leaves XIDs to NVML's events and the rules)."""
    if gpu.error:
        return [Result("nvml", UNFIT, gpu.index, gpu.error, "the GPU does not answer NVML (lost, fallen off the "
                       "bus or in error)", "drain the node; check `nvidia-smi` and the kernel log for XID 79; a GPU "
                       "off the bus comes back only after a power cycle")]
    results = [Result("nvml", OK, gpu.index, "answers")]
    for check in _GPU_CHECKS:
        result = check(gpu, policy)
        if result is not None:
            results.append(result)
    if xids is not None:
        results.append(_xid(gpu, policy, xids))
    return results


def node_results(nvml: NodeGpuFacts, host: HostFacts | None, policy: Policy) -> list[Result]:
    """The node's checks; host None: only those NVML answers."""
    results = [_nvml_library(nvml)] + [check(nvml, policy) for check in (_gpu_count, _driver, _cuda)]
    if host is not None:
        results += [check(host, policy) for check in (_infiniband, _nccl_env, _memlock, _nofile, _hugepages, _clock)]
    return [result for result in results if result is not None]


def _ok(check: str, gpu: GpuFacts, observed: str) -> Result:
    return Result(check, OK, gpu.index, observed)


# ---- per GPU -------------------------------------------------------------------------------------------------

def _model(gpu: GpuFacts, policy: Policy) -> Result | None:
    expected = policy.gpus.model
    if expected is None:
        return None
    if gpu.name == expected:
        return _ok("model", gpu, gpu.name)
    return Result("model", UNFIT, gpu.index, gpu.name, f"the policy expects {expected}",
                  "check that the node is in the right partition or pool, or correct the policy")


def _ecc_mode(gpu: GpuFacts, policy: Policy) -> Result | None:
    if gpu.ecc_enabled is None:
        return None  # consumer boards have no ECC to check
    if gpu.ecc_enabled:
        return _ok("ecc_mode", gpu, "enabled")
    return Result("ecc_mode", UNFIT, gpu.index, "disabled", "ECC is off: memory errors go undetected",
                  "nvidia-smi -i <gpu> -e 1, then reset the GPU or reboot")


def _ecc_uncorrectable(gpu: GpuFacts, policy: Policy) -> Result | None:
    count = gpu.counters.get("ecc_dbe_volatile")
    if count is None:
        return None
    if count == 0:
        return _ok("ecc_uncorrectable", gpu, "0 since the driver loaded")
    return Result("ecc_uncorrectable", UNFIT, gpu.index, f"{count:.0f} since the driver loaded",
                  "uncorrectable ECC errors: the memory that held them cannot be trusted until the GPU is reset",
                  RESET)


def _retired_pages(gpu: GpuFacts, policy: Policy) -> Result | None:
    pending = gpu.counters.get("retired_pending")
    retired = [gpu.counters[key] for key in ("retired_sbe", "retired_dbe") if key in gpu.counters]
    if pending is None and not retired:
        return None  # A100 and newer remap rows instead
    total, limit = sum(retired), policy.gpus.retired_pages_max
    observed = f"{total:.0f} retired" + (", retirement pending" if pending else "")
    if pending:
        return Result("retired_pages", UNFIT, gpu.index, observed,
                      "a page retirement takes effect only at the next driver reload", RESET)
    if total >= limit:
        return Result("retired_pages", UNFIT, gpu.index, observed, f"at or past the policy's {limit} pages",
                      "drain the node and run field diagnostics (dcgmi diag -r 3); the GPU may need replacing")
    return _ok("retired_pages", gpu, observed)


def _row_remap(gpu: GpuFacts, policy: Policy) -> Result | None:
    pending, failed = gpu.counters.get("remap_pending"), gpu.counters.get("remap_failed")
    if pending is None and failed is None:
        return None
    if failed:
        return Result("row_remap", UNFIT, gpu.index, "remapping failed",
                      "a failing row could not be remapped: no spare row is left in its bank",
                      "drain the node, run dcgmi diag -r 3 and open an RMA")
    if pending:
        return Result("row_remap", UNFIT, gpu.index, "remapping pending",
                      "a row remapping takes effect only at the next GPU reset", RESET)
    return _ok("row_remap", gpu, "none pending or failed")


def _throttling(gpu: GpuFacts, policy: Policy) -> Result | None:
    if gpu.clock_reasons is None:
        return None
    active = [name for name, bit in HARDWARE_THROTTLES.items() if gpu.clock_reasons & bit]
    if not active:
        return _ok("throttling", gpu, "no hardware or thermal slowdown")
    return Result("throttling", DEGRADED, gpu.index, ", ".join(active),
                  "the clocks are held down by " + ", ".join(active),
                  "check cooling (inlet temperature, fans, airflow) for thermal slowdown; the power supplies and "
                  "the BMC's event log for hardware slowdown and power brake")


def _temperature(gpu: GpuFacts, policy: Policy) -> Result | None:
    if gpu.temperature is None or gpu.slowdown_temperature is None:
        return None
    margin = gpu.slowdown_temperature - gpu.temperature
    observed = f"{gpu.temperature:g} °C, slowdown at {gpu.slowdown_temperature:g} °C"
    if margin < policy.gpus.temperature_margin_celsius:
        return Result("temperature", DEGRADED, gpu.index, observed,
                      f"within {policy.gpus.temperature_margin_celsius:g} °C of the slowdown temperature",
                      "check cooling: inlet temperature, fans, airflow, blanking panels")
    return _ok("temperature", gpu, observed)


def _power_limit(gpu: GpuFacts, policy: Policy) -> Result | None:
    limit = gpu.power_limit_watts
    if limit is None:
        return None
    minimum, source = policy.gpus.power_limit_min_watts, "the policy's minimum"
    if minimum is None:
        minimum, source = gpu.default_power_limit_watts, "the board's default limit"
    if minimum is None:
        return None
    observed = f"{limit:g} W enforced"
    if limit < minimum:
        return Result("power_limit", DEGRADED, gpu.index, observed, f"below {source} of {minimum:g} W",
                      "restore it (nvidia-smi -i <gpu> -pl <watts>); check whether the BMC or the chassis caps power")
    return _ok("power_limit", gpu, observed)


def _pcie_link(gpu: GpuFacts, policy: Policy) -> Result | None:
    if gpu.pcie_width is None and gpu.pcie_generation is None:
        return None
    observed = f"Gen{gpu.pcie_generation or '?'} x{gpu.pcie_width or '?'}"
    expected_width = policy.gpus.pcie_width or gpu.pcie_width_max
    expected_gen = policy.gpus.pcie_generation or gpu.pcie_generation_max
    if gpu.pcie_width is not None and expected_width is not None and gpu.pcie_width < expected_width:
        return Result("pcie_link", DEGRADED, gpu.index, observed,
                      f"link trained at x{gpu.pcie_width} of x{expected_width}: host transfers are slower",
                      "reseat the GPU or its riser at the next maintenance; check `lspci -vv` LnkSta against LnkCap")
    idle = gpu.clock_reasons is not None and bool(gpu.clock_reasons & pynvml.nvmlClocksEventReasonGpuIdle)
    if gpu.pcie_generation is not None and expected_gen is not None and gpu.pcie_generation < expected_gen:
        if idle:  # an idle GPU lowers its link speed to save power; that is no fault
            return _ok("pcie_link", gpu, observed + f" (idle; Gen{expected_gen} under load)")
        return Result("pcie_link", DEGRADED, gpu.index, observed,
                      f"link at Gen{gpu.pcie_generation} of Gen{expected_gen} while busy",
                      "check the slot's and BIOS's PCIe settings; reseat the GPU or its riser")
    return _ok("pcie_link", gpu, observed)


def _nvlink(gpu: GpuFacts, policy: Policy) -> Result | None:
    if not gpu.nvlink_up:
        return None
    up = sum(gpu.nvlink_up.values())
    down = [str(link) for link, active in sorted(gpu.nvlink_up.items()) if not active]
    expected = policy.gpus.nvlink_links
    observed = f"{up} of {len(gpu.nvlink_up)} links up"
    if down or (expected is not None and up < expected):
        reason = f"link(s) {', '.join(down)} down" if down else f"the policy expects {expected} links up"
        return Result("nvlink", UNFIT, gpu.index, observed, reason,
                      "drain the node; check `nvidia-smi nvlink -s` and the fabric manager's log, then reset the GPUs "
                      "or reboot")
    return _ok("nvlink", gpu, observed)


def _fabric(gpu: GpuFacts, policy: Policy) -> Result | None:
    if not policy.gpus.fabric or gpu.fabric_state is None:
        return None
    if gpu.fabric_state == pynvml.NVML_GPU_FABRIC_STATE_COMPLETED and gpu.fabric_status == pynvml.NVML_SUCCESS:
        return _ok("fabric", gpu, "registered")
    states = {pynvml.NVML_GPU_FABRIC_STATE_NOT_STARTED: "not started",
              pynvml.NVML_GPU_FABRIC_STATE_IN_PROGRESS: "in progress",
              pynvml.NVML_GPU_FABRIC_STATE_COMPLETED: "completed"}
    observed = f"registration {states.get(gpu.fabric_state, str(gpu.fabric_state))}, status {gpu.fabric_status}"
    return Result("fabric", UNFIT, gpu.index, observed,
                  "the GPU is not registered with the NVSwitch fabric: CUDA reports the system not ready",
                  "check that nvidia-fabricmanager is running and its log (/var/log/fabricmanager.log); restart it, "
                  "or reboot if it cannot register the GPUs")


def _persistence_mode(gpu: GpuFacts, policy: Policy) -> Result | None:
    if not policy.gpus.persistence_mode or gpu.persistence_mode is None:
        return None
    if gpu.persistence_mode:
        return _ok("persistence_mode", gpu, "enabled")
    return Result("persistence_mode", DEGRADED, gpu.index, "disabled",
                  "without persistence the driver tears the GPU down when idle: slow job starts, settings lost",
                  "run nvidia-persistenced (systemctl enable --now nvidia-persistenced)")


def _mig(gpu: GpuFacts, policy: Policy) -> Result | None:
    wanted, profiles = policy.gpus.mig, tuple(sorted(policy.gpus.mig_profiles))
    if gpu.mig_enabled is None or (wanted is None and not profiles):
        return None
    observed = "enabled" if gpu.mig_enabled else "disabled"
    if gpu.mig_enabled:
        observed += f" ({', '.join(gpu.mig_profiles) or 'no instances'})"
    if wanted is not None and gpu.mig_enabled != (wanted == "enabled"):
        return Result("mig", UNFIT, gpu.index, observed, f"the policy expects MIG {wanted}",
                      f"nvidia-smi -i <gpu> -mig {1 if wanted == 'enabled' else 0} while the GPU is idle, then reset "
                      "it")
    if gpu.mig_enabled and profiles and gpu.mig_profiles != profiles:
        return Result("mig", UNFIT, gpu.index, observed, f"the policy expects instances {', '.join(profiles)}",
                      "recreate the instances (nvidia-smi mig -cgi ... -C) or let the MIG manager apply its layout")
    return _ok("mig", gpu, observed)


def _xid(gpu: GpuFacts, policy: Policy, xids: KernelXids) -> Result:
    if xids.error:
        return Result("xid", UNKNOWN, gpu.index, "kernel log not readable", xids.error)
    seen = xids.of(gpu.pci_bus_id)
    if not seen:
        return _ok("xid", gpu, "none since boot")
    observed = ", ".join(f"{code} ×{count}" for code, count in sorted(seen.items()))
    for status, codes in ((UNFIT, policy.xid.unfit), (DEGRADED, policy.xid.degraded)):
        matched = sorted(code for code in seen if code in codes)
        if matched:
            names = "; ".join(f"{code}: {CATALOG[code].name}" if code in CATALOG else str(code) for code in matched)
            return Result("xid", status, gpu.index, observed, f"XID {names} since boot",
                          "see the runbook of FleetscopeGPUXidError for what each code needs; most need a GPU reset "
                          "or a reboot, 79 a power cycle")
    # Application XIDs (13, 31, 43, 45, ...) follow a job's fault, never the GPU's: reported, never failing.
    return _ok("xid", gpu, observed + " (application faults)")


_GPU_CHECKS: tuple[Callable[[GpuFacts, Policy], Result | None], ...] = (
    _model, _ecc_mode, _ecc_uncorrectable, _retired_pages, _row_remap, _throttling, _temperature, _power_limit,
    _pcie_link, _nvlink, _fabric, _persistence_mode, _mig)


# ---- per node ------------------------------------------------------------------------------------------------

def _node(check: str, status: str, observed: str, reason: str = "", recommendation: str = "") -> Result:
    return Result(check, status, None, observed, reason, recommendation)


def _nvml_library(nvml: NodeGpuFacts) -> Result:
    if nvml.error:
        return _node("nvml_library", UNFIT, nvml.error,
                     "NVML cannot be used: no GPU on this node can be checked or used",
                     "check `nvidia-smi`, that the driver is loaded (lsmod | grep nvidia) and matches the library")
    return _node("nvml_library", OK, f"driver {nvml.driver_version}")


def _gpu_count(nvml: NodeGpuFacts, policy: Policy) -> Result | None:
    expected = policy.gpus.count
    if expected is None or nvml.error:
        return None
    found = len(nvml.gpus)
    if found < expected:
        return _node("gpu_count", UNFIT, f"{found} GPUs", f"the policy expects {expected}",
                     "a GPU is missing from the bus: check `lspci -d 10de:` and the kernel log for XID 79; power-cycle")
    return _node("gpu_count", OK, f"{found} GPUs")


def _version_matches(found: str, expected: str) -> bool:
    """'550.90.07' matches 550.90.07, 550.90 and 550: a prefix of whole components."""
    found_parts, expected_parts = found.split("."), expected.split(".")
    return found_parts[:len(expected_parts)] == expected_parts


def _driver(nvml: NodeGpuFacts, policy: Policy) -> Result | None:
    return _version("driver_version", nvml.driver_version, policy.driver.version, nvml.error,
                    "install the driver the policy names, or correct the policy")


def _cuda(nvml: NodeGpuFacts, policy: Policy) -> Result | None:
    return _version("cuda_version", nvml.cuda_version, policy.driver.cuda, nvml.error,
                    "the CUDA version is the driver's: install a driver that supports it")


def _version(check: str, found: str, expected: str | None, error: str, advice: str) -> Result | None:
    if expected is None or error:
        return None
    if _version_matches(found, expected):
        return _node(check, OK, found)
    return _node(check, UNFIT, found or "unknown", f"the policy expects {expected}", advice)


def _infiniband(host: HostFacts, policy: Policy) -> Result | None:
    if not host.rdma_readable:
        return _node("infiniband", UNKNOWN, "sysfs not readable", "cannot list /sys/class/infiniband")
    expected, rate = policy.infiniband.ports, policy.infiniband.rate_gbps
    if not host.rdma_ports and expected is None:
        return None
    active = [port for port in host.rdma_ports if port.state == ACTIVE]
    inactive = [f"{port.name} {port.state_text or 'unreadable'}" for port in host.rdma_ports if port.state != ACTIVE]
    slow = [f"{port.name} at {port.rate_gbps:g} Gb/s" for port in active
            if rate is not None and port.rate_gbps is not None and port.rate_gbps < rate]
    observed = f"{len(active)} of {len(host.rdma_ports)} ports active"
    advice = ("check the cables and the switch ports (ibstat, mlxlink -d <device> -m); a port below its rate has "
              "trained at fewer lanes or a lower speed")
    if expected is not None and len(active) < expected:
        return _node("infiniband", UNFIT, observed, f"the policy expects {expected} active; "
                     + "; ".join(inactive or ["ports missing"]), advice)
    if slow:
        return _node("infiniband", UNFIT, observed, f"below the policy's {rate:g} Gb/s: " + "; ".join(slow), advice)
    if inactive:
        return _node("infiniband", DEGRADED, observed, "not active: " + "; ".join(inactive), advice)
    return _node("infiniband", OK, observed)


def _listed(value: str) -> tuple[bool, bool, list[str]]:
    """NCCL's list syntax (NCCL_IB_HCA, NCCL_SOCKET_IFNAME): '^' excludes, '=' matches exactly, else by prefix."""
    exclude = value.startswith("^")
    value = value.removeprefix("^")
    exact = value.startswith("=")
    return exclude, exact, [item for item in value.removeprefix("=").split(",") if item]


def _present(names: Iterable[str], wanted: str, exact: bool) -> bool:
    return any(name == wanted if exact else name.startswith(wanted) for name in names)


def _nccl_env(host: HostFacts, policy: Policy) -> Result | None:
    if not policy.nccl_env or not host.nccl_env:
        return None
    problems = []
    hca = host.nccl_env.get("NCCL_IB_HCA")
    if hca is not None:
        exclude, exact, items = _listed(hca)
        devices = {port.device for port in host.rdma_ports}
        missing = [item for item in items if not _present(devices, item.split(":")[0], exact)]
        if missing and not exclude:
            problems.append(f"NCCL_IB_HCA names {', '.join(missing)}, not on this node")
    ifname = host.nccl_env.get("NCCL_SOCKET_IFNAME")
    if ifname is not None and host.net_interfaces is not None:
        exclude, exact, items = _listed(ifname)
        missing = [item for item in items if not _present(host.net_interfaces, item, exact)]
        if missing and not exclude:
            problems.append(f"NCCL_SOCKET_IFNAME names {', '.join(missing)}, not an interface here")
    observed = " ".join(f"{name}={value}" for name, value in sorted(host.nccl_env.items()))
    if problems:
        return _node("nccl_env", UNFIT, observed, "; ".join(problems),
                     "correct the job environment (or the prolog that sets it) for this node's devices")
    return _node("nccl_env", OK, observed)


def _limit(check: str, value: int | None, minimum: int | None, what: str, advice: str, unit: str) -> Result | None:
    if minimum is None or value is None:
        return None
    unlimited = value == resource.RLIM_INFINITY
    observed = "unlimited" if unlimited else f"{value} {unit}"
    if unlimited or (minimum != UNLIMITED and value >= minimum):
        return _node(check, OK, observed)
    wanted = "unlimited" if minimum == UNLIMITED else f"at least {minimum}"
    return _node(check, DEGRADED, observed, f"{what}: the policy wants {wanted}", advice)


def _memlock(host: HostFacts, policy: Policy) -> Result | None:
    if not host.rdma_ports:
        return None  # only RDMA pins memory for the network
    return _limit("memlock", host.memlock, policy.limits.memlock, "locked-memory limit",
                  "RDMA registration (ibv_reg_mr) fails past it: set memlock unlimited in "
                  "/etc/security/limits.conf and slurmd's or the container runtime's LimitMEMLOCK", "bytes")


def _nofile(host: HostFacts, policy: Policy) -> Result | None:
    return _limit("nofile", host.nofile, policy.limits.nofile, "open-file limit",
                  "raise nofile in /etc/security/limits.conf and the service's LimitNOFILE", "files")


def _hugepages(host: HostFacts, policy: Policy) -> Result | None:
    wanted = policy.limits.hugepages
    if wanted is None or host.hugepages is None:
        return None
    if host.hugepages >= wanted:
        return _node("hugepages", OK, f"{host.hugepages} pages")
    return _node("hugepages", DEGRADED, f"{host.hugepages} pages", f"the policy wants at least {wanted}",
                 "set vm.nr_hugepages (sysctl) or hugepages= on the kernel command line")


def _clock(host: HostFacts, policy: Policy) -> Result | None:
    if not policy.clock_sync:
        return None
    if host.clock.synchronized is None:
        return _node("clock_sync", UNKNOWN, host.clock.detail)
    if host.clock.synchronized:
        return _node("clock_sync", OK, host.clock.detail)
    return _node("clock_sync", DEGRADED, "not synchronized", host.clock.detail,
                 "start chrony, ntpd or systemd-timesyncd (timedatectl); logs and traces across nodes disagree "
                 "without it")
