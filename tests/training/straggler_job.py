"""One rank of a real gloo job for measuring straggler detection (straggler_false_positives.py): each step some
compute and an all_reduce, timed by the NCCL collector's torch hook into Inspector records. Run one process per rank
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    python straggler_job.py DUMP_DIR SECONDS SLOW_RANK SLOW_SECONDS     (SLOW_RANK -1: no rank is slowed)
"""

import os
import sys
import time

import torch
import torch.distributed as dist

from fleetscope.exporters.nccl import torch_hook


def main(dump_dir: str, seconds: float, slow_rank: int, slow_seconds: float) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch_hook.install(dump_dir)
    torch.manual_seed(rank)
    weights, gradient = torch.randn(256, 256), torch.zeros(64 * 1024)
    started = time.monotonic()
    done = torch.zeros(1)
    while not done.item():
        for _ in range(4):
            weights = torch.tanh(weights @ weights) * 0.5  # a few ms of work on the CPU
        if rank == slow_rank:
            time.sleep(slow_seconds)  # this rank arrives late at every collective
        dist.all_reduce(gradient)
        done.fill_(float(time.monotonic() - started > seconds))
        dist.all_reduce(done, op=dist.ReduceOp.MAX)  # every rank stops at the same step
    torch_hook.uninstall()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    sys.stdout.flush()
    os._exit(0)
