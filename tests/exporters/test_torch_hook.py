"""The torch hook in a real three-process gloo job on CPU, read back by the NCCL collector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetscope.exporters.nccl.collector import NcclCollector
from fleetscope.localstack.process import free_port
from tests.support.exposition import render, samples, value

pytest.importorskip("torch.distributed")
JOB = Path(__file__).resolve().parent.parent / "support" / "torch_job.py"
REPO = Path(__file__).resolve().parent.parent.parent


def test_a_gloo_job_writes_records_the_collector_reads(tmp_path):
    port = free_port()
    processes = []
    for rank in range(3):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "WORLD_SIZE": "3", "LOCAL_WORLD_SIZE": "3", "PYTHONPATH": str(REPO)}
        processes.append(subprocess.Popen([sys.executable, str(JOB), str(tmp_path), "2"], env=env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        outputs = [p.communicate(timeout=180)[0].decode() for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(outputs)
    assert len(list(tmp_path.glob("*-pid*.log"))) == 3

    collector = NcclCollector(tmp_path, "node-a")
    text = render(collector.collect())
    collector.close()
    world = {"comm_name": "world"}
    for rank in ("0", "1", "2"):
        assert value(text, "fleetscope_nccl_collectives_total", rank=rank, operation="AllReduce", **world) == 7
        assert value(text, "fleetscope_nccl_collectives_total", rank=rank, operation="AllGather", **world) == 6
        # What each rank passes to NCCL (its 4 KiB input), as coll_msg_size_bytes counts it; on the bus
        # that piece reaches each of the other two ranks.
        assert value(text, "fleetscope_nccl_bytes_total", rank=rank, operation="AllGather", **world) == 6 * 4096
        assert value(text, "fleetscope_nccl_bus_bytes_total", rank=rank, operation="AllGather", **world) == \
            6 * 4096 * 2
        # Numbered per operation, as NCCL numbers them.
        assert value(text, "fleetscope_nccl_rank_sequence", rank=rank, operation="AllReduce", **world) == 7
        assert value(text, "fleetscope_nccl_rank_sequence", rank=rank, operation="AllGather", **world) == 6
    assert value(text, "fleetscope_nccl_comm_ranks", **world) == 3
    pair = {"comm_name": "ranks 0-1"}
    assert value(text, "fleetscope_nccl_collectives_total", rank="0", operation="AllReduce", **pair) == 1
    # send and recv were called without a group: they belong to the world communicator.
    assert value(text, "fleetscope_nccl_collectives_total", rank="0", operation="Send", **world) == 1
    assert value(text, "fleetscope_nccl_collectives_total", rank="1", operation="Recv", **world) == 1
    lateness = {labels["rank"]: v for n, labels, v in samples(text)
                if n == "fleetscope_nccl_rank_lateness_seconds" and labels["comm_name"] == "world"}
    assert max(lateness, key=lateness.get) == "2" and lateness["2"] > 0.02
    comm_ids = {labels["comm_id"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_comm_ranks"}
    assert len(comm_ids) == 2, "every rank names the same communicator the same way"
