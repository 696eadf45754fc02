"""The inference SDK's cost per tracked request, against bare instrument calls, in one run.

Each row times batches of BATCH calls and reports the per-call cost of the batches' p50 and p99,
and the mean per call over the whole run (wall time / calls, so with 8 threads it includes the
GIL's contention):
  - prometheus_client labels().observe: a histogram observe with the label lookup, as most servers write it;
  - prometheus_client child.observe:    the same on a pre-bound child, the least prometheus_client does;
  - opentelemetry histogram.record:     the OpenTelemetry SDK's own instrument, with three attributes;
  - fleetscope track():                 one whole tracked request (queue mark, first token, token counts:
                                        six histograms, an outcome counter and the in-flight gauge),
                                        including the batched folding, which the run ends by forcing;
  - fleetscope track() + trace:         the same inside an active OpenTelemetry span (exemplars).

    .venv/bin/python benchmarks/inference_sdk.py [--calls 200000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Histogram

from fleetscope.exporters.catalog import buckets
from fleetscope.exporters.inference import InferenceMetrics

BATCH = 100


def candidates() -> dict[str, tuple[callable, callable]]:
    """name: (the call, what finishes the run's pending work)."""
    registry = CollectorRegistry()
    histogram = Histogram("bench_seconds", "bench", ["model", "operation", "engine"], registry=registry,
                          buckets=buckets.REQUEST_DURATION)
    child = histogram.labels("llama", "chat", "bench")
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    otel = meter.create_histogram("bench.duration", unit="s")
    attributes = {"gen_ai.request.model": "llama", "gen_ai.operation.name": "chat", "fleetscope.engine": "bench"}
    metrics = InferenceMetrics(engine="bench")
    tracer = TracerProvider().get_tracer("bench")

    def tracked() -> None:
        with metrics.track("llama", "chat") as request:
            request.dequeued()
            request.first_token()
            request.tokens(input=120, output=40)

    def traced() -> None:
        with tracer.start_as_current_span("request"):
            tracked()

    def span_only() -> None:
        with tracer.start_as_current_span("request"):
            pass

    nothing = lambda: None  # noqa: E731
    return {
        "prometheus_client labels().observe": (lambda: histogram.labels("llama", "chat", "bench").observe(0.3),
                                               nothing),
        "prometheus_client child.observe": (lambda: child.observe(0.3), nothing),
        "opentelemetry histogram.record": (lambda: otel.record(0.3, attributes), nothing),
        "fleetscope track()": (tracked, metrics.snapshot),
        "opentelemetry span alone": (span_only, nothing),
        "fleetscope track() + trace": (traced, metrics.snapshot),
    }


def run(call, finish, calls: int, threads: int) -> dict:
    per_thread = calls // threads
    batch_ns: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for _ in range(per_thread // BATCH):
            start = time.perf_counter_ns()
            for _ in range(BATCH):
                call()
            mine.append((time.perf_counter_ns() - start) / BATCH)
        with lock:
            batch_ns.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter_ns()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    finish()
    wall = time.perf_counter_ns() - start
    batch_ns.sort()
    return {"p50_ns": statistics.median(batch_ns), "p99_ns": batch_ns[int(len(batch_ns) * 0.99)],
            "mean_ns": wall / (per_thread // BATCH * BATCH * threads)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for threads in (1, 8):
        for name, (call, finish) in candidates().items():
            for _ in range(BATCH * 10):  # warm up
                call()
            rows.append({"threads": threads, "name": name, **run(call, finish, args.calls, threads)})
    baseline = {row["threads"]: row["mean_ns"] for row in rows if row["name"] == "prometheus_client labels().observe"}
    child = {row["threads"]: row["mean_ns"] for row in rows if row["name"] == "prometheus_client child.observe"}
    print(f"{'threads':>7}  {'':38} {'p50 ns':>8} {'p99 ns':>8} {'mean ns':>8}  {'x labels()':>10} {'x child':>8}")
    for row in rows:
        print(f"{row['threads']:>7}  {row['name']:38} {row['p50_ns']:8.0f} {row['p99_ns']:8.0f} "
              f"{row['mean_ns']:8.0f}  {row['mean_ns'] / baseline[row['threads']]:10.2f} "
              f"{row['mean_ns'] / child[row['threads']]:8.2f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
