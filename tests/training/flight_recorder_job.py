"""One rank of a real two-rank gloo job with PyTorch's Flight Recorder on (TORCH_FR_BUFFER_SIZE), for
test_flight_recorder.py: run as a separate process per rank (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    python flight_recorder_job.py DUMP_DIR MODE

stall     rank 1 stops before the seventh collective (stuck outside collectives, as in a data-loader or a deadlock);
          rank 0 issues it, times out and dumps (JSON); rank 1 dumps while it is stuck (pickle), as a signal
          handler or a watchdog thread would. Gloo writes no dump on a timeout itself in torch 2.13.
mismatch  the seventh collective is an all_reduce on rank 0 and a broadcast on rank 1; each rank dumps when it
          fails or times out. (Collectives of one operation and different sizes abort the process in gloo, which
          leaves no dump.)
healthy   both ranks run the same collectives and dump at the end.
"""

import datetime
import os
import sys
import threading
import time

import torch
import torch.distributed as dist
from torch._C._distributed_c10d import _dump_fr_trace, _dump_fr_trace_json

TIMEOUT_S = 3.0


def dump(directory: str, rank: int, as_json: bool) -> None:
    data = _dump_fr_trace_json(includeCollectives=True) if as_json else _dump_fr_trace()
    name = f"fr_rank_{rank}.json" if as_json else f"fr_rank_{rank}"
    with open(os.path.join(directory, name + ".tmp"), "wb") as out:
        out.write(data)
    os.replace(os.path.join(directory, name + ".tmp"), os.path.join(directory, name))


def main(directory: str, mode: str) -> None:
    # The rendezvous keeps the default timeout (a loaded machine may start one rank seconds after the other); the
    # collectives run on a group of their own with a short one.
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    group = dist.new_group(timeout=datetime.timedelta(seconds=TIMEOUT_S), group_desc="trainer")
    tensor = torch.ones(8)
    for _ in range(5):
        dist.all_reduce(tensor, group=group)
    gathered = [torch.zeros(8) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor, group=group)
    if mode == "stall" and rank == 1:
        threading.Timer(TIMEOUT_S / 2, dump, (directory, rank, False)).start()
        time.sleep(TIMEOUT_S + 3)  # stuck while rank 0 waits in the seventh collective and times out
        return
    try:
        if mode == "mismatch" and rank == 1:
            dist.broadcast(tensor, src=0, group=group)
        else:
            dist.all_reduce(tensor, group=group)
        dist.barrier(group=group)
    except RuntimeError:
        pass  # the timeout, or the peer's failure: what the dump is for
    dump(directory, rank, as_json=rank == 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    os._exit(0)  # a process group whose peer vanished can hang in its destructor
