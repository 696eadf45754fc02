"""The active checks PyTorch can run where DCGM is not installed: a GEMM burn (TFLOPS), a host-to-device copy
(GB/s), and an all-reduce across the node's GPUs (bus bandwidth as nccl-tests computes it: algbw * 2(n-1)/n).

Every measurement takes its device and sizes as arguments, so the timing logic runs on CPU in the tests (device
"cpu", small matrices, gloo for the all-reduce); on a node the defaults fill an H100 for a few seconds. torch is
imported where used: `fleetscope check` without --active never loads it.

The all-reduce runs one process per GPU (python -m fleetscope.exporters.health.burn), rendezvous on a loopback
port, each timing the same iterations; rank 0 reports the slowest rank's time, as a collective is as fast as its
slowest member.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from fleetscope.exporters.nccl.operations import bus_factor

# What fills a data-centre GPU for a moment and finishes in seconds: an 8192² bf16 GEMM is 1.1 TFLOP.
GEMM_SIZE = 8192
GEMM_ITERATIONS = 50
COPY_BYTES = 256 * 1024 * 1024
COPY_ITERATIONS = 10
ALLREDUCE_BYTES = 256 * 1024 * 1024
ALLREDUCE_ITERATIONS = 20
WARMUP = 3


class BurnError(Exception):
    """A measurement could not be made (no torch, CUDA error, a rank that failed or hung)."""


@dataclass(frozen=True)
class Sizes:
    gemm: int = GEMM_SIZE
    gemm_iterations: int = GEMM_ITERATIONS
    copy_bytes: int = COPY_BYTES
    copy_iterations: int = COPY_ITERATIONS
    allreduce_bytes: int = ALLREDUCE_BYTES
    allreduce_iterations: int = ALLREDUCE_ITERATIONS


def _torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise BurnError(f"PyTorch is not installed: {error}") from None
    return torch


def _synchronize(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_tflops(device: str, size: int = GEMM_SIZE, iterations: int = GEMM_ITERATIONS, dtype: str = "") -> float:
    """Dense matrix multiplies of size² by size² on `device`, in TFLOPS (2·size³ per multiply). dtype: bfloat16 on
    a GPU by default (the tensor cores' rate), float32 on CPU."""
    torch = _torch()
    target = torch.device(device)
    kind = getattr(torch, dtype or ("bfloat16" if target.type == "cuda" else "float32"))
    a = torch.randn(size, size, device=target, dtype=kind)
    b = torch.randn(size, size, device=target, dtype=kind)
    for _ in range(WARMUP):
        torch.matmul(a, b)
    _synchronize(torch, target)
    started = time.perf_counter()
    for _ in range(iterations):
        torch.matmul(a, b)
    _synchronize(torch, target)
    elapsed = time.perf_counter() - started
    return 2 * size ** 3 * iterations / max(elapsed, 1e-9) / 1e12


def copy_gbps(device: str, size_bytes: int = COPY_BYTES, iterations: int = COPY_ITERATIONS) -> float:
    """Host-to-device copies of `size_bytes` from pinned memory (pageable on CPU), in GB/s (10⁹ bytes)."""
    torch = _torch()
    target = torch.device(device)
    source = torch.empty(size_bytes, dtype=torch.uint8)
    if target.type == "cuda":
        source = source.pin_memory()
    destination = torch.empty(size_bytes, dtype=torch.uint8, device=target)
    for _ in range(min(WARMUP, iterations)):
        destination.copy_(source, non_blocking=True)
    _synchronize(torch, target)
    started = time.perf_counter()
    for _ in range(iterations):
        destination.copy_(source, non_blocking=True)
    _synchronize(torch, target)
    return size_bytes * iterations / max(time.perf_counter() - started, 1e-9) / 1e9


def busbw_gbps(size_bytes: int, seconds: float, ranks: int) -> float:
    """nccl-tests' all-reduce bus bandwidth: algbw (bytes / time) times 2(n-1)/n."""
    algbw = size_bytes / max(seconds, 1e-12) / 1e9
    return algbw * (bus_factor("AllReduce", ranks) or 0.0)


def nccl_available() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_nccl_available()


def allreduce_busbw(ranks: int, backend: str = "nccl", device_type: str = "cuda",
                    size_bytes: int = ALLREDUCE_BYTES, iterations: int = ALLREDUCE_ITERATIONS,
                    timeout: float = 300.0) -> float:
    """A local all-reduce across `ranks` processes (rank r on cuda:r, or on CPU with gloo), bus bandwidth in GB/s."""
    if ranks < 2:
        raise BurnError("an all-reduce needs at least two ranks")
    size_bytes = max(4, size_bytes // 4 * 4)  # whole float32 elements, as the ranks reduce them
    port = _free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(ranks)}
    command = [sys.executable, "-m", "fleetscope.exporters.health.burn", f"--backend={backend}",
               f"--device-type={device_type}", f"--bytes={size_bytes}", f"--iterations={iterations}"]
    processes = [subprocess.Popen(command, env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for rank in range(ranks)]
    deadline = time.monotonic() + timeout
    outputs: list[tuple[bytes, bytes]] = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=max(0.1, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        raise BurnError(f"the all-reduce of {ranks} ranks did not finish within {timeout:g}s") from None
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    failed = [(rank, err) for rank, (process, (_, err)) in enumerate(zip(processes, outputs, strict=True))
              if process.returncode != 0]
    if failed:
        rank, err = failed[0]
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise BurnError(f"rank {rank} of the all-reduce failed: {tail[0][:300]}")
    try:
        seconds = float(json.loads(outputs[0][0])["seconds"])
    except (ValueError, KeyError, TypeError):
        raise BurnError("rank 0 of the all-reduce reported no time") from None
    return busbw_gbps(size_bytes, seconds, ranks)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _worker(backend: str, device_type: str, size_bytes: int, iterations: int) -> float:
    """One rank: the mean time of one all-reduce of `size_bytes` float32, the slowest rank's."""
    torch = _torch()
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}" if device_type == "cuda" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method="env://")
    try:
        tensor = torch.ones(size_bytes // 4, dtype=torch.float32, device=device)
        for _ in range(WARMUP):
            dist.all_reduce(tensor)
        _synchronize(torch, device)
        dist.barrier()
        started = time.perf_counter()
        for _ in range(iterations):
            dist.all_reduce(tensor)
        _synchronize(torch, device)
        elapsed = torch.tensor([(time.perf_counter() - started) / iterations], dtype=torch.float64, device=device)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        return float(elapsed.item())
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one rank of fleetscope check --active's all-reduce")
    parser.add_argument("--backend", default="nccl")
    parser.add_argument("--device-type", default="cuda")
    parser.add_argument("--bytes", type=int, default=ALLREDUCE_BYTES)
    parser.add_argument("--iterations", type=int, default=ALLREDUCE_ITERATIONS)
    args = parser.parse_args(argv)
    seconds = _worker(args.backend, args.device_type, args.bytes, args.iterations)
    if os.environ.get("RANK") == "0":
        sys.stdout.write(json.dumps({"seconds": seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
