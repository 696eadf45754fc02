"""One label value per NCCL operation, and the bus bytes NCCL's own tools count for it.

The same operation arrives under several names: the Inspector plugin writes ncclFuncToString's
names (plugins/profiler/inspector/inspector.cc in NVIDIA/nccl: "All2All" on master, while
released NCCL 2.28 to 2.30 writes "Invalid" for AlltoAll, Gather and Scatter, which its table
lacks), torch.distributed calls it all_to_all_single, nccl-tests "AlltoAll". Every source's
name goes through canonical() before it becomes a label.

Bus bandwidth follows the Inspector's inspectorComputeOpBw and nccl-tests (src/*.cu, *GetBw):
coll_msg_size_bytes is the count each rank passes to NCCL (src/collectives.cc: sendcount for
AllGather, recvcount for ReduceScatter), so the operations that move one such piece to or from
every rank carry n pieces of traffic, times the (n-1)/n that crosses the bus.
"""

from __future__ import annotations

UNKNOWN = "Unknown"
_CANONICAL = {name.lower(): name for name in (
    "AllReduce", "AllGather", "AllGatherV", "ReduceScatter", "Broadcast", "Reduce", "AlltoAll", "Gather", "Scatter",
    "Send", "Recv", "SendRecv")}
_CANONICAL.update({"all2all": "AlltoAll", "invalid": UNKNOWN})

_ONE_PIECE_PER_RANK = frozenset({"AllGather", "AllGatherV", "ReduceScatter", "AlltoAll", "Gather", "Scatter"})
_ONCE_OVER_THE_BUS = frozenset({"Broadcast", "Reduce", "Send", "Recv", "SendRecv"})


def canonical(name: str) -> str:
    """The label value for an operation name from any source; names not known pass unchanged."""
    return _CANONICAL.get(name.lower(), name)


def algorithm_bytes(operation: str, size_bytes: int, n_ranks: int) -> int:
    """The bytes one operation moves as its algorithm bandwidth counts them (the Inspector's coll_algobw_gbs
    times the time): n pieces for the operations that move a piece to or from every rank."""
    return size_bytes * max(n_ranks, 1) if operation in _ONE_PIECE_PER_RANK else size_bytes


def bus_factor(operation: str, n_ranks: int) -> float | None:
    """Bus bandwidth over algorithm bandwidth (nccl-tests' doc/PERFORMANCE.md); None where none is known
    (an "Unknown" operation, for which the Inspector itself writes 0)."""
    n = max(n_ranks, 1)
    if operation == "AllReduce":
        return 2 * (n - 1) / n
    if operation in _ONE_PIECE_PER_RANK:
        # nccl-tests' factor for AlltoAll, Gather and Scatter too; the Inspector names them "Invalid" or writes 0.
        return (n - 1) / n
    if operation in _ONCE_OVER_THE_BUS:
        return 1.0
    return None


def bus_bytes(operation: str, size_bytes: int, n_ranks: int) -> float | None:
    """Bytes that crossed the bus for one operation of `size_bytes` per rank, so that bus bytes /
    seconds is the Inspector's coll_busbw_gbs and nccl-tests' busbw; None where no factor is known."""
    factor = bus_factor(operation, n_ranks)
    return None if factor is None else algorithm_bytes(operation, size_bytes, n_ranks) * factor


def bandwidths(operation: str, size_bytes: int, n_ranks: int, exec_us: int) -> tuple[float, float]:
    """(coll_algobw_gbs, coll_busbw_gbs) as the Inspector writes them for a record: from whole microseconds,
    0 for an operation of no known factor or no time, rounded to 6 places."""
    factor = bus_factor(operation, n_ranks)
    if factor is None or exec_us <= 0:
        return 0.0, 0.0
    algobw = algorithm_bytes(operation, size_bytes, n_ranks) / 1e9 / (exec_us / 1e6)
    return round(algobw, 6), round(algobw * factor, 6)
