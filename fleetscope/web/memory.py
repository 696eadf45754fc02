"""Giving memory back to the system after a burst of large request bodies.

A service that decodes large bodies (16 MiB of JSON become hundreds of MiB of objects) kept
most of that memory after a burst, in four places:

- reference cycles: a refused write's exception holds, through its traceback, the frames of the
  write and the body and rows they decoded, in a cycle with the worker thread's future; only a
  full garbage collection frees them, and with a hundred thousand objects from the libraries
  to traverse the interpreter runs one rarely;
- glibc's malloc keeps freed memory in its arenas (one per thread, up to 8 per core) unless
  malloc_trim() is called;
- Arrow's bundled allocator (mimalloc or jemalloc) keeps freed pages in per-thread heaps, which
  releasing from another thread does not reach;
- Python's small-object allocator keeps a 1 MiB arena while any object in it lives.

configure(), called once by a long-lived service after its imports and before it serves, caps
glibc's arenas (unless MALLOC_ARENA_MAX or GLIBC_TUNABLES sets them), has Arrow allocate with
malloc so that trimming reaches its memory too (unless ARROW_DEFAULT_MEMORY_POOL chooses), and
freezes the objects made so far, so that a full collection traverses only what the service made
since (well under a millisecond instead of about 50 holding the interpreter's lock), and the
interpreter's own full collections come often enough to free the cycles above.

give_back(), called as each write ends, asks a background thread to collect cycles, trim
glibc's heaps and release the Arrow pool's unused memory, and returns at once. The thread waits
a moment (the asking write is still unwinding), then does it, at most once per interval however
often it is asked, and once more after the last request, so memory returns as a burst ends.
Where glibc, mallopt or malloc_trim is absent (musl, macOS) a step is skipped, never an error.
Measured with benchmarks/memory_after_burst.py (docs/operations/security-and-limits.md, Peak memory).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence

from fleetscope import log

ARENA_MAX = 2  # glibc's default is 8 per core, each keeping its own freed memory
INTERVAL_SECONDS = 2.0  # the least time between two give-backs
DELAY_SECONDS = 0.5  # from being asked to giving back: the asking write's objects become garbage meanwhile
_M_ARENA_MAX = -8  # mallopt's parameter, from glibc's malloc.h

_log = log.get("fleetscope.web.memory")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):  # mallopt and malloc_trim are glibc's
        return None
    try:
        return ctypes.CDLL(None)  # the C library already loaded into the process
    except OSError:
        return None


def _c_function(name: str) -> Callable[..., int] | None:
    libc = _libc()
    function = getattr(libc, name, None) if libc is not None else None
    if function is not None:
        function.restype = ctypes.c_int
    return function


def cap_arenas(arena_max: int = ARENA_MAX) -> int | None:
    """Caps glibc's malloc arenas at arena_max (the environment's MALLOC_ARENA_MAX or GLIBC_TUNABLES
    win); the cap in force, or None where it is not glibc's to set."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    mallopt = _c_function("mallopt")
    if mallopt is None or mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arena_max)) != 1:
        return None
    return arena_max


def trim_malloc() -> bool:
    """glibc's malloc_trim(0): the free memory of every arena back to the system. False where absent."""
    malloc_trim = _c_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(ctypes.c_size_t(0))  # ctypes releases the GIL for the call
    return True


def release_arrow_pool() -> bool:
    """Returns the unused memory of Arrow's default pool to the system, if pyarrow is loaded."""
    pyarrow = sys.modules.get("pyarrow")
    release = getattr(pyarrow.default_memory_pool(), "release_unused", None) if pyarrow is not None else None
    if release is None:
        return False
    release()
    return True


def arrow_from_malloc() -> str | None:
    """Arrow's default pool set to the system allocator (where malloc_trim reaches it), unless the
    environment's ARROW_DEFAULT_MEMORY_POOL chose one; the pool in force, or None without pyarrow loaded."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is None:
        return None
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ and _c_function("malloc_trim") is not None:
        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    return str(pyarrow.default_memory_pool().backend_name)


def collect_cycles() -> int:
    """A full garbage collection: what refused writes leave in reference cycles."""
    return gc.collect()


STEPS: tuple[Callable[[], object], ...] = (collect_cycles, trim_malloc, release_arrow_pool)


class GiveBack:
    """Runs `steps` in a daemon thread `delay` seconds after being asked, then rests `interval`
    seconds: asked again meanwhile, it runs them once more after that, never more often. Asking
    is cheap (sets an event) and never raises; a step that raises is logged, the others still run."""

    def __init__(self, steps: Sequence[Callable[[], object]] = STEPS, interval: float = INTERVAL_SECONDS,
                 delay: float = DELAY_SECONDS, name: str = "fleetscope-give-back") -> None:
        self.steps, self.interval, self.delay, self.name = tuple(steps), interval, delay, name
        self.rounds = 0  # how many times the steps have run
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> bool:
        """Whether a request waits for the next round."""
        return self._wanted.is_set()

    def __call__(self) -> None:
        self._wanted.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            time.sleep(self.delay)
            for step in self.steps:
                try:
                    step()
                except Exception:  # giving memory back must never take the service down
                    _log.exception("giving memory back failed", extra={"step": getattr(step, "__name__", "?")})
            self.rounds += 1
            time.sleep(self.interval)


_give_back: GiveBack | None = None


def configure(arena_max: int = ARENA_MAX, interval: float = INTERVAL_SECONDS) -> dict[str, object]:
    """Once, at the start of a long-lived service, after its imports: caps glibc's arenas, has Arrow
    allocate with malloc, freezes the objects made so far and enables give_back(). Returns what is
    in force, for the service to log."""
    global _give_back
    _give_back = GiveBack(STEPS, interval)
    gc.collect()
    gc.freeze()  # never collected, never traversed again: modules, classes, functions
    arrow_pool = arrow_from_malloc()
    return {"malloc_arena_max": cap_arenas(arena_max) or os.environ.get("MALLOC_ARENA_MAX", "glibc default"),
            "malloc_trim": _c_function("malloc_trim") is not None,
            "arrow_pool": arrow_pool or "not loaded",
            "gc_frozen_objects": gc.get_freeze_count(), "give_back_interval_seconds": interval}


def give_back() -> None:
    """Asks for unused memory to go back to the system; returns at once. A no-op until configure()
    has been called (tests and libraries that build a service in-process are left alone)."""
    if _give_back is not None:
        _give_back()
