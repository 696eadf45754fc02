"""One rank of a small gloo job for the torch hook's tests: run as a separate process per rank."""

import sys
import time

import torch
import torch.distributed as dist

from fleetscope.exporters.nccl import torch_hook


def main(dump_dir: str, straggler: int) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch_hook.install(dump_dir)
    pair = dist.new_group([0, 1])
    tensor = torch.ones(1024, dtype=torch.float32)
    for _ in range(6):
        if rank == straggler:
            time.sleep(0.05)  # this rank arrives late at every collective
        dist.all_reduce(tensor)
        gathered = [torch.zeros(1024) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor)
    dist.broadcast(tensor, src=0)
    dist.all_reduce(tensor, async_op=True).wait()
    if rank in (0, 1):
        dist.all_reduce(tensor, group=pair)
        if rank == 0:
            dist.send(tensor, dst=1)
        else:
            dist.recv(tensor, src=0)
    dist.barrier()
    torch_hook.uninstall()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
