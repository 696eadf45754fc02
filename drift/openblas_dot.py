"""np.vecdot of two float64 vectors, to the bit, without waking OpenBLAS's threads.

numpy hands a dot product to OpenBLAS, which splits one of more than 10,000 elements into as many
slices as it has threads, sums each slice in a thread, and adds the slices' sums in order, from
zero (interface ddot and driver/others/blas_l1_thread.c in OpenBLAS 0.3.x). The bits depend on
that split, so a sum that is to equal SciPy's must be split the same way. Each such call wakes
OpenBLAS's threads, which then spin for about a tenth of a second of CPU waiting for more work:
on a two-core machine, a column's drift test in each core, that spinning takes a third of the
time. Here the same slices are summed in the calling thread, with numpy's OpenBLAS held at one
thread for the few microseconds each sum takes, and added in OpenBLAS's order.

The split is checked against np.vecdot itself on first use; where it differs (another BLAS, or an
OpenBLAS that splits otherwise), np.vecdot is called as it is.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

# OpenBLAS's ddot uses one thread up to this many elements.
ONE_THREAD_LIMIT = 10_000
PTHREADS = 1  # openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP

_lock = threading.Lock()
_finding = threading.Lock()
_holders = 0  # calls inside a one-thread section; the last one out restores the thread count
_threads = 1  # numpy's OpenBLAS thread count when the first of them came in


def vecdot(x: np.ndarray, y: np.ndarray) -> float:
    """float(np.vecdot(x, y)) for contiguous 1-d float64 arrays of the same length, to the bit."""
    library = _numpy_openblas() if x.size > ONE_THREAD_LIMIT else None
    if library is None:
        return float(np.vecdot(x, y))
    with _held(library) as threads:
        return _sum_of_slices(x, y, threads)


@contextmanager
def one_thread() -> Iterator[str | None]:
    """numpy's OpenBLAS at one thread for the block, counted with every other holder (the sums above among them): the
    last one out restores the count the first one in found. Yields the library's path; None where it was not found,
    and nothing is held."""
    library = _numpy_openblas()
    if library is None:
        yield None
        return
    with _held(library):
        yield library.path


def _sum_of_slices(x: np.ndarray, y: np.ndarray, threads: int) -> float:
    """OpenBLAS's ddot on `threads` threads: slices of ceil(left / threads left) elements, their sums added in
    order from zero, each summed as one thread sums it (np.vecdot while OpenBLAS holds one thread)."""
    total, start = 0.0, 0
    for left in range(threads, 0, -1):
        width = -(-(x.size - start) // left)
        total += float(np.vecdot(x[start:start + width], y[start:start + width]))
        start += width
    return total


@contextmanager
def _held(library: OpenBLAS) -> Iterator[int]:
    """The library at one thread for the block; yields the thread count the first holder found."""
    global _holders, _threads
    with _lock:
        if _holders == 0:
            _threads = library.get_num_threads()
            if _threads > 1:
                library.set_num_threads(1)
        _holders += 1
        threads = _threads
    try:
        yield threads
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _threads > 1:
                library.set_num_threads(_threads)


def _numpy_openblas() -> OpenBLAS | None:
    """The OpenBLAS numpy calls, if the slices above reproduce its dot products."""
    with _finding:  # no thread holds OpenBLAS at one thread while the check below calls np.vecdot as it is
        return _found()


@functools.cache
def _found() -> OpenBLAS | None:
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ImportError:
        return None
    paths = [library.filepath for library in ThreadpoolController().lib_controllers
             if library.internal_api == "openblas"]
    bundled = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    ours = [path for path in paths if os.path.dirname(path) == bundled] or paths
    library = OpenBLAS.open(ours[0]) if len(ours) == 1 else None
    return library if library is not None and _splits_as_numpy(library) else None


class OpenBLAS:
    """An OpenBLAS library's thread count, read and set through its own functions. (threadpoolctl's
    set_num_threads does nothing outside the first thread that called it, and a column's test runs in
    whichever thread of a pool is free.)"""

    def __init__(self, path: str, get: Callable[[], int], set_: Callable[[int], None]) -> None:
        self.path, self.get_num_threads, self.set_num_threads = path, get, set_

    @classmethod
    def open(cls, path: str) -> OpenBLAS | None:
        """The library at `path` if it runs its threads with pthreads (OpenMP keeps a count per thread)."""
        library = ctypes.CDLL(path)
        for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
            get = getattr(library, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(library, f"{prefix}openblas_set_num_threads{suffix}", None)
            parallel = getattr(library, f"{prefix}openblas_get_parallel{suffix}", None)
            if get is not None and set_ is not None and parallel is not None:
                return cls(path, get, set_) if parallel() == PTHREADS else None
        return None


def _splits_as_numpy(library: OpenBLAS) -> bool:
    """Whether the slices give np.vecdot's bits, on sums whose order shows in their last bits."""
    rng = np.random.default_rng(0)
    for size in (ONE_THREAD_LIMIT + 1, 65_537, 250_003):
        x, y = rng.random(size) * np.exp(rng.normal(0, 8, size)), rng.random(size)
        expected = float(np.vecdot(x, y))
        with _held(library) as threads:
            if _sum_of_slices(x, y, threads) != expected:
                return False
    return True
