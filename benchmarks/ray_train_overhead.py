"""What the Ray Train integration (fleetscope.exporters.training.ray_train) costs a step, in one Ray Train worker.

A TorchTrainer with one CPU worker, on a Ray head this script starts (fleetscope.localstack.ray.RayHead) and stops,
runs a loop whose step is `work` microseconds of busy arithmetic and one `ray.train.report`, in interleaved rounds:
  - bare:             the worker's train context without the fleetscope callback (taken out of its callback list);
  - with fleetscope:  the same loop with it (each report ends a step: the rank's record written, the next opened);
and, in the same process, the callback's own work per report with no Ray in the way (its on_report hook around
nothing, a checkpoint-free report). Medians over ROUNDS rounds, the rows' order alternating from round to round;
the ratio is with/bare per step.

Ray Train's controller takes one report a poll (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S): the script sets it to
POLL_S so that a report costs what the poll lets it, as a loop reporting every few steps would see.

    .venv/bin/python benchmarks/ray_train_overhead.py [--reports 40] [--work-us 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

ROUNDS = 7
POLL_S = "0.02"
HOOK_CALLS = 5000


def train_loop(config: dict) -> None:
    import statistics
    import time

    import ray.train
    from ray.train.v2._internal.execution.context import get_train_context

    from fleetscope.exporters.training.ray_train import TrainingMetricsCallback

    callbacks = get_train_context().execution_context.train_context_callbacks
    ours = next(callback for callback in callbacks if isinstance(callback, TrainingMetricsCallback))
    work_s = config["work_us"] / 1e6

    def loop(reports: int) -> float:
        started = time.perf_counter()
        for step in range(reports):
            end = time.perf_counter() + work_s
            while time.perf_counter() < end:
                pass
            ray.train.report({"step": step})
        return (time.perf_counter() - started) / reports

    times: dict[str, list[float]] = {"bare": [], "with fleetscope": []}
    loop(5)  # warm-up: the first reports start the controller's polling
    for round_ in range(ROUNDS):
        for row in ("bare", "with fleetscope") if round_ % 2 == 0 else ("with fleetscope", "bare"):
            if row == "bare":
                callbacks.remove(ours)
            times[row].append(loop(config["reports"]))
            if row == "bare":
                callbacks.append(ours)
    hook = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(HOOK_CALLS):
            with ours.on_report():
                pass
        hook.append((time.perf_counter() - started) / HOOK_CALLS)
    bare, instrumented = statistics.median(times["bare"]), statistics.median(times["with fleetscope"])
    Path(config["out"]).write_text(json.dumps({
        "work_us": config["work_us"], "reports_per_round": config["reports"], "rounds": ROUNDS, "poll_s": POLL_S,
        "bare_us_per_step": bare * 1e6, "with_fleetscope_us_per_step": instrumented * 1e6,
        "ratio": instrumented / bare, "hook_us_per_report": statistics.median(hook) * 1e6}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=40, help="reports (steps) per round and row")
    parser.add_argument("--work-us", type=float, default=1000, help="busy microseconds per step")
    parser.add_argument("--json", help="write the result to this file")
    args = parser.parse_args()

    from fleetscope.localstack.ray import RayHead

    with tempfile.TemporaryDirectory(prefix="fsbench") as folder, RayHead(Path(folder) / "head", num_cpus=2) as head:
        os.environ.update(head.environment)
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        from fleetscope.exporters.training.ray_train import TrainingMetricsCallback

        out = Path(folder) / "result.json"
        ray.init(address=head.address, logging_level="ERROR", log_to_driver=False,
                 runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": POLL_S, "OMP_NUM_THREADS": "1"}})
        try:
            TorchTrainer(train_loop, scaling_config=ScalingConfig(num_workers=1, use_gpu=False),
                         train_loop_config={"reports": args.reports, "work_us": args.work_us, "out": str(out)},
                         run_config=RunConfig(name="fleetscope-overhead", storage_path=str(Path(folder) / "runs"),
                                              callbacks=[TrainingMetricsCallback()])).fit()
        finally:
            ray.shutdown()
        result = json.loads(out.read_text())
    print(f"step: {result['work_us']:.0f} µs of work + ray.train.report, {result['reports_per_round']} reports x "
          f"{result['rounds']} rounds, controller poll {result['poll_s']} s")
    print(f"bare Ray Train loop      {result['bare_us_per_step']:10.1f} µs/step")
    print(f"with fleetscope          {result['with_fleetscope_us_per_step']:10.1f} µs/step   "
          f"ratio {result['ratio']:.3f}")
    print(f"the callback's own work  {result['hook_us_per_report']:10.2f} µs/report")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
