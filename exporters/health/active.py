"""`fleetscope check --active`: checks that run work on the GPUs, so they run between jobs, never under one.

With DCGM installed (`dcgmi` on the PATH, or --active.dcgmi), its diagnostics at the level asked for
(dcgm_diag.py), one result per GPU from every test that names it. Otherwise, with PyTorch, burn.py's measurements
against the policy's `active` figures: a GEMM burn and a host-to-device copy on each GPU, and an all-reduce across
the node's GPUs where torch.distributed has NCCL. Their results are checks like the passive ones, named apart
(ACTIVE_GPU_CHECKS, ACTIVE_NODE_CHECKS), and `--record` keeps the last active run for the exporter to serve.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from fleetscope.exporters.health import burn, dcgm_diag
from fleetscope.exporters.health.model import DEGRADED, OK, UNFIT, UNKNOWN, Result
from fleetscope.exporters.health.policy import Policy

# Names apart from the passive checks' (checks.GPU_CHECKS, NODE_CHECKS); none is both a GPU's and the node's.
ACTIVE_GPU_CHECKS = ("active_dcgm_diag", "active_gemm", "active_h2d_bandwidth")
ACTIVE_NODE_CHECKS = ("active_suite", "active_allreduce")
ENGINES = ("auto", "dcgm", "torch")

_DCGM_ADVICE = ("drain the node; read the failing test's message (dcgmi diag -r 3 -j for the long run); reset the GPU "
                "or reboot and rerun; a failure that repeats needs the vendor, with nvidia-bug-report.sh and the "
                "diagnostic's JSON")
_ADVICE = {
    "active_gemm": "check clocks and throttling (nvidia-smi -q -d PERFORMANCE,CLOCK), the power limit and cooling; "
                   "rerun on an idle node; a GPU that stays slow needs the vendor",
    "active_h2d_bandwidth": "check the PCIe link (lspci -vv: LnkSta against LnkCap), NUMA placement and IOMMU "
                            "settings; reseat the GPU or its riser",
    "active_allreduce": "check NVLink (nvidia-smi nvlink -s), the fabric manager and NCCL_P2P_* settings; compare "
                        "with nccl-tests' all_reduce_perf on the node",
}


@dataclass(frozen=True)
class Options:
    engine: str = "auto"  # auto: DCGM where dcgmi is found, else PyTorch
    level: int = 1  # dcgmi diag -r
    dcgmi: str = "dcgmi"
    timeout: float | None = None  # for dcgmi; None: dcgm_diag.TIMEOUTS[level]
    devices: tuple[str, ...] | None = None  # torch devices, GPU i on devices[i]; None: every CUDA device
    allreduce_backend: str = "nccl"  # gloo runs it on CPU, as the tests do
    sizes: burn.Sizes = field(default_factory=burn.Sizes)


def run(options: Options, policy: Policy) -> list[Result]:
    engine = options.engine
    if engine == "auto":
        engine = "dcgm" if shutil.which(options.dcgmi) else "torch"
    if engine == "dcgm":
        return _dcgm(options)
    return _torch(options, policy)


# ---- DCGM ----------------------------------------------------------------------------------------------------

def _dcgm(options: Options) -> list[Result]:
    command = f"dcgmi diag -r {options.level}"
    try:
        diagnostic = dcgm_diag.run(options.dcgmi, options.level, options.timeout)
    except dcgm_diag.DiagError as error:
        return [Result("active_suite", UNKNOWN, None, command, str(error)[:400],
                       "check that the DCGM host engine runs (systemctl status nvidia-dcgm) and that no job holds "
                       "the GPUs")]
    return dcgm_results(diagnostic, options.level)


def dcgm_results(diagnostic: dcgm_diag.Diagnostic, level: int) -> list[Result]:
    """One active_dcgm_diag result per GPU the diagnostic names: the worst of its tests (a failed test unfit, a
    warning degraded); tests of the node as a whole count for every GPU. A runtime error is the suite's."""
    version = f" (DCGM {diagnostic.version})" if diagnostic.version else ""
    suite = f"dcgmi diag -r {level}{version}"
    if diagnostic.runtime_error:
        results = [Result("active_suite", UNKNOWN, None, suite, diagnostic.runtime_error[:400],
                          "read DCGM's message; it usually names a GPU in use or a host engine problem")]
    elif not diagnostic.results:
        return [Result("active_suite", UNKNOWN, None, suite, "the diagnostic reported no test")]
    else:
        results = [Result("active_suite", OK, None, f"{suite}: {len(diagnostic.results)} results")]
    gpus = sorted({gpu for test in diagnostic.results for gpu in test.gpus})
    for gpu in gpus:
        tests = [test for test in diagnostic.results if not test.gpus or gpu in test.gpus]
        failed = [test for test in tests if test.status == dcgm_diag.FAIL]
        warned = [test for test in tests if test.status == dcgm_diag.WARN]
        passed = sum(1 for test in tests if test.status == dcgm_diag.PASS)
        skipped = sum(1 for test in tests if test.status == dcgm_diag.SKIP)
        observed = (f"level {level}: {passed} passed, {len(failed)} failed, {len(warned)} warned, "
                    f"{skipped} skipped")
        bad = failed or warned
        if not bad:
            results.append(Result("active_dcgm_diag", OK, gpu, observed))
            continue
        reason = "; ".join(f"{test.test}: {test.messages[0] if test.messages else test.status}" for test in bad)
        results.append(Result("active_dcgm_diag", UNFIT if failed else DEGRADED, gpu, observed, reason[:400],
                              _DCGM_ADVICE))
    return results


