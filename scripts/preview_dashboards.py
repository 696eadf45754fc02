"""Renders the dashboard previews docs/dashboards.md shows: starts a small fleet on loopback (the simulated
exporter, the drift service with a drifted model and a classifier whose labels arrive as it serves
(its quality falling), an SDK-instrumented LLM server under
synthetic traffic and a vLLM engine's page), lets a real Prometheus scrape it and record the
inference schema for a few minutes, then runs
`fleetscope dashboards preview` against it, drawing the last --drawn minutes: by then the records over
5-minute rates hold their steady values rather than their first minutes' ramp.

    .venv/bin/python scripts/preview_dashboards.py [--minutes 8] [--drawn 3] [--output docs/dashboards]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetscope.alerts.generate import DIRECTORY as ALERTS  # noqa: E402
from fleetscope.alerts.generate import RULE_FILES  # noqa: E402
from fleetscope.localstack.process import fleetscope_server  # noqa: E402
from fleetscope.localstack.prometheus import Prometheus  # noqa: E402
from tests.support.engine_pages import EnginePages  # noqa: E402
from tests.support.fleet_data import DRIFT_CONFIG, FraudTraffic, LlmTraffic, feed_drift_service  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=8, help="how long the fleet runs before the previews")
    parser.add_argument("--drawn", type=float, default=3, help="the minutes drawn, the last of the run")
    parser.add_argument("--output", type=Path, default=Path("docs/dashboards"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        (work / "drift.yaml").write_text(DRIFT_CONFIG)
        processes = []
        addresses = {}
        # The job names the committed rules select (mixin/config.py's defaults).
        for name, command in (("fleetscope-exporter", ["exporter", "--simulate"]),
                              ("fleetscope-drift", ["drift", "serve", f"--config.file={work / 'drift.yaml'}",
                                         f"--storage.path={work / 'drift.sqlite'}"])):
            process, address = fleetscope_server(command, work)
            process.start(timeout=60)
            processes.append(process)
            addresses[name] = address
        feed_drift_service(addresses["fleetscope-drift"])
        traffic, fraud = LlmTraffic().start(), FraudTraffic(addresses["fleetscope-drift"]).start()
        targets = [Prometheus.targets(job, [address]) for job, address in {**addresses, "llm": traffic.address}.items()]
        targets.append(Prometheus.targets("vllm", [traffic.engine.address], metrics_path=EnginePages.path("vllm")))
        server = Prometheus(work / "prometheus", targets,
                            scrape_interval="5s", evaluation_interval="5s",
                            rule_files=[ALERTS / "rules" / name for name in RULE_FILES]).start()
        try:
            time.sleep(args.minutes * 60)
            subprocess.run([sys.executable, "-m", "fleetscope", "dashboards", "preview",
                            f"--prometheus.url={server.url}",
                            f"--output={args.output}", f"--range={int(min(args.drawn, args.minutes) * 60)}s",
                            "--rate-interval=20s"],
                           check=True)
        finally:
            server.stop()
            traffic.stop()
            fraud.stop()
            for process in processes:
                process.stop()


if __name__ == "__main__":
    main()
