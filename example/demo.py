"""`fleetscope demo`: the whole stack on loopback, watching a simulated GPU fleet.

It starts a real Prometheus with the generated rules, a real Alertmanager with the generated
routing (PagerDuty, Opsgenie, Slack and the webhook all pointed at a local receiver that prints
each notification), simulated exporters for a few nodes, the drift service, and the example
model server under steady load, whose flowers' true species reach the drift service as labels a
few seconds after each answer, and a training job with a rank on each node (example/training.py).
Then, on a timeline: an XID on a GPU, which also crashes the training job (it restarts from its
last checkpoint and its goodput falls), a shift in the model's inputs (its drift, then its falling
accuracy), a slowdown of the model server. Each alert is
printed as it fires and resolves; at the end the dashboards are drawn from the demo's Prometheus,
and a summary says what fired, when, what resolved, and where every notification and image is.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import yaml

from fleetscope import durations, log
from fleetscope.alerts import generate
from fleetscope.alerts.inference import PREFIX
from fleetscope.alerts.routing import local_receivers
from fleetscope.alerts.training import GOODPUT
from fleetscope.drift import catalog as drift_catalog
from fleetscope.example import remediation, tour
from fleetscope.example.load import Load, instances
from fleetscope.example.training import TrainingJob
from fleetscope.generated import write_all
from fleetscope.localstack.alertmanager import Alertmanager
from fleetscope.localstack.process import ManagedProcess, StartError, fleetscope_server
from fleetscope.localstack.prometheus import Prometheus
from fleetscope.localstack.receiver import Notification, NotificationReceiver
from fleetscope.mixin.config import MonitoringConfig, from_mapping
from fleetscope.prometheus_api import QueryError

DESCRIPTION = __doc__.split("\n\n", 1)[1].strip() if __doc__ else ""
MODEL = "iris"
TRAINING_JOB = "llm-pretrain"
ENERGY_PER_TOKEN = f"{PREFIX}energy_joules_per_output_token:rate5m"
ACCURACY = drift_catalog.QUALITY.name
LABEL_DELAY = 5.0  # seconds from an answer to its label: a click, not a chargeback
NOTIFICATIONS = "notifications.jsonl"
SCRAPE_INTERVAL = "2s"
RATE_INTERVAL = "10s"  # what $__rate_interval stands for in the dashboards drawn at the end: a few scrapes
# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
DURATION = durations.bounded_duration("1s", "1w", zero="runs until Ctrl-C")
NODES = durations.bounded_int(1, 8)
AFTER = durations.bounded_duration("0s", "1d")  # passed on to the exporters and model server as {:g}s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=DURATION, default=0.0, metavar="DURATION",
                        help=f"stop after this long (e.g. 5m; {DURATION.low} to {DURATION.high}); by default (0s) run "
                             "until Ctrl-C")
    parser.add_argument("--nodes", type=NODES, default=3, metavar="N",
                        help=f"simulated GPU nodes, 8 H100s each ({NODES.range})")
    parser.add_argument("--xid-after", type=AFTER, default=20.0, metavar="DURATION",
                        help="when GPU 2 of the first node reports XID 79 (fallen off the bus), crashing the training "
                             f"job, which restarts from its last checkpoint ({AFTER.range})")
    parser.add_argument("--shift-after", type=AFTER, default=40.0, metavar="DURATION",
                        help=f"when the model's inputs shift (longer and wider petals; {AFTER.range})")
    parser.add_argument("--slowdown-after", type=AFTER, default=80.0, metavar="DURATION",
                        help="when every prediction starts taking 3 s longer (the latency SLO is 2.5 s; "
                             f"{AFTER.range})")
    parser.add_argument("--workdir", type=Path,
                        help="keep configuration, logs, data, every receiver's notifications (notifications.jsonl, "
                             "notifications/), the dashboards drawn at the end (dashboards/) and summary.txt here "
                             "(default: a temporary directory, of which only the stores are removed at the end)")


def demo_alerts_config(workdir: Path, receiver_url: str) -> dict:
    """The default alerts config, with `for`s short enough for a demo and every receiver local."""
    return {
        "drift": {"detected_for": "20s", "column_detected_for": "1m", "quality_objective_for": "20s"},
        # GPU down pages 20 s after the XID 79; the node's health verdict pages as unfit 20 s after that.
        "gpu": {"gpu_down_for": "20s", "health_unfit_for": "40s"},
        # The XID crashes the training job: its goodput (over 5m, so about its whole life in a demo) falls from about
        # 95% under the 90% objective within seconds; averaged over 30 s and held 10 s, the ticket follows about half
        # a minute after the crash. The lemon-node increments are recorded each minute rather than each hour, so that
        # gpu-node-1 is seen to have failed the job (its score rises to 1.25, under the threshold of 3).
        "training": {"goodput_window": "30s", "goodput_for": "10s", "lemon_interval": "1m"},
        "inference": {"normalization": {"slo_interval": "10s"},
                      "burn_rates": [["page", "1h", "5m", 14.4, "20s"], ["page", "6h", "30m", 6.0, "1m"],
                                     ["ticket", "1d", "2h", 3.0, "5m"], ["ticket", "3d", "6h", 1.0, "10m"]]},
        "routing": {"group_wait": "2s", "group_interval": "5s",
                    **local_receivers(receiver_url, workdir / "secrets", set(MonitoringConfig().teams.values()))},
    }


EMBEDDING = "embedding"  # the model server's --drift.embedding-column
REFERENCE = "reference.parquet"


def write_reference(path: Path, count: int = 1500, seed: int = 7) -> None:
    """What the model answers to unshifted inputs, its embeddings included: the drift service's reference, as
    Parquet (a CSV cell cannot hold a vector; Parquet keeps the embedding a list of float64 per row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as parquet

    from fleetscope.example.model import IrisModel

    model = IrisModel()
    features = np.asarray(instances(random.Random(seed), count, shifted=False))
    parquet.write_table(pa.Table.from_pylist(model.rows(features, model.predict(features),
                                                        embedding_column=EMBEDDING)), path)


# The embedding (12 terms of the model's decision function, example/model.py) is compared by Evidently's default
# method: with 1500 reference rows (1000 or more), `model`, a domain classifier's ROC AUC against 0.55.
DRIFT_CONFIG = """\
evaluation_interval: 5s
models:
  iris:
    columns: {sepal_length: numerical, sepal_width: numerical, petal_length: numerical,
              petal_width: numerical, label: categorical, confidence: numerical, embedding: embedding}
    dimensions: {embedding: 12}   # IrisModel.embedding_names: 3 classes x 4 features
    window: {type: sliding, duration: 30s}
    reference: {file: reference.parquet}
    # How the columns vary together, as NannyML's domain classifier sees it (the reconstruction's band would need a
    # reference of 5 windows' rows).
    multivariate: {methods: [classifier], columns: [sepal_length, sepal_width, petal_length, petal_width]}
    # Ground truth: the load posts each flower's species a few seconds after its answer, under its request id.
    quality: {task: classification, request_id: request_id, prediction: label, confidence: confidence,
              window: 30s, horizon: 1h}
"""


class AlertPrinter:
    """Prints each alert of the webhook's notifications when its state changes, keeps every receiver's
    notifications in the workdir (example/tour.py), and the alerts' changes of state for the closing summary."""

    def __init__(self, out: TextIO, workdir: Path, started: float):
        self._out, self._workdir, self._started = out, workdir, started
        self._states: dict[str, str] = {}
        self.transitions: list[tour.Transition] = []
        self._lock = threading.Lock()

    def __call__(self, notification: Notification) -> None:
        with self._lock:
            tour.keep(notification, self._workdir)
            if notification.path != "/webhook" or not isinstance(notification.body, dict):
                return
            for alert in notification.body.get("alerts", []):
                key = alert.get("fingerprint") or json.dumps(alert["labels"], sort_keys=True)
                if self._states.get(key) == alert["status"]:
                    continue
                self._states[key] = alert["status"]
                labels = alert["labels"]
                self.transitions.append(tour.Transition(
                    time.monotonic() - self._started, alert["status"], labels.get("alertname", ""),
                    labels.get("severity", ""), labels.get("team", ""), alert["annotations"].get("summary", ""), key))
                self._out.write(f"{_clock(self._started)} {alert['status'].upper():8} {labels.get('alertname')} "
                                f"[{labels.get('severity')} → {labels.get('team')}] "
                                f"{alert['annotations'].get('summary', '')}\n")
                self._out.flush()


def _clock(started: float) -> str:
    return f"[{time.monotonic() - started:6.0f}s]"


class Demo:
    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout):
        self.args, self.out = args, out
        self.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fleetscope-demo-"))
        self._keep = args.workdir is not None
        self.started = time.monotonic()
        self._processes: list[ManagedProcess] = []
        self._receiver: NotificationReceiver | None = None
        self._alertmanager: Alertmanager | None = None
        self._prometheus: Prometheus | None = None
        self._load: Load | None = None
        self._printer: AlertPrinter | None = None
        self._audit: remediation.AuditPrinter | None = None
        self._training: TrainingJob | None = None

    def say(self, text: str) -> None:
        self.out.write(f"{_clock(self.started)} {text}\n")
        self.out.flush()

    def _serve(self, *commands: list[str]) -> list[str]:
        """Starts `fleetscope` processes side by side; their addresses, once all answer."""
        started = [fleetscope_server(words, self.workdir / "logs") for words in commands]
        self._processes += [process for process, _ in started]
        with ThreadPoolExecutor(len(started)) as pool:
            list(pool.map(lambda process: process.start(timeout=60), [process for process, _ in started]))
        return [address for _, address in started]

    def start(self) -> None:
        args, work = self.args, self.workdir
        (work / "logs").mkdir(parents=True, exist_ok=True)
        (work / NOTIFICATIONS).write_text("")
        printer = self._printer = AlertPrinter(self.out, work, self.started)
        self._receiver = NotificationReceiver(on_notification=printer).start()
        self.say(f"working in {work}")

        config = from_mapping(demo_alerts_config(work, self._receiver.url))
        texts = generate.files(config)
        write_all(texts, work / "config")
        # The remediator, dry-run on Slurm stand-ins, receives FleetscopeNodeUnfit (example/remediation.py).
        remediate_config = remediation.write_config(work, [f"gpu-node-{node + 1}" for node in range(args.nodes)])
        [remediator] = self._serve(["remediate", f"--config.file={remediate_config}", "--dry-run"])
        self._audit = remediation.AuditPrinter(work / remediation.AUDIT, self.say).start()
        self._alertmanager = Alertmanager(work / "alertmanager", remediation.route_to(
            yaml.safe_load(texts["alertmanager/alertmanager.yml"]), remediator, remediate_config)).start()
        self.say(f"Alertmanager     {self._alertmanager.url}  (PagerDuty, Opsgenie, Slack and the webhook "
                 f"all go to {self._receiver.url})")

        write_reference(work / REFERENCE)
        (work / "drift.yaml").write_text(DRIFT_CONFIG)
        [drift] = self._serve(["drift", "serve", f"--config.file={work / 'drift.yaml'}",
                               f"--storage.path={work / 'drift.sqlite'}"])
        # Read the GPUs and ports as often as Prometheus scrapes, so that a fault shows within seconds.
        nodes = [["exporter", "--simulate", f"--simulate.seed={node + 1}", f"--collector.hostname=gpu-node-{node + 1}",
                  f"--collector.gpu.poll-interval={SCRAPE_INTERVAL}",
                  f"--collector.fabric.poll-interval={SCRAPE_INTERVAL}",
                  f"--collector.health.poll-interval={SCRAPE_INTERVAL}"]
                 + ([f"--simulate.xid={args.xid_after:g}s:2:79"] if node == 0 else []) for node in range(args.nodes)]
        *exporters, server = self._serve(*nodes, ["model-server", f"--drift.url=http://{drift}",
                                                  "--drift.request-id-column=request_id",
                                                  f"--drift.embedding-column={EMBEDDING}",
                                                  f"--simulate.slowdown={args.slowdown_after:g}s:3s",
                                                  *_serving_gpus(f"gpu-node-{args.nodes}")])
        self.say(f"drift service    http://{drift}/v1/models  (report: http://{drift}/v1/models/{MODEL}/report)")
        self.say(f"node exporters   {', '.join(f'http://{a}/metrics' for a in exporters)}")
        self.say(f"model server     http://{server}/metrics")
        # Started once the exporters answer, so that their simulated GPUs' clocks (which time the XID) started first
        # and the crash comes with the XID or a few seconds after it (the model server may answer last).
        hosts = [f"gpu-node-{node + 1}" for node in range(args.nodes)]
        self._training = TrainingJob(work / "training", hosts, name=TRAINING_JOB, fault_after=args.xid_after,
                                     announce=self.say).start()
        self.say(f"training job     {', '.join(f'http://{a}/metrics' for a in self._training.addresses)}  "
                 f"({TRAINING_JOB}: a rank on each of {', '.join(hosts)}, a step every "
                 f"{self._training.pace.step:g}s, a checkpoint every {self._training.pace.checkpoint_every} steps)")

        self._prometheus = Prometheus(
            work / "prometheus",
            [Prometheus.targets("fleetscope-exporter", exporters), Prometheus.targets("fleetscope-drift", [drift]),
             Prometheus.targets("model-servers", [server]),
             Prometheus.targets("training", self._training.addresses)],
            scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL,
            rule_files=[work / "config" / "rules" / name for name in generate.RULE_FILES],
            alertmanagers=[self._alertmanager.address]).start()
        self.say(f"Prometheus       {self._prometheus.url}/targets  ·  {self._prometheus.url}/alerts")
        self._load = Load(f"http://{server}/v1/models/{MODEL}/predict", shift_after=args.shift_after,
                          labels_url=f"http://{drift}/v1/models/{MODEL}/labels", label_delay=LABEL_DELAY).start()
        self.say(f"remediator       http://{remediator}/webhook  (fleetscope remediate, dry-run on Slurm: drains the "
                 f"node FleetscopeNodeUnfit names; audit log {work / remediation.AUDIT})")
        self.say(f"timeline: XID 79 on gpu-node-1 GPU 2 at {args.xid_after:g}s (the GPU turns unfit, its node is "
                 f"paged and drained in dry-run, and the training job crashes with it: it restarts from its last "
                 f"checkpoint and its goodput falls), inputs shift at "
                 f"{args.shift_after:g}s (and the model's accuracy falls, as its labels arrive {LABEL_DELAY:g}s "
                 f"after each answer), predictions slow down at {args.slowdown_after:g}s")

    def progress(self) -> None:
        if self._prometheus is None or self._load is None:
            return  # not started yet
        try:
            up = self._prometheus.query("sum(up)")
            targets = self._prometheus.query("count(up)")
            firing = self._prometheus.query('count by (alertname) (ALERTS{alertstate="firing"})')
        except (QueryError, OSError) as error:
            self.say(f"Prometheus is not answering: {error}")
            return
        names = ", ".join(sorted(r["metric"]["alertname"] for r in firing)) or "none"

        def value(result: list[dict]) -> int:
            return int(float(result[0]["value"][1])) if result else 0

        try:
            energy = self._prometheus.query(f'{ENERGY_PER_TOKEN}{{model="{MODEL}"}}')
        except (QueryError, OSError):
            energy = []
        per_token = f" · {float(energy[0]['value'][1]):.1f} J per prediction" if energy else ""
        try:
            accuracy = self._prometheus.query(f'{ACCURACY}{{model="{MODEL}",metric="accuracy",class="",segment=""}}')
        except (QueryError, OSError):
            accuracy = []
        per_token += f" · accuracy {float(accuracy[0]['value'][1]):.0%}" if accuracy else ""
        try:
            goodput = self._prometheus.query(f'{GOODPUT}{{training_job="{TRAINING_JOB}"}}')
        except (QueryError, OSError):
            goodput = []
        if goodput and self._training is not None:
            restarts = self._training.restarts
            per_token += (f" · training goodput {float(goodput[0]['value'][1]):.0%}"
                          + (f" ({restarts} restart{'s' * (restarts > 1)})" if restarts else ""))
        self.say(f"targets up {value(up)}/{value(targets)} · requests {self._load.sent} "
                 f"({'shifted' if self._load.shifted else 'reference'} inputs){per_token} · firing: {names}")

    def finish(self) -> None:
        """The tour's end, while Prometheus still answers: the dashboards drawn from it, and what happened."""
        if self._prometheus is None or self._printer is None:
            return  # it never started
        elapsed = time.monotonic() - self.started
        try:
            drawn = tour.draw_dashboards(self._prometheus.url, self.workdir / tour.DASHBOARDS_DIR,
                                         max(60.0, elapsed), RATE_INTERVAL)
        except (ImportError, OSError, QueryError) as error:
            self.say(f"the dashboards could not be drawn: {error}")
            drawn = []
        kept = sorted({self.workdir / NOTIFICATIONS, *(self.workdir / tour.OTHERS_DIR).glob("*.jsonl")})
        lines = tour.summary(self._printer.transitions,
                             [*[path for path in kept if path.exists()], *drawn, self.workdir / tour.SUMMARY_FILE,
                              self.workdir / "logs"])
        (self.workdir / tour.SUMMARY_FILE).write_text("\n".join(lines) + "\n")
        for line in lines:
            self.say(line)
        if not self._keep:
            self.say(f"{self.workdir} is kept: remove it with rm -r {self.workdir}")

    def stop(self) -> None:
        if self._load is not None:
            self._load.stop()
        if self._training is not None:
            self._training.stop()
        if self._prometheus is not None:
            self._prometheus.stop()
        for process in reversed(self._processes):
            process.stop()
        if self._audit is not None:
            self._audit.stop()
        if self._alertmanager is not None:
            self._alertmanager.stop()
        if self._receiver is not None:
            self._receiver.stop()
        if not self._keep:  # what the tour printed stays (notifications, dashboards, summary, logs); its stores go
            for store in ("prometheus", "alertmanager", "drift.sqlite", "drift.sqlite-wal", "drift.sqlite-shm",
                          "training"):
                _remove(self.workdir / store)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _serving_gpus(hostname: str) -> list[str]:
    """The model server's flags declaring GPUs 0 and 1 of a simulated node, as a server off Kubernetes
    declares its own, so that the serving-efficiency rules join them to its predictions."""
    from fleetscope.exporters.inference import visible_gpus
    from fleetscope.simulation.gpu import simulated_nvml

    uuids = visible_gpus({"NVIDIA_VISIBLE_DEVICES": "0,1"}, simulated_nvml())
    return [f"--gpus={','.join(uuids)}", f"--gpus.hostname={hostname}"]


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    demo = Demo(args, out)
    try:
        try:
            demo.start()
        except (StartError, ImportError) as error:
            raise log.UserError(f"the demo could not start: {error}") from None
        demo.say("running; Ctrl-C stops everything" + (f", or after {args.duration:g}s" if args.duration else ""))
        deadline = demo.started + args.duration if args.duration else float("inf")
        while not stop.wait(min(15.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            demo.progress()
    finally:
        try:
            demo.finish()
        finally:
            demo.say("stopping")
            demo.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
