"""scipy.stats.wasserstein_distance of two sorted samples, to the bit, in buffers a thread reuses.

SciPy (1.16 and later, stats._stats_py._cdf_distance) merges the samples, takes |F_u - F_v| and the
width of each step between successive merged values, and hands both to np.vecdot, which numpy passes
to OpenBLAS's dot product. That product adds in an order of its own (sixteen lanes of fused
multiply-adds, and as many slices as OpenBLAS has threads), so the same terms summed any other way
differ in the last bits. The terms here are SciPy's, at SciPy's positions in the merge, summed by
the same dot product: the same bits under the same OpenBLAS thread count (see openblas_dot).

Where values tie, the step's width is zero and its term adds nothing, whatever |F_u - F_v| is
there; so the CDFs need to be right only where a step has width, and there the values of u at or
below the merged value are those merged up to it. That count is a running sum over the merge, with
no binary search.

The arrays are as long as both samples together. Allocated anew for every column they would be
faulted in page by page each time (glibc hands large freed blocks back to the kernel), which
costs more than the arithmetic; each thread keeps its buffers instead, as large as the largest
merge it has done, until release() or the thread's end.
"""

from __future__ import annotations

import threading

import numpy as np

from fleetscope.drift import openblas_dot

_local = threading.local()


def wasserstein_distance(u: np.ndarray, v: np.ndarray) -> float:
    """The first Wasserstein distance between two sorted, finite, non-empty float64 samples."""
    size = u.size + v.size
    values, widths, cdf_gap, from_u = _buffers(size)
    np.concatenate((u, v), out=values)
    order = values.argsort(kind="stable")  # two sorted runs: timsort merges them once
    np.less(order, u.size, out=from_u)
    merged = cdf_gap  # free until the CDFs are computed
    np.take(values, order, out=merged)
    np.subtract(merged[1:], merged[:-1], out=widths[:-1])
    seen = np.cumsum(from_u[:-1], dtype=np.int64, out=order[:-1])  # values of u merged so far
    np.divide(seen, u.size, out=cdf_gap[:-1])
    np.cumsum(np.logical_not(from_u, out=from_u)[:-1], dtype=np.int64, out=seen)  # and of v
    v_cdf = np.divide(seen, v.size, out=values[:-1])
    np.subtract(cdf_gap[:-1], v_cdf, out=cdf_gap[:-1])
    np.abs(cdf_gap[:-1], out=cdf_gap[:-1])
    return openblas_dot.vecdot(cdf_gap[:-1], widths[:-1])


def release() -> None:
    """Drop this thread's buffers."""
    _local.__dict__.pop("buffers", None)


def _buffers(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This thread's buffers, at least `size` long: three of float64 and one of bool."""
    held = getattr(_local, "buffers", None)
    if held is None or held[0].size < size:
        held = (np.empty(size), np.empty(size), np.empty(size), np.empty(size, dtype=bool))
        _local.buffers = held
    return tuple(buffer[:size] for buffer in held)  # type: ignore[return-value]
