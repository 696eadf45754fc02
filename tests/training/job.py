"""One rank of a small gloo training job instrumented with the training SDK, for tests/training: run as a process
per rank (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE set). It writes its own timeline (truth-rank<N>.jsonl) with
time.time() around each part, independently of the SDK, for the test to compute the ground truth from.

    python job.py WORKDIR METRICS_PORT RUN        RUN 1 crashes after CRASH_AT; RUN 2 resumes from the checkpoint

Faults it injects, by design: slow data loading (SLOW_DATA batches sleep DATA_SLEEP), a slowed rank (rank 1 sleeps
SLOW_RANK_SLEEP before its all-reduce in SLOW_RANK steps), and in run 1 a crash after step CRASH_AT, whose last
checkpoint is at step CHECKPOINT_EVERY * (CRASH_AT // CHECKPOINT_EVERY).
"""

import json
import os
import sys
import time
from pathlib import Path

from fleetscope.exporters.training import TrainingMetrics, serve

STEPS = 60
CRASH_AT = 30
CHECKPOINT_EVERY = 20
EVALUATE_AT = 50
SLOW_DATA = set(range(5, 10)) | set(range(45, 50))
DATA_SLEEP = 0.08
SLOW_RANK = set(range(41, 51))
SLOW_RANK_SLEEP = 0.04
STEP_SLEEP = 0.015
BATCH, SEQUENCE = 8, 16


def main(workdir: Path, port: int, run: int) -> None:
    rank = int(os.environ["RANK"])
    started = time.time()
    metrics = TrainingMetrics(job="goodput-test", rank=rank, hostname="node-a", state_dir=workdir / "state")
    timeline = (workdir / f"truth-rank{rank}.jsonl").open("a", buffering=1)

    def log(kind: str, *values: float) -> None:
        timeline.write(json.dumps([kind, run, *values]) + "\n")

    if run == 1:
        log("start", started)
    server, _ = serve(metrics, port, "127.0.0.1")
    import torch  # after the SDK: its creation is the job's start, and importing torch is initialization
    import torch.distributed as dist

    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    checkpoint = workdir / f"checkpoint-rank{rank}.pt"
    first = 1
    if run > 1:
        begin = time.time()
        with metrics.checkpoint("load") as restore:
            saved = torch.load(checkpoint)
            restore.step = saved["step"]
            model.load_state_dict(saved["model"])
            first = saved["step"] + 1
        log("load", begin, time.time())

    def batches():
        for step in range(first, STEPS + 1):
            if step in SLOW_DATA:
                time.sleep(DATA_SLEEP)
            yield step, torch.randn(BATCH, 64)

    data = metrics.data(batches())
    for _ in range(first, STEPS + 1):
        begin = time.time()
        step, batch = next(data)
        log("data", begin, time.time())
        begin = time.time()
        with metrics.step(samples=BATCH, tokens=BATCH * SEQUENCE):
            loss = model(batch).square().mean()
            optimizer.zero_grad()
            loss.backward()
            time.sleep(STEP_SLEEP + (SLOW_RANK_SLEEP if rank == 1 and step in SLOW_RANK else 0.0))
            for parameter in model.parameters():
                dist.all_reduce(parameter.grad)
            optimizer.step()
        log("step", begin, time.time(), step)
        if step % CHECKPOINT_EVERY == 0:
            begin = time.time()
            with metrics.checkpoint("save"):
                torch.save({"model": model.state_dict(), "step": step}, checkpoint.with_suffix(".tmp"))
                os.replace(checkpoint.with_suffix(".tmp"), checkpoint)
                time.sleep(0.05)
            log("save", begin, time.time(), step)
        if step == EVALUATE_AT:
            begin = time.time()
            with metrics.evaluation(), torch.no_grad():
                model(torch.randn(64, 64))
                time.sleep(0.1)
            log("evaluation", begin, time.time())
        if run == 1 and step == CRASH_AT:
            log("crash", time.time())
            os._exit(3)  # a crash: no clean-up, no last write but the SDK's own after the step
    log("end", time.time())
    metrics.close()
    (workdir / f"closed-rank{rank}").write_text(str(time.time()))
    deadline = time.monotonic() + 60
    while not (workdir / "stop").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    server.shutdown()  # type: ignore[attr-defined]
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
