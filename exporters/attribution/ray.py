"""Ray workers on a GPU: the Ray job each runs for, and the actor class or Serve deployment it hosts.

What Ray 2.60 itself provides, and where (python/ray/_private/worker.py, python/ray/_raylet.pyx):
- The process title. Every worker sets it: `ray::IDLE` while idle, `ray::<function>` while a task runs,
  `ray::<Class>` for an actor and `ray::<Class>.<method>` while a method runs. A Serve replica is the actor class
  `ServeReplica:<application>:<deployment>` (ray/serve/_private/deployment_state.py), so its title names both.
- RAY_JOB_ID in the environment, for a worker Ray started for a job (a Serve replica, a worker with a runtime_env).
  A worker the raylet prestarted for its pool has the nil id `ffffffff` there: it learns its job only when leased.
- The dashboard's view of a node (GET /nodes/<node_id>, the page behind its Cluster view) lists the node's actors
  with their pid, job and class. It is the only source of a pooled actor's job; it needs the dashboard, and the
  cluster's token where token authentication is on (the default since Ray 2.52).

A task's function name is not a label: a worker's title changes with every task it runs, and a GPU series whose
labels change with it would start a new series each time.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetscope import log
from fleetscope.exporters.attribution import bounded, read_head
from fleetscope.exporters.catalog.gpu import RAY_LABELS

_logger = log.get("fleetscope.exporters.attribution")

RAY_JOB_LABEL, RAY_ACTOR_CLASS_LABEL, RAY_SERVE_APPLICATION_LABEL, RAY_SERVE_DEPLOYMENT_LABEL = RAY_LABELS

TITLE_PREFIX = "ray::"
IDLE_TITLE = "ray::IDLE"  # also ray::IDLE_SpillWorker and ray::IDLE_RestoreWorker
SERVE_REPLICA_CLASS = "ServeReplica:"
NIL_JOB_ID = "ffffffff"  # JobID.nil().hex()
MAX_TITLE_BYTES = 1024
MAX_ENVIRONMENT_BYTES = 65536
MAX_DASHBOARD_BYTES = 8 * 1024 * 1024  # a node page is about 14 KB with one actor; thousands of actors stay under it
DASHBOARD_TIMEOUT_SECONDS = 2.0
DASHBOARD_REFRESH_SECONDS = 15.0


def is_ray_worker(title: str) -> bool:
    return title.startswith(TITLE_PREFIX)


def process_title(pid: int, proc: Path) -> str:
    """/proc/<pid>/cmdline's first argument: what setproctitle wrote; empty where it cannot be read."""
    return (read_head(proc / str(pid) / "cmdline", MAX_TITLE_BYTES) or "").split("\0", 1)[0]


def labels_of_title(title: str) -> dict[str, str]:
    """A Serve replica's application and deployment, from its title; nothing for any other worker."""
    name = title.removeprefix(TITLE_PREFIX)
    if not is_ray_worker(title) or not name.startswith(SERVE_REPLICA_CLASS):
        return {}
    parts = name.removeprefix(SERVE_REPLICA_CLASS).split(".", 1)[0].split(":")
    if len(parts) != 2 or not all(parts):
        return {}
    return {RAY_SERVE_APPLICATION_LABEL: bounded(parts[0]), RAY_SERVE_DEPLOYMENT_LABEL: bounded(parts[1])}


def job_in_environment(pid: int, proc: Path) -> str | None:
    environment = read_head(proc / str(pid) / "environ", MAX_ENVIRONMENT_BYTES) or ""
    for variable in environment.split("\0"):
        if variable.startswith("RAY_JOB_ID="):
            job = variable.removeprefix("RAY_JOB_ID=")
            return job if _is_job_id(job) and job != NIL_JOB_ID else None
    return None


def _is_job_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True)
class RayActor:
    job: str
    actor_class: str


class RayDashboard:
    """This node's actors by pid, as the Ray dashboard lists them, read at most once per `refresh` seconds.

    The node is the one whose hostname the dashboard reports as this exporter's. A dashboard that cannot be
    reached, refuses the token or answers something else leaves the labels to the title and the environment,
    and is reported once until it answers again."""

    def __init__(self, url: str, hostname: str, token_file: Path | None = None,
                 refresh: float = DASHBOARD_REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._url = url.rstrip("/")
        self._hostname = hostname
        self._token_file = token_file
        self._refresh = refresh
        self._clock = clock
        self._read_at: float | None = None
        self._actors: dict[int, RayActor] = {}
        self._problem: str | None = None

    def actor(self, pid: int) -> RayActor | None:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._refresh:
            self._read_at = now
            self._actors = self._read()
        return self._actors.get(pid)

    def _read(self) -> dict[int, RayActor]:
        try:
            nodes = self._get("/nodes?view=summary")["data"]["summary"]
            node_id = next((node["raylet"]["nodeId"] for node in nodes
                            if self._hostname in (node.get("hostname"), node["raylet"].get("nodeManagerHostname"))),
                           None)
            if node_id is None:
                raise ValueError(f"no node with hostname {self._hostname!r}")
            actors = self._get(f"/nodes/{node_id}")["data"]["detail"].get("actors") or {}
            found = {int(actor["pid"]): RayActor(actor["jobId"], bounded(str(actor["className"])))
                     for actor in actors.values()
                     if actor.get("state") == "ALIVE" and _is_job_id(actor.get("jobId")) and actor.get("pid")}
        # Whatever the dashboard answers, even a hostile one: JSON nested past the parser's recursion, objects where
        # lists belong.
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, StopIteration) as error:
            self._report(str(error) or type(error).__name__)
            return {}
        self._report(None)
        return found

    def _get(self, path: str) -> dict:
        headers = {"Accept": "application/json"}
        if self._token_file is not None:
            headers["Authorization"] = f"Bearer {self._token_file.read_text().strip()}"
        request = urllib.request.Request(self._url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=DASHBOARD_TIMEOUT_SECONDS) as response:
            body = response.read(MAX_DASHBOARD_BYTES + 1)
        if len(body) > MAX_DASHBOARD_BYTES:
            raise ValueError(f"{path} answered more than {MAX_DASHBOARD_BYTES} bytes")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"{path} answered {type(document).__name__}, not an object")
        return document

    def _report(self, problem: str | None) -> None:
        if problem and problem != self._problem:
            _logger.warning("cannot read the Ray dashboard; Ray workers' GPU series will lack what only it knows",
                            extra={"url": self._url, "error": problem})
        self._problem = problem


class RayAttribution:
    """The Ray labels of one GPU process, and whether they are final (a process read once keeps them)."""

    def __init__(self, proc: Path, dashboard: RayDashboard | None = None):
        self._proc = proc
        self._dashboard = dashboard

    def labels(self, pid: int) -> tuple[dict[str, str], bool]:
        title = process_title(pid, self._proc)
        if not is_ray_worker(title):
            return {}, True
        labels = labels_of_title(title)
        if job := job_in_environment(pid, self._proc):
            labels[RAY_JOB_LABEL] = job
        if self._dashboard is not None and (actor := self._dashboard.actor(pid)) is not None:
            labels.setdefault(RAY_JOB_LABEL, actor.job)
            labels[RAY_ACTOR_CLASS_LABEL] = actor.actor_class
        # An idle worker has no job yet, and a leased actor may not be on the dashboard's page yet: ask again.
        settled = RAY_JOB_LABEL in labels and (self._dashboard is None or RAY_ACTOR_CLASS_LABEL in labels)
        return labels, settled
