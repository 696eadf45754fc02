"""How fast the NCCL collector ingests NCCL Inspector records, with bounded memory, and how
long collecting and rendering the page takes with 64 communicators.

Writes Inspector files as released NCCL does (format v4.0, one self-contained line a record) for
64 communicators x 8 local ranks, AllReduce and AllGather interleaved and numbered per operation,
then measures in one process:
  - baseline: json.loads of every line (the least any reader must do);
  - ingest:   NcclCollector.collect() reading, parsing and aggregating the same lines;
  - memory:   peak traced allocation while ingesting N and 2N records (bounded state stays flat);
  - scrape:   collect() with nothing new plus rendering, p50 and p99.

    .venv/bin/python benchmarks/nccl_ingest.py [--records 200000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetscope.exporters.nccl.collector import NcclCollector  # noqa: E402
from fleetscope.exporters.server import encode  # noqa: E402
from tests.support.inspector import coll, lines_v40  # noqa: E402

COMMUNICATORS, RANKS = 64, 8


def write_records(directory: Path, records: int, first_sn: int = 1) -> list[bytes]:
    per_stream = max(1, records // (COMMUNICATORS * RANKS))
    lines: list[bytes] = []
    for rank in range(RANKS):
        with open(directory / f"node-a-pid{rank}.log", "a") as out:
            for comm in range(COMMUNICATORS):
                batch = lines_v40([coll(first_sn + n // 2, coll=("AllReduce", "AllGather")[n % 2], exec_us=900 + rank)
                                   for n in range(per_stream)],
                                  comm_id=f"0x{comm:016x}", comm_name=f"group {comm}", rank=rank, pid=rank)
                out.write("\n".join(batch) + "\n")
                lines += [line.encode() for line in batch]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        lines = write_records(directory, args.records)
        started = time.perf_counter()
        for line in lines:
            json.loads(line)
        baseline = time.perf_counter() - started

        collector = NcclCollector(directory, "node-a", max_communicators=COMMUNICATORS)
        started = time.perf_counter()
        collector.collect()
        ingest = time.perf_counter() - started
        collector.close()

        # Memory apart from speed: tracing allocations slows Python several times.
        collector = NcclCollector(directory, "node-a", max_communicators=COMMUNICATORS)
        tracemalloc.start()
        collector.collect()
        _, peak_first = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        more = write_records(directory, args.records * 2, first_sn=10**6)
        tracemalloc.start()  # what the collector holds from before is not traced again: only what it adds
        collector.collect()
        _, peak_second = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        timings = []
        for _ in range(50):
            started = time.perf_counter()
            page = encode(collector.collect())
            timings.append(time.perf_counter() - started)
        timings.sort()
        series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
        collector.close()
    print(f"lines: {len(lines)} ({COMMUNICATORS} communicators x {RANKS} ranks), then {len(more)} more")
    print(f"json.loads baseline: {len(lines) / baseline:,.0f} lines/s")
    print(f"collector ingest:    {len(lines) / ingest:,.0f} lines/s ({baseline / ingest:.2f}x the baseline's rate)")
    print(f"peak memory allocated while ingesting: {peak_first / 2**20:.1f} MiB for {len(lines)} lines, "
          f"{peak_second / 2**20:.1f} MiB for the next {len(more)}")
    print(f"collect+render, nothing new, {series} series: p50 {1000 * statistics.median(timings):.1f} ms, "
          f"p99 {1000 * timings[int(0.99 * len(timings)) - 1]:.1f} ms")


if __name__ == "__main__":
    main()
