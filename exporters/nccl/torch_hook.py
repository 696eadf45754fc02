"""For jobs that cannot load the NCCL Inspector plugin: time torch.distributed collectives and
write the records the NCCL collector reads, in the Inspector's own JSON format (v4.0, as
released NCCL writes it), with the quantities NCCL records: the message size is what each rank
passes to NCCL (the input of an all-gather, the output of a reduce-scatter, one peer's share of
an all-to-all), sequence numbers count each operation on its own, and the bandwidths are
computed as the Inspector computes them.

    import fleetscope.exporters.nccl.torch_hook as hook
    hook.install()   # after torch.distributed.init_process_group; once per process

Records go to $NCCL_INSPECTOR_DUMP_DIR (or the directory given) as <hostname>-pid<pid>.log,
flushed every second and at exit. Times are host-side wall-clock: exact for gloo and for any
blocking call; for asynchronous calls the time runs until the returned work completes. With
CUDA tensors under NCCL, a call returns once the kernel is queued, so load the Inspector
plugin there for GPU-side timing.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import inspect
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from fleetscope.exporters.nccl.inspector import Communicator, format_lines
from fleetscope.exporters.nccl.operations import bandwidths


@dataclass(frozen=True)
class _Wrapped:
    operation: str  # as operations.canonical() names it
    kind: str  # "coll" or "p2p"
    size_argument: str  # the argument whose bytes are what one rank passes to NCCL
    per_peer: bool = False  # that argument holds one piece for every rank: divide by the group's size


WRAPPED: dict[str, _Wrapped] = {
    "all_reduce": _Wrapped("AllReduce", "coll", "tensor"),
    "broadcast": _Wrapped("Broadcast", "coll", "tensor"),
    "reduce": _Wrapped("Reduce", "coll", "tensor"),
    "all_gather": _Wrapped("AllGather", "coll", "tensor"),
    "all_gather_into_tensor": _Wrapped("AllGather", "coll", "input_tensor"),
    "reduce_scatter_tensor": _Wrapped("ReduceScatter", "coll", "output"),
    "all_to_all_single": _Wrapped("AlltoAll", "coll", "input", per_peer=True),
    "send": _Wrapped("Send", "p2p", "tensor"),
    "recv": _Wrapped("Recv", "p2p", "tensor"),
}


def _bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_bytes(item) for item in value)
    return 0


class InspectorWriter:
    """Buffers completed operations per communicator and appends them as Inspector dumps."""

    def __init__(self, dump_dir: Path, flush_interval: float):
        dump_dir.mkdir(parents=True, exist_ok=True)
        self.path = dump_dir / f"{socket.gethostname()}-pid{os.getpid()}.log"
        self._pending: dict[Communicator, list[dict]] = {}
        self._sequence: dict[tuple[str, str], int] = {}  # (comm, operation) for collectives, (comm, "p2p")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(flush_interval,), name="nccl-inspector-writer",
                                        daemon=True)
        self._thread.start()

    def record(self, comm: Communicator, operation: str, kind: str, size: int, started: float, ended: float,
               peer: int | None) -> None:
        exec_us = max(0, round((ended - started) * 1e6))
        algobw, busbw = bandwidths(operation, size, comm.n_ranks, exec_us)
        key = (comm.comm_id, operation if kind == "coll" else kind)
        with self._lock:
            sn = self._sequence[key] = self._sequence.get(key, 0) + 1
            body: dict[str, Any] = {kind: operation, f"{kind}_sn": sn}
            if kind == "p2p":
                body["p2p_peer"] = peer if peer is not None else -1
            body.update({f"{kind}_msg_size_bytes": size, f"{kind}_exec_time_us": exec_us,
                         f"{kind}_timing_source": "host_wallclock",
                         f"{kind}_algobw_gbs": algobw, f"{kind}_busbw_gbs": busbw,
                         "event_trace_ts": {f"{kind}_start_ts": int(started * 1e6),
                                            f"{kind}_stop_ts": int(ended * 1e6)}})
            self._pending.setdefault(comm, []).append({f"{kind}_perf": body})

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        lines = []
        now_us = int(time.time() * 1e6)
        for comm, records in pending.items():
            lines += format_lines(comm, records, now_us, socket.gethostname(), mechanism="fleetscope_torch_hook")
        if lines:
            # One write of whole lines, so a reader never sees half of one for long.
            with open(self.path, "a") as out:
                out.write("\n".join(lines) + "\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush()


class _Hook:
    def __init__(self, writer: InspectorWriter):
        self.writer = writer
        self.originals: dict[str, Callable] = {}
        self._comms: dict[int, Communicator] = {}

    def wrap(self, name: str) -> Callable:
        original = getattr(dist, name)
        wrapped = WRAPPED[name]
        operation, kind = wrapped.operation, wrapped.kind
        signature = inspect.signature(original)

        def timed(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs).arguments
            comm = self._comm(bound.get("group"))
            size = _bytes(bound.get(wrapped.size_argument))
            if wrapped.per_peer:
                size //= max(comm.n_ranks, 1)
            peer = bound.get("dst", bound.get("src")) if kind == "p2p" else None
            started = time.time()
            result = original(*args, **kwargs)
            if bound.get("async_op") and result is not None:
                result.get_future().then(
                    lambda _: self.writer.record(comm, operation, kind, size, started, time.time(), peer))
            else:
                self.writer.record(comm, operation, kind, size, started, time.time(), peer)
            return result

        return functools.update_wrapper(timed, original)

    def _comm(self, group: Any) -> Communicator:
        group = group if group is not None else dist.group.WORLD
        known = self._comms.get(id(group))
        if known is None:
            ranks = dist.get_process_group_ranks(group)
            job = os.environ.get("TORCHELASTIC_RUN_ID") or os.environ.get("SLURM_JOB_ID") or \
                f"{os.environ.get('MASTER_ADDR', '')}:{os.environ.get('MASTER_PORT', '')}"
            digest = hashlib.sha1(f"{job}/{','.join(map(str, ranks))}".encode()).hexdigest()[:14]
            world = dist.get_world_size()
            per_node = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world) or world))
            name = "world" if group is dist.group.WORLD else f"ranks {ranks[0]}-{ranks[-1]}"
            nnodes = len({rank // per_node for rank in ranks})  # launchers place ranks node by node
            known = self._comms[id(group)] = Communicator(f"0x{digest}", name, dist.get_rank(group), len(ranks),
                                                          nnodes, os.getpid())
        return known


_installed: _Hook | None = None


def install(dump_dir: str | os.PathLike | None = None, flush_interval: float = 1.0) -> InspectorWriter:
    """Starts timing torch.distributed calls in this process; returns the writer (close() flushes)."""
    global _installed
    if _installed is not None:
        return _installed.writer
    directory = Path(dump_dir or os.environ.get("NCCL_INSPECTOR_DUMP_DIR") or "nccl-inspector-unknown-jobid")
    hook = _Hook(InspectorWriter(directory, flush_interval))
    for name in WRAPPED:
        hook.originals[name] = getattr(dist, name)
        setattr(dist, name, hook.wrap(name))
    atexit.register(hook.writer.flush)
    _installed = hook
    return hook.writer


def uninstall() -> None:
    """Puts the original torch.distributed functions back and flushes what was recorded."""
    global _installed
    if _installed is None:
        return
    for name, original in _installed.originals.items():
        setattr(dist, name, original)
    _installed.writer.close()
    atexit.unregister(_installed.writer.flush)
    _installed = None