# ---- PyTorch -------------------------------------------------------------------------------------------------

def _torch(options: Options, policy: Policy) -> list[Result]:
    try:
        torch = burn._torch()
    except burn.BurnError as error:
        return [Result("active_suite", UNKNOWN, None, "neither dcgmi nor PyTorch", str(error),
                       "install DCGM (datacenter-gpu-manager) or PyTorch built for CUDA on the node")]
    devices = options.devices
    if devices is None:
        devices = tuple(f"cuda:{index}" for index in range(torch.cuda.device_count()))
    if not devices:
        return [Result("active_suite", UNKNOWN, None, f"PyTorch {torch.__version__}, no CUDA device",
                       "PyTorch sees no GPU (a CPU build, or CUDA_VISIBLE_DEVICES empty)",
                       "install PyTorch built for CUDA, or DCGM")]
    sizes, figures, ratio = options.sizes, policy.active, policy.active.unfit_ratio
    allreduce = len(devices) > 1
    results = [Result("active_suite", OK, None, f"PyTorch {torch.__version__}: GEMM, host-to-device copy"
                      + (", all-reduce" if allreduce else "") + f" on {len(devices)} device(s)")]
    for gpu, device in enumerate(devices):
        results.append(measure("active_gemm", gpu, partial(burn.gemm_tflops, device, sizes.gemm,
                                                           sizes.gemm_iterations),
                               figures.gemm_tflops, ratio, "TFLOPS", "active.gemm_tflops"))
        results.append(measure("active_h2d_bandwidth", gpu,
                               partial(burn.copy_gbps, device, sizes.copy_bytes, sizes.copy_iterations),
                               figures.h2d_gbps, ratio, "GB/s", "active.h2d_gbps"))
    if allreduce:
        device_type = "cuda" if devices[0].startswith("cuda") else "cpu"
        if options.allreduce_backend == "nccl" and not burn.nccl_available():
            results.append(Result("active_allreduce", UNKNOWN, None, "torch.distributed has no NCCL",
                                  "this PyTorch build cannot run NCCL collectives"))
        else:
            results.append(measure(
                "active_allreduce", None,
                lambda: burn.allreduce_busbw(len(devices), options.allreduce_backend, device_type,
                                             sizes.allreduce_bytes, sizes.allreduce_iterations),
                figures.allreduce_busbw_gbps, ratio, "GB/s bus bandwidth", "active.allreduce_busbw_gbps"))
    return results


def measure(check: str, gpu: int | None, take: Callable[[], float], expected: float | None, ratio: float,
            unit: str, key: str) -> Result:
    """The measurement `take` makes, judged against `expected`: below it degraded, below ratio of it unfit. A GPU
    that errors (CUDA error, a rank that fails) is unfit; one that is out of memory is busy, not broken."""
    try:
        value = take()
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError subclasses, burn.BurnError its own
        text = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        if "OutOfMemory" in type(error).__name__ or "out of memory" in text:
            return Result(check, UNKNOWN, gpu, "not measured", f"{text}: the GPU is in use",
                          "run the active checks between jobs")
        return Result(check, UNFIT, gpu, "failed", text, _ADVICE[check])
    observed = f"{value:.1f} {unit}"
    if expected is None:
        return Result(check, OK, gpu, observed + f" (not judged: the policy sets no {key})")
    if value >= expected:
        return Result(check, OK, gpu, observed + f" (expected {expected:g})")
    status = UNFIT if value < expected * ratio else DEGRADED
    return Result(check, status, gpu, observed, f"below the policy's {key} of {expected:g} {unit.split()[0]}"
                  + (f" (under {ratio:g} of it)" if status == UNFIT else ""), _ADVICE[check])
