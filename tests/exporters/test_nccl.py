"""The NCCL collector against NCCL Inspector output in its real formats."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import pytest

from fleetscope.exporters.nccl.aggregate import size_bucket
from fleetscope.exporters.nccl.collector import NcclCollector
from fleetscope.exporters.nccl.operations import bus_bytes, bus_factor, canonical
from fleetscope.exporters.nccl.tail import MAX_LINE_BYTES
from tests.conftest import promtool_check_metrics
from tests.support.exposition import render, samples, value, values
from tests.support.inspector import coll, dump_v43, lines_v40, lines_v42, p2p

FIXTURES = Path(__file__).resolve().parent / "fixtures"

COMM = {"comm_id": "0x7f8c496ae9f661"}


class Clock:
    """Starts at the real time (files get real modification times) and moves only when told."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def collector(tmp_path, clock):
    made = NcclCollector(tmp_path, "node-a", clock=clock)
    yield made
    made.close()


def append(path: Path, lines: list[str], newline: bool = True) -> None:
    with open(path, "a") as out:
        out.write("\n".join(lines) + ("\n" if newline else ""))


def page(collector: NcclCollector) -> str:
    return render(collector.collect())


def test_v43_dumps_become_counters_in_base_units(tmp_path, collector):
    append(tmp_path / "node-a-pid1639453.log",
           dump_v43([coll(1, exec_us=2000), coll(2, exec_us=3000), p2p(1)], rank=2, n_ranks=8))
    text = page(collector)
    series = {**COMM, "rank": "2", "operation": "AllReduce", "size": "16-256MiB"}
    assert value(text, "fleetscope_nccl_collectives_total", **series) == 2
    assert value(text, "fleetscope_nccl_bytes_total", **series) == 2 * (16 << 20)
    assert value(text, "fleetscope_nccl_bus_bytes_total", **series) == pytest.approx(2 * (16 << 20) * 2 * 7 / 8)
    assert value(text, "fleetscope_nccl_seconds_total", **series) == pytest.approx(0.005)
    assert value(text, "fleetscope_nccl_collectives_total", operation="Send", size="1-16MiB") == 1
    assert value(text, "fleetscope_nccl_duration_seconds_count", operation="AllReduce") == 2
    assert value(text, "fleetscope_nccl_duration_seconds_bucket", operation="AllReduce", le="0.005") == 2
    assert value(text, "fleetscope_nccl_duration_seconds_bucket", operation="AllReduce", le="0.001") == 0
    assert value(text, "fleetscope_nccl_comm_ranks", **COMM) == 8
    assert value(text, "fleetscope_nccl_rank_sequence", rank="2", **COMM) == 2
    progress = value(text, "fleetscope_nccl_comm_last_progress_timestamp_seconds", **COMM)
    assert progress == pytest.approx(1748030377.748202)
    assert value(text, "fleetscope_nccl_inspector_files") == 1
    assert values(text, "fleetscope_nccl_records_rejected_total") == []
    result = promtool_check_metrics(text)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_v42_self_contained_lines_are_read_too(tmp_path, collector):
    append(tmp_path / "node-a-pid7.log", lines_v42([coll(1), coll(2)], rank=0, pid=7))
    assert value(page(collector), "fleetscope_nccl_collectives_total", rank="0") == 2


def test_bus_bandwidth_factors_follow_nccl_tests():
    assert bus_factor("AllReduce", 8) == pytest.approx(1.75)
    assert bus_factor("AllGather", 8) == bus_factor("ReduceScatter", 8) == bus_factor("AlltoAll", 8) == 0.875
    assert bus_factor("Broadcast", 8) == bus_factor("Send", 2) == 1
    assert bus_factor("AllReduce", 1) == 0
    assert bus_factor("Unknown", 8) is None and bus_bytes("Unknown", 1024, 8) is None
    # The per-rank piece of a gather or scatter crosses the bus once for every other rank.
    assert bus_bytes("AllGather", 2 << 20, 8) == bus_bytes("ReduceScatter", 2 << 20, 8) == 7 * (2 << 20)
    assert bus_bytes("AllReduce", 1 << 20, 8) == pytest.approx(1.75 * (1 << 20))
    assert [size_bucket(s) for s in (0, 64 << 10, 5 << 30)] == ["0-64KiB", "64KiB-1MiB", "4GiB+"]


