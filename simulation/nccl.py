"""--simulate for NCCL: this node's eight ranks of a four-node training job, writing NCCL
Inspector JSON into a temporary directory the collector follows, as NCCL 2.30 writes it
(format v4.0, one self-contained line per record, numbered per operation, with the algorithm
and bus bandwidth NCCL computes from the per-rank message size).

Each training step runs a data-parallel AllReduce over all 32 ranks and a tensor-parallel
AllGather and ReduceScatter over the node's 8. Now and then a local rank straggles for a
while (it arrives late, so it waits least and the others wait for it), and now and then the
data-parallel communicator hangs: no rank completes anything until it recovers.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fleetscope.exporters.nccl.debuglog import split_comm_id
from fleetscope.exporters.nccl.inspector import Communicator, format_lines
from fleetscope.exporters.nccl.operations import algorithm_bytes, bandwidths, bus_factor

STEP_SECONDS = 0.5
NODES, GPUS_PER_NODE, NODE_INDEX = 4, 8, 1
MiB = 1 << 20


@dataclass(frozen=True)
class _Comm:
    comm_id: str
    name: str
    n_ranks: int
    nnodes: int
    operations: tuple[tuple[str, int, float], ...]  # (operation, bytes per rank, bus bandwidth in GB/s)
    split_color: int | None = None  # split from the first communicator with this color, as ncclCommSplit does


MAX_LOG_BYTES = 256 * 1024
_WORLD_ID = "0x5f1c0de2a7b94d01"
COMMS = (
    _Comm(_WORLD_ID, "DP Group 0", NODES * GPUS_PER_NODE, NODES, (("AllReduce", 256 * MiB, 180.0),)),
    # 16 MiB gathered and scattered over 8 ranks: 2 MiB each, the count each rank passes to NCCL.
    _Comm(split_comm_id(_WORLD_ID, 0, NODE_INDEX), "TP Group 1", GPUS_PER_NODE, 1,
          (("AllGather", 2 * MiB, 350.0), ("ReduceScatter", 2 * MiB, 340.0)), split_color=NODE_INDEX),
)


class SimulatedJob:
    def __init__(self, seed: int = 1, straggler_mean_interval: float = 900.0, hang_mean_interval: float = 3600.0,
                 step_seconds: float = STEP_SECONDS):
        """step_seconds: simulated time between training steps, each a round of every communicator's
        collectives. Its cost is per simulated step: a fleet of hundreds of simulated nodes takes longer ones."""
        self.root = Path(tempfile.mkdtemp(prefix="fleetscope-nccl-"))
        self._rng = random.Random(seed)
        self._step_seconds = step_seconds
        self._straggler_mean_interval = straggler_mean_interval
        self._hang_mean_interval = hang_mean_interval
        self._hostname = socket.gethostname()
        self._pids = [40000 + rank for rank in range(GPUS_PER_NODE)]
        self._sequence = {(comm.comm_id, operation): 0 for comm in COMMS for operation, _, _ in comm.operations}
        self._straggler: tuple[int, float, float] | None = None  # (local rank, delay, until)
        self._hang_until = 0.0
        self.debug_log = self.root / f"nccl-debug.{self._hostname}.log"
        self._write_debug(_init_lines(self._hostname, self._pids[0]))
        self._at = time.time() - 30  # the job has been running: its first reading has records
        self.advance()

    def advance(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        steps = int((now - self._at) / self._step_seconds)
        if steps <= 0:
            return
        batches: dict[int, list[dict]] = {rank: [] for rank in range(GPUS_PER_NODE)}
        for step in range(steps):
            at = self._at + (step + 1) * self._step_seconds
            self._episodes(at)
            for comm in COMMS:
                if comm.nnodes > 1 and at < self._hang_until:
                    continue  # hung: nothing completes
                self._step(comm, at, batches)
        self._at += steps * self._step_seconds
        for rank, records in batches.items():
            self._write(rank, records, now)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_debug(self, lines: list[str]) -> None:
        with open(self.debug_log, "a") as out:
            out.write("\n".join(lines) + "\n")

    def _episodes(self, at: float) -> None:
        rng = self._rng
        if self._straggler and at >= self._straggler[2]:
            self._straggler = None
        if self._straggler is None and rng.random() < self._step_seconds / self._straggler_mean_interval:
            self._straggler = (rng.randrange(GPUS_PER_NODE), rng.uniform(0.02, 0.08), at + rng.uniform(60, 300))
        if at >= self._hang_until and rng.random() < self._step_seconds / self._hang_mean_interval:
            self._hang_until = at + rng.uniform(120, 300)
            self._write_debug([f"{self._hostname}:{self._pids[0]}:{self._pids[0] + 7} [0] transport/net_ib.cc:1696 "
                               "NCCL WARN NET/IB : Got completion from peer 10.0.0.2<34567> with status=12 opcode=0 "
                               "len=0 vendor err 129 (Recv)"])

    def _step(self, comm: _Comm, at: float, batches: dict[int, list[dict]]) -> None:
        for operation, size, busbw in comm.operations:
            self._sequence[(comm.comm_id, operation)] += 1
            sn = self._sequence[(comm.comm_id, operation)]
            traffic, factor = algorithm_bytes(operation, size, comm.n_ranks), bus_factor(operation, comm.n_ranks) or 0.0
            base = traffic * factor / (busbw * 1e9 * self._rng.uniform(0.9, 1.0))
            late_rank, delay = (self._straggler[0], self._straggler[1]) if self._straggler else (None, 0.0)
            for rank in range(GPUS_PER_NODE):
                # Everyone finishes together; the late rank waits least, the others wait for it.
                exec_us = round((base + (0.0 if rank == late_rank else delay)) * 1e6)
                algobw, record_busbw = bandwidths(operation, size, comm.n_ranks, exec_us)
                batches[rank].append({"coll_perf": {
                    "coll": operation, "coll_sn": sn, "coll_msg_size_bytes": size, "coll_exec_time_us": exec_us,
                    "coll_timing_source": "kernel_gpu", "coll_algobw_gbs": algobw, "coll_busbw_gbs": record_busbw}})

    def _write(self, rank: int, records: list[dict], now: float) -> None:
        lines = []
        for comm in COMMS:
            mine = [r for r in records if _belongs(r, comm)]
            if mine:
                global_rank = NODE_INDEX * GPUS_PER_NODE + rank if comm.nnodes > 1 else rank
                communicator = Communicator(comm.comm_id, comm.name, global_rank, comm.n_ranks, comm.nnodes,
                                            self._pids[rank])
                lines += format_lines(communicator, mine, int(now * 1e6), self._hostname)
        if lines:
            path = self.root / f"{self._hostname}-pid{self._pids[rank]}.log"
            # Rotated past a size, as logrotate would: a simulation left running for days (the demo, a fleet of
            # simulated nodes) keeps a bounded disk footprint, and the collector follows the rotation.
            if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
                os.replace(path, path.with_name(path.name + ".1"))
            with open(path, "a") as out:
                out.write("\n".join(lines) + "\n")


def _init_lines(hostname: str, pid: int) -> list[str]:
    """What NCCL_DEBUG=INFO logs, in NCCL 2.29's words (src/init.cc), as local rank 0 sets up the
    job's communicators: the world with ncclCommInitRank, the tensor-parallel group split from it."""
    prefix = f"{hostname}:{pid}:{pid} [0] NCCL INFO"
    lines = [f"{prefix} Bootstrap : Using eth0:10.0.0.{NODE_INDEX + 1}<0>", f"{prefix} Using network IB"]
    pointers = ("0x55d1c2c0", "0x66aa0000")
    for comm, pointer in zip(COMMS, pointers, strict=True):
        rank = NODE_INDEX * GPUS_PER_NODE if comm.nnodes > 1 else 0
        device = f"comm {pointer} rank {rank} nranks {comm.n_ranks} cudaDev 0 nvmlDev 0 busId 18000"
        if comm.split_color is None:
            start = f"{prefix} [Rank {rank}] ncclCommInitRank {device} commId {comm.comm_id} - Init START"
            complete = f"{prefix} ncclCommInitRank {device} commId {comm.comm_id} - Init COMPLETE"
        else:
            split = f"parent {pointers[0]} childCount 0 color {comm.split_color} key {rank}"
            start = f"{prefix} ncclCommSplit {device} {split}- Init START"
            complete = f"{prefix} ncclCommSplit {device} {split} - Init COMPLETE"
        ring = " ".join(f"{r:3d}" for r in range(comm.n_ranks))
        lines += [start, f"{prefix} Channel 00/16 : {ring}",
                  f"{prefix} Trees [0] 1/-1/-1->0->-1",
                  f"{prefix} Channel 00/0 : {rank}[0] -> {rank + 1}[1] via P2P/CUMEM/read"]
        if comm.nnodes > 1:
            lines.append(f"{prefix} Channel 00/0 : {rank + 7}[7] -> {rank + 8}[0] [send] via NET/IB/0/GDRDMA")
        lines += [f"{prefix} 16 coll channels, 0 collnet channels, 0 nvls channels, 16 p2p channels, "
                  "2 p2p channels per peer", complete]
    return lines


def _belongs(record: dict, comm: _Comm) -> bool:
    return record["coll_perf"]["coll"] in {operation for operation, _, _ in comm.operations}
