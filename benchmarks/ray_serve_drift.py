"""What the drift client (fleetscope.drift.client, profile mode) costs a request in a Ray Serve replica.

On a Ray head this script starts (fleetscope.localstack.ray.RayHead) and a drift service it starts (`fleetscope
drift serve`, the iris model fed profiles), the example's iris deployment (fleetscope.example.ray_serve) runs with
the client, its replica keyed by its Serve replica id, and is measured two ways, medians over ROUNDS rounds whose
order alternates:
  - in the replica (one process): the request's work, validate and predict, without the client, and the same with
    the client (the answer's rows built and handed to send_many; the client profiles them on its own thread, and
    that thread's share of the process is in the time too);
  - over HTTP, through Serve's proxy: requests to the same deployment without the client (iris-plain) and with it
    (iris-drift), one after the other.
The ratio is with/without per request.

    .venv/bin/python benchmarks/ray_serve_drift.py [--calls 400] [--instances 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from fleetscope.localstack.process import fleetscope_server, free_port
from fleetscope.localstack.ray import DRIVER_ENVIRONMENT, RayHead

ROUNDS = 5
INTERVAL_S = 5.0
MODEL = """
models:
  iris:
    mode: profiles
    columns: {sepal_length: numerical, sepal_width: numerical, petal_length: numerical, petal_width: numerical,
              label: categorical}
    window: {type: sliding, duration: 1h}
"""
FLOWER = [5.1, 3.5, 1.4, 0.2]


def measured_iris() -> type:
    """The example's iris deployment, able to time its own request work with and without its drift client.
    Made once the driver's environment is set: importing the example imports Ray, which reads it."""
    from fleetscope.example.ray_serve import IrisServer

    class MeasuredIris(IrisServer):
        def measure(self, calls: int, instances: int) -> dict[str, list[float]]:
            features, drift = self.model.validate([FLOWER] * instances), self.drift
            assert drift is not None, "measure() times the client: deploy with drift_url"

            def loop(with_client: bool) -> float:
                started = time.perf_counter()
                for _ in range(calls):
                    predictions = self.model.predict(self.model.validate([FLOWER] * instances))
                    if with_client:
                        drift.send_many(self.model.rows(features, predictions))
                return (time.perf_counter() - started) / calls

            times: dict[str, list[float]] = {"without client": [], "with client": []}
            for with_client in (False, True):  # warm-up
                loop(with_client)
            for round_ in range(ROUNDS):
                for with_client in (False, True) if round_ % 2 == 0 else (True, False):
                    times["with client" if with_client else "without client"].append(loop(with_client))
            return times

    return MeasuredIris


def http_latencies(port: int, calls: int, instances: int) -> dict[str, list[float]]:
    body = json.dumps({"instances": [FLOWER] * instances}).encode()

    def loop(route: str) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/{route}", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        return (time.perf_counter() - started) / calls

    times: dict[str, list[float]] = {"without client": [], "with client": []}
    for route in ("iris-plain", "iris-drift"):  # warm-up
        loop(route)
    for round_ in range(ROUNDS):
        for route in ("iris-plain", "iris-drift") if round_ % 2 == 0 else ("iris-drift", "iris-plain"):
            times["with client" if route == "iris-drift" else "without client"].append(loop(route))
    return times


def rows_of(where: str, times: dict[str, list[float]], calls: int, instances: int) -> list[dict]:
    bare, with_client = statistics.median(times["without client"]), statistics.median(times["with client"])
    return [{"where": where, "calls": calls, "instances": instances, "without_client_us": round(bare * 1e6, 1),
             "with_client_us": round(with_client * 1e6, 1), "overhead_us": round((with_client - bare) * 1e6, 1),
             "ratio": round(with_client / bare, 3)}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="requests per round and row")
    parser.add_argument("--instances", type=int, default=8, help="flowers per request")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    os.environ.update(DRIVER_ENVIRONMENT)  # before Ray is imported: the driver must agree with the head
    MeasuredIris = measured_iris()
    with tempfile.TemporaryDirectory(prefix="fleetscope-bench-") as folder:
        work = Path(folder)
        (work / "drift.yaml").write_text(MODEL)
        service, address = fleetscope_server(["drift", "serve", f"--config.file={work / 'drift.yaml'}",
                                              f"--storage.path={work / 'store.sqlite'}"], work)
        service.start(timeout=60)
        try:
            with RayHead(work / "ray", num_cpus=2) as head:
                import ray
                from ray import serve

                ray.init(address=head.address, logging_level=logging.ERROR)
                port = free_port()
                serve.start(http_options={"host": "127.0.0.1", "port": port})
                actor = {"num_cpus": 0.25}
                measured = serve.deployment(name="IrisDeployment")(MeasuredIris).options(ray_actor_options=actor)
                handle, _ = serve.run_many([
                    serve.RunTarget(measured.bind(drift_url=f"http://{address}", drift_interval=INTERVAL_S),
                                    name="iris-drift", route_prefix="/iris-drift"),
                    serve.RunTarget(measured.bind(), name="iris-plain", route_prefix="/iris-plain")])
                in_replica = handle.measure.remote(args.calls, args.instances).result(timeout_s=600)
                over_http = http_latencies(port, args.calls, args.instances)
                ray.shutdown()
        finally:
            service.stop()
    rows = (rows_of("in the replica", in_replica, args.calls, args.instances)
            + rows_of("over HTTP", over_http, args.calls, args.instances))
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