def test_record_bandwidths_are_the_inspectors_own():
    """NVIDIA's published v4.0 example: ReduceScatter, 65,536 B per rank, 32 ranks, 110 us."""
    from fleetscope.exporters.nccl.operations import bandwidths

    assert bandwidths("ReduceScatter", 65536, 32, 110) == (19.065018, 18.469236)
    assert bandwidths("Unknown", 65536, 32, 110) == (0.0, 0.0)  # as the Inspector writes "Invalid"
    assert bandwidths("AllReduce", 1 << 20, 8, 0) == (0.0, 0.0)


def test_one_name_per_operation_whichever_source_names_it():
    assert canonical("All2All") == canonical("AllToAll") == canonical("alltoall") == "AlltoAll"
    assert canonical("Invalid") == "Unknown"
    assert canonical("AllReduce") == "AllReduce" and canonical("NewThing") == "NewThing"


def _fixture_records(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


@pytest.mark.parametrize("release", ["2.28", "2.29", "2.30"])
def test_bus_bandwidth_is_the_one_the_inspector_writes_on_each_release_lines(tmp_path, collector, release):
    """Every operation of real-shaped v4.0 lines, one at a time: rate(bus bytes) / rate(seconds)
    is the record's own coll_busbw_gbs, where the Inspector computes one."""
    records = _fixture_records(f"inspector-nccl-{release}.log")
    for index, record in enumerate(records):
        path = tmp_path / f"node-a-pid{index}.log"
        path.write_text(json.dumps(record) + "\n")
        collector_alone = NcclCollector(tmp_path, "node-a", clock=collector._clock)
        text = render(collector_alone.collect())
        collector_alone.close()
        path.unlink()
        kind = "coll" if "coll_perf" in record else "p2p"
        body = record[f"{kind}_perf"]
        series = {"operation": canonical(body[kind]), "rank": str(record["header"]["rank"])}
        assert values(text, "fleetscope_nccl_records_rejected_total") == []
        if body[f"{kind}_busbw_gbs"] == 0:  # "Invalid": the Inspector cannot tell which operation it was
            assert series["operation"] == "Unknown"
            assert values(text, "fleetscope_nccl_bus_bytes_total") == []
            continue
        busbw = value(text, "fleetscope_nccl_bus_bytes_total", **series) / \
            value(text, "fleetscope_nccl_seconds_total", **series) / 1e9
        assert busbw == pytest.approx(body[f"{kind}_busbw_gbs"], abs=1e-6), body


def test_the_readme_reduce_scatter_is_366_gb_per_second_as_the_inspector_says(tmp_path, collector):
    """2 GiB per rank over 8 ranks in 41,057 us: 45.8 GB/s if the per-rank count is taken for the total."""
    append(tmp_path / "node-a-pid1.log",
           lines_v40([coll(1, "ReduceScatter", size=2 << 30, exec_us=41057)], n_ranks=8, comm_name=None))
    text = page(collector)
    busbw = value(text, "fleetscope_nccl_bus_bytes_total") / value(text, "fleetscope_nccl_seconds_total")
    assert busbw / 1e9 == pytest.approx(366.134533, abs=1e-6)


@pytest.mark.parametrize("release, comm_name", [("2.28", "unknown"), ("2.29", "unknown"), ("2.30", "DP Group 0")])
def test_released_v4_0_files_are_read_whole(tmp_path, collector, release, comm_name):
    (tmp_path / "example-hostname-pid468528.log").write_text((FIXTURES / f"inspector-nccl-{release}.log").read_text())
    text = page(collector)
    assert values(text, "fleetscope_nccl_records_rejected_total") == []
    records = _fixture_records(f"inspector-nccl-{release}.log")
    assert sum(values(text, "fleetscope_nccl_collectives_total")) == len(records)
    assert {labels["comm_name"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_comm_ranks"} == {comm_name}
    result = promtool_check_metrics(text)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_sequence_numbers_are_per_operation(tmp_path, collector):
    """NCCL 2.28: AllReduce, AllGather and ReduceScatter all at 129; Broadcast at 1."""
    (tmp_path / "example-hostname-pid468528.log").write_text((FIXTURES / "inspector-nccl-2.28.log").read_text())
    text = page(collector)
    sequence = {labels["operation"]: v for n, labels, v in samples(text) if n == "fleetscope_nccl_rank_sequence"}
    assert sequence == {"ReduceScatter": 129, "AllReduce": 129, "AllGather": 129, "Unknown": 1, "Broadcast": 1}


def test_interleaved_all_gather_and_reduce_scatter_on_a_tensor_parallel_communicator(tmp_path, collector):
    """Both operations run at every step with the same sequence numbers. Rank 1 arrives ~4 ms late at
    every AllGather and on time at every ReduceScatter: joined by number alone, one operation's record
    overwrites the other's and the straggler vanishes or the numbers disagree."""
    steps = 20
    for rank in (0, 1):
        records = []
        for sn in range(1, steps + 1):
            records.append(coll(sn, "AllGather", size=2 << 20, exec_us=1000 if rank == 1 else 5000))
            records.append(coll(sn, "ReduceScatter", size=2 << 20, exec_us=3000))
        # One more gather than scatters.
        records.append(coll(steps + 1, "AllGather", size=2 << 20, exec_us=1000 if rank == 1 else 5000))
        append(tmp_path / f"node-a-pid{rank}.log", lines_v40(records, rank=rank, pid=rank, comm_name="TP Group 1"))
    text = page(collector)
    lateness = {labels["rank"]: v for n, labels, v in samples(text) if n == "fleetscope_nccl_rank_lateness_seconds"}
    # +2 ms against the median of two at every gather, 0 at every scatter: about 1 ms on average.
    assert lateness["1"] > 0.0005 and lateness["0"] < -0.0005
    sequence = {(labels["rank"], labels["operation"]): v for n, labels, v in samples(text)
                if n == "fleetscope_nccl_rank_sequence"}
    assert sequence == {("0", "AllGather"): steps + 1, ("0", "ReduceScatter"): steps,
                        ("1", "AllGather"): steps + 1, ("1", "ReduceScatter"): steps}


def test_lines_are_read_as_they_are_appended_and_partial_lines_wait(tmp_path, collector):
    path = tmp_path / "node-a-pid1.log"
    lines = dump_v43([coll(1), coll(2)])
    append(path, lines[:2])
    append(path, [lines[2][:40]], newline=False)
    assert value(page(collector), "fleetscope_nccl_collectives_total") == 1
    append(path, [lines[2][40:]])
    assert value(page(collector), "fleetscope_nccl_collectives_total") == 2
    assert values(page(collector), "fleetscope_nccl_records_rejected_total") == []


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path, collector):
    path = tmp_path / "node-a-pid1.log"
    append(path, dump_v43([coll(1)]))
    page(collector)
    append(path, dump_v43([coll(2)]))
    os.rename(path, tmp_path / "rotated.1")
    append(path, dump_v43([coll(3)]))
    text = page(collector)
    assert value(text, "fleetscope_nccl_collectives_total") == 3
    assert values(text, "fleetscope_nccl_records_rejected_total") == []


def test_truncation_starts_over(tmp_path, collector):
    path = tmp_path / "node-a-pid1.log"
    append(path, dump_v43([coll(1), coll(2), coll(3)]))
    page(collector)
    path.write_text("\n".join(dump_v43([coll(4)])) + "\n")
    text = page(collector)
    assert value(text, "fleetscope_nccl_collectives_total") == 4
    assert value(text, "fleetscope_nccl_rank_sequence", rank="0") == 4


@pytest.mark.parametrize("bad, reason", [
    ("this is not json", "invalid_json"),
    ("[1, 2, 3]", "invalid_json"),
    (json.dumps(coll(9)), "missing_context"),
    (json.dumps({"header": {"id": "0x1", "rank": "zero", "n_ranks": 2}, "metadata": {"dump_timestamp_us": 1},
                 **coll(1)}), "bad_field"),
    ('{"header": {"id": "0x1", "comm_name": "x", "rank": 0, "n_ranks": 2, "nnodes": 1}, "metadata": '
     '{"dump_timestamp_us": 1, "pid": 1}, "coll_perf": {"coll": "AllReduce", "coll_sn": 1, '
     '"coll_msg_size_bytes": 8, "coll_exec_time_us": NaN}}', "bad_field"),
    (json.dumps({"header": {"id": "0x1", "comm_name": "x", "rank": 0, "n_ranks": 2, "nnodes": 1},
                 "metadata": {"dump_timestamp_us": 1, "pid": 1}, **coll(1, size=-5)}), "bad_field"),
    (json.dumps({"header": {"id": "0x1", "comm_name": "x", "rank": 0, "n_ranks": 2, "nnodes": 1},
                 "metadata": {"dump_timestamp_us": 1, "pid": 1}, **coll(1, coll="All Reduce; DROP")}), "bad_field"),
])
def test_bad_lines_are_counted_by_reason_and_the_rest_is_kept(tmp_path, collector, bad, reason):
    path = tmp_path / "node-a-pid1.log"
    append(path, lines_v42([coll(1)]) + [bad] + lines_v42([coll(2)]))
    text = page(collector)
    assert value(text, "fleetscope_nccl_records_rejected_total", reason=reason) == 1
    assert value(text, "fleetscope_nccl_collectives_total") == 2


def test_records_beyond_or_short_of_a_markers_count(tmp_path, collector):
    path = tmp_path / "node-a-pid1.log"
    marker, first, second = dump_v43([coll(1), coll(2)])
    append(path, [marker, first])  # the process died before writing the second record
    append(path, dump_v43([coll(3)]))
    append(path, [json.dumps(coll(4))])  # one more than the marker counted
    text = page(collector)
    assert value(text, "fleetscope_nccl_records_rejected_total", reason="truncated_dump") == 1
    assert value(text, "fleetscope_nccl_records_rejected_total", reason="unexpected_record") == 1
    assert value(text, "fleetscope_nccl_collectives_total") == 2


def test_oversized_lines_are_dropped_and_reading_goes_on(tmp_path, collector):
    path = tmp_path / "node-a-pid1.log"
    append(path, ["x" * (MAX_LINE_BYTES + 10)] + dump_v43([coll(1)]))
    text = page(collector)
    assert value(text, "fleetscope_nccl_records_rejected_total", reason="oversized_line") == 1
    assert value(text, "fleetscope_nccl_collectives_total") == 1


def test_many_jobs_and_processes_are_followed(tmp_path, collector):
    for job in range(3):
        directory = tmp_path / f"job-{job}"
        directory.mkdir()
        for rank in range(2):
            append(directory / f"node-a-pid{100 * job + rank}.log",
                   dump_v43([coll(1), coll(2)], comm_id=f"0xabc{job}", rank=rank, n_ranks=16, nnodes=2,
                            pid=100 * job + rank))
    text = page(collector)
    assert value(text, "fleetscope_nccl_inspector_files") == 6
    assert sorted({labels["comm_id"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_comm_ranks"}) == \
        ["0xabc0", "0xabc1", "0xabc2"]
    assert sum(values(text, "fleetscope_nccl_collectives_total")) == 12
    assert values(text, "fleetscope_nccl_comm_nodes") == [2, 2, 2]


def test_communicators_are_bounded_and_idle_ones_forgotten(tmp_path, clock):
    collector = NcclCollector(tmp_path, "node-a", max_communicators=2, idle_seconds=60, clock=clock)
    for comm in range(3):
        append(tmp_path / f"node-a-pid{comm}.log", dump_v43([coll(1)], comm_id=f"0x{comm}", pid=comm))
    text = render(collector.collect())
    assert len(values(text, "fleetscope_nccl_comm_ranks")) == 2
    assert value(text, "fleetscope_nccl_records_rejected_total", reason="too_many_communicators") >= 1
    clock.now += 120
    text = render(collector.collect())
    assert values(text, "fleetscope_nccl_comm_ranks") == []
    collector.close()


def test_comm_names_are_sanitized_and_bounded(tmp_path, collector):
    append(tmp_path / "node-a-pid1.log", dump_v43([coll(1)], comm_name='evil"name\n' + "x" * 200))
    names = {labels["comm_name"] for n, labels, _ in samples(page(collector)) if n == "fleetscope_nccl_comm_ranks"}
    (name,) = names
    assert len(name) == 64 and '"' not in name and "\n" not in name


def _local_ranks(tmp_path: Path, exec_us: dict[int, list[float]], enqueued: dict[int, list[int]] | None = None,
                 kernel_starts: dict[int, list[int]] | None = None):
    enqueued = enqueued or kernel_starts
    for rank, times in exec_us.items():
        records = [coll(sn + 1, exec_us=t, enqueued_us=(enqueued[rank][sn] if enqueued else None),
                        kernel_start_us=(kernel_starts[rank][sn] if kernel_starts else None))
                   for sn, t in enumerate(times)]
        append(tmp_path / f"node-a-pid{rank}.log", dump_v43(records, rank=rank, pid=rank))


def test_the_straggler_is_found_from_execution_time(tmp_path, collector):
    # Rank 3 arrives ~4 ms late every time, so it waits least: its kernel time is the shortest.
    _local_ranks(tmp_path, {0: [5000] * 20, 1: [5100] * 20, 2: [4900] * 20, 3: [1000] * 20})
    text = page(collector)
    lateness = {labels["rank"]: v for n, labels, v in samples(text) if n == "fleetscope_nccl_rank_lateness_seconds"}
    assert max(lateness, key=lateness.get) == "3"
    assert lateness["3"] == pytest.approx(0.004, abs=1e-4)
    assert value(text, "fleetscope_nccl_comm_skew_seconds", **COMM) == pytest.approx(0.004, abs=1e-4)


def test_the_straggler_is_found_from_kernel_start_times_where_recorded(tmp_path, collector):
    base = 1748030377000000
    starts = {rank: [base + sn * 100000 + (7000 if rank == 1 else 0) for sn in range(10)] for rank in range(4)}
    _local_ranks(tmp_path, {rank: [3000] * 10 for rank in range(4)}, kernel_starts=starts)
    lateness = {labels["rank"]: v for n, labels, v in samples(page(collector))
                if n == "fleetscope_nccl_rank_lateness_seconds"}
    assert lateness["1"] == pytest.approx(0.007)
    assert lateness["0"] == pytest.approx(0.0, abs=1e-6)


def test_a_cpu_running_ahead_does_not_make_its_rank_look_late(tmp_path, collector):
    """Rank 0's host enqueues every collective 20 ms after the others (its CPU is busy elsewhere, its
    GPU still has queued work), while rank 2's kernels start 5 ms late: the GPU is what waits."""
    base = 1748030377000000
    enqueued = {rank: [base + sn * 100000 + (20000 if rank == 0 else 0) for sn in range(10)] for rank in range(4)}
    kernels = {rank: [base + sn * 100000 + 30000 + (5000 if rank == 2 else 0) for sn in range(10)] for rank in range(4)}
    _local_ranks(tmp_path, {rank: [3000] * 10 for rank in range(4)}, enqueued, kernels)
    lateness = {labels["rank"]: v for n, labels, v in samples(page(collector))
                if n == "fleetscope_nccl_rank_lateness_seconds"}
    assert max(lateness, key=lateness.get) == "2"
    assert lateness["2"] == pytest.approx(0.005, abs=1e-6)
    assert lateness["0"] == pytest.approx(0.0, abs=1e-6)


def test_a_busy_communicators_straggler_is_found_when_files_are_read_one_after_another(tmp_path, collector):
    """A tensor-parallel communicator runs thousands of collectives a second: one collection reads
    hundreds of records per rank, each rank's file whole before the next."""
    _local_ranks(tmp_path, {0: [5000] * 500, 1: [5100] * 500, 2: [4900] * 500, 3: [1000] * 500})
    text = page(collector)
    lateness = {labels["rank"]: v for n, labels, v in samples(text) if n == "fleetscope_nccl_rank_lateness_seconds"}
    assert lateness and max(lateness, key=lateness.get) == "3"
    assert lateness["3"] == pytest.approx(0.004, abs=1e-4)


def test_a_hung_rank_shows_in_sequence_and_progress(tmp_path, collector, clock):
    _local_ranks(tmp_path, {0: [1000] * 5, 1: [1000] * 5})
    page(collector)
    append(tmp_path / "node-a-pid0.log", dump_v43([coll(6), coll(7)], rank=0, pid=0, dumped_us=1748030399000000))
    text = page(collector)
    assert value(text, "fleetscope_nccl_rank_sequence", rank="0") == 7
    assert value(text, "fleetscope_nccl_rank_sequence", rank="1") == 5
    assert value(text, "fleetscope_nccl_comm_last_progress_timestamp_seconds") == pytest.approx(1748030399.0)


def test_dropped_records_are_reported(tmp_path, collector):
    append(tmp_path / "node-a-pid1.log", dump_v43([coll(1)], dropped=512) + dump_v43([coll(2)], dropped=4096))
    assert value(page(collector), "fleetscope_nccl_records_dropped_total", kind="coll") == 4096


def test_a_missing_directory_means_no_series(tmp_path, clock):
    collector = NcclCollector(tmp_path / "absent", "node-a", clock=clock)
    assert value(render(collector.collect()), "fleetscope_nccl_inspector_files") == 0


def test_the_simulated_job_shows_stragglers_and_hangs():
    from fleetscope.simulation.nccl import SimulatedJob

    job = SimulatedJob(seed=2, straggler_mean_interval=20, hang_mean_interval=60)
    clock = Clock()
    start = job._at
    # The fake clock runs ahead of the files' real modification times: never call them idle.
    collector = NcclCollector(job.root, "sim", clock=clock, idle_seconds=1e9,
                              before_read=lambda: job.advance(clock.now))
    try:
        skews, progress, stalls = [], [], 0
        for minute in range(1, 31):
            clock.now = start + 60 * minute
            text = render(collector.collect())
            dp = {"comm_name": "DP Group 0"}
            skews += values(text, "fleetscope_nccl_comm_skew_seconds", **dp)
            progress += values(text, "fleetscope_nccl_comm_last_progress_timestamp_seconds", **dp) or [None]
            stalls += len(progress) > 1 and progress[-1] is not None and progress[-1] == progress[-2]
        assert max(skews) > 0.01, "a straggler appeared"
        assert stalls >= 1, "the data-parallel communicator hung at least once"
        assert values(text, "fleetscope_nccl_records_rejected_total") == []
        ranks = {labels["rank"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_rank_sequence"
                 and labels["comm_name"] == "DP Group 0"}
        assert ranks == {str(r) for r in range(8, 16)}
        busbw = value(text, "fleetscope_nccl_bus_bytes_total", rank="8", operation="AllReduce") / \
            value(text, "fleetscope_nccl_seconds_total", rank="8", operation="AllReduce")
        # Stragglers (frequent at these rates) make everyone wait, so it sits well below the links' 180 GB/s.
        assert 1e9 < busbw <= 180e9
    finally:
        collector.close()
        job.close()


def test_the_simulated_jobs_logs_stay_bounded_and_the_collector_follows_them(monkeypatch):
    """Left running (the demo, a simulated fleet), the job rotates its logs past a size; the collector reads
    on across each rotation, and its counters never go back."""
    from fleetscope.simulation import nccl as simulation

    monkeypatch.setattr(simulation, "MAX_LOG_BYTES", 16 * 1024)
    job = simulation.SimulatedJob(seed=3, straggler_mean_interval=1e12, hang_mean_interval=1e12)
    clock = Clock()
    start = job._at
    collector = NcclCollector(job.root, "sim", clock=clock, idle_seconds=1e9,
                              before_read=lambda: job.advance(clock.now))
    try:
        totals, sizes = [], []
        for minute in range(1, 21):
            clock.now = start + 60 * minute
            text = render(collector.collect())
            totals.append(value(text, "fleetscope_nccl_collectives_total", rank="8", operation="AllReduce"))
            sizes.append(max(path.stat().st_size for path in job.root.glob("*-pid*.log")))
        assert any(later < earlier for earlier, later in itertools.pairwise(sizes)), "the logs were rotated"
        assert max(sizes) < 16 * 1024 + 2 * min(sizes), "at most the bound and one minute's records"
        assert totals == sorted(totals) and totals[-1] > totals[0]
        assert values(text, "fleetscope_nccl_records_rejected_total") == []
    finally:
        collector.close()
        job.close()


def test_large_global_rank_numbers_are_fine_but_their_count_is_bounded(tmp_path, collector, monkeypatch):
    from fleetscope.exporters.nccl import aggregate

    monkeypatch.setattr(aggregate, "MAX_RANKS_PER_COMM", 3)
    for rank in (800, 801, 802, 803):
        append(tmp_path / f"node-a-pid{rank}.log", dump_v43([coll(1)], rank=rank, n_ranks=1024, nnodes=128, pid=rank))
    text = page(collector)
    ranks = {labels["rank"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_rank_sequence"}
    assert len(ranks) == 3 and ranks <= {"800", "801", "802", "803"}
    assert value(text, "fleetscope_nccl_records_rejected_total", reason="too_many_ranks") >= 1


def test_the_simulated_job_writes_a_debug_log_the_collector_reads():
    from fleetscope.simulation.nccl import COMMS, SimulatedJob

    job = SimulatedJob(seed=1)
    collector = NcclCollector(job.root, "sim", debug_logs=str(job.debug_log))
    try:
        text = render(collector.collect())
        for comm in COMMS:
            assert value(text, "fleetscope_nccl_comm_channels", comm_id=comm.comm_id, kind="coll") == 16
        dp = {"comm_id": COMMS[0].comm_id}
        assert {labels["transport"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_comm_transport_info"
                and labels["comm_id"] == dp["comm_id"]} == {"P2P/CUMEM", "NET/IB"}
    finally:
        collector.close()
        job.close()


def test_a_fast_growing_file_is_caught_up_over_several_collections(tmp_path, collector, monkeypatch):
    from fleetscope.exporters.nccl import collector as module

    monkeypatch.setattr(module, "MAX_READS_PER_COLLECTION", 1)
    real_read = module.FileTail.read
    monkeypatch.setattr(module.FileTail, "read", lambda self, max_bytes=64 << 10: real_read(self, max_bytes))
    path = tmp_path / "node-a-pid1.log"
    batches = 40
    for batch in range(batches):  # ~600 KiB, far more than one collection reads (one 64 KiB piece)
        append(path, dump_v43([coll(batch * 50 + sn + 1, exec_us=1000) for sn in range(50)]))
    totals = [value(page(collector), "fleetscope_nccl_collectives_total") for _ in range(15)]
    assert 0 < totals[0] < batches * 50, "the first collection reads only its share"
    assert totals == sorted(totals) and totals[-1] == batches * 50, "later ones catch up, losing nothing"
    assert values(page(collector), "fleetscope_nccl_records_rejected_total") == []


def test_a_collection_reads_only_what_was_appended_since_the_last(tmp_path, collector, monkeypatch):
    """The cost of a collection follows the new lines, not the size of the files already read."""
    from fleetscope.exporters.nccl import tail

    read_bytes = []
    real_read = tail.FileTail.read

    def counting(self, max_bytes=1 << 20):
        chunk = real_read(self, max_bytes)
        read_bytes.append(sum(len(line) for line in chunk.lines if line is not None))
        return chunk

    monkeypatch.setattr(tail.FileTail, "read", counting)
    path = tmp_path / "node-a-pid1.log"
    append(path, dump_v43([coll(sn) for sn in range(1, 2001)]))  # a long-running job's file
    assert value(page(collector), "fleetscope_nccl_collectives_total") == 2000
    assert sum(read_bytes) > 200_000
    read_bytes.clear()
    page(collector)
    assert sum(read_bytes) == 0  # nothing new: nothing read
    extra = dump_v43([coll(2001)])
    append(path, extra)
    assert value(page(collector), "fleetscope_nccl_collectives_total") == 2001
    assert sum(read_bytes) <= sum(len(line) for line in extra)


def test_the_simulated_job_writes_what_nccl_2_30_writes():
    """v4.0 self-contained lines with comm_name, numbered per operation, with the record's own bus
    bandwidth equal to what the collector computes from it."""
    from fleetscope.simulation.nccl import SimulatedJob

    job = SimulatedJob(seed=3, straggler_mean_interval=1e12, hang_mean_interval=1e12)  # no episodes: steady bandwidth
    try:
        lines = [json.loads(line) for path in job.root.glob("*-pid*.log") for line in path.read_text().splitlines()]
        collector = NcclCollector(job.root, "sim", idle_seconds=1e9)
        text = render(collector.collect())
        collector.close()
    finally:
        job.close()
    assert lines and {line["metadata"]["inspector_output_format_version"] for line in lines} == {"v4.0"}
    assert all("comm_name" in line["header"] and "dump_stats" not in line for line in lines)
    tp = [line["coll_perf"] for line in lines if line["header"]["comm_name"] == "TP Group 1"
          and line["header"]["rank"] == 0]
    assert {body["coll"] for body in tp} == {"AllGather", "ReduceScatter"}
    assert max(b["coll_sn"] for b in tp if b["coll"] == "AllGather") == \
        max(b["coll_sn"] for b in tp if b["coll"] == "ReduceScatter") == len(tp) // 2
    for operation in ("AllGather", "ReduceScatter"):
        series = {"comm_name": "TP Group 1", "rank": "0", "operation": operation}
        ours = value(text, "fleetscope_nccl_bus_bytes_total", **series) / \
            value(text, "fleetscope_nccl_seconds_total", **series) / 1e9
        bodies = [b for b in tp if b["coll"] == operation]
        theirs = sum(b["coll_busbw_gbs"] * b["coll_exec_time_us"] for b in bodies) / \
            sum(b["coll_exec_time_us"] for b in bodies)
        assert ours == pytest.approx(theirs, rel=1e-5)
        assert 300 < ours < 360  # the links' simulated 350 and 340 GB/s, less the 0-10% noise
