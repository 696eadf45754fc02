"""Many simulated nodes in one process, each its own scrape target: what `fleetscope exporter --simulate`
serves for that node (eight GPUs from the H100 recording, nine fabric ports, an NCCL job), under one
listen address at /<cluster>/<hostname>/metrics. Prometheus finds them through the file_sd target files
written for each cluster, whose entries set the target's metrics path and its `instance`.

One thread refreshes every node's collections in turn over the refresh interval, and scrapes serve the
latest: a node costs a collection per interval, not per scrape, so a 2-core machine serves hundreds.
Faults are scheduled on a chosen node of a chosen cluster: an XID on a GPU (79 loses the GPU, as on the
real bus), a link flap on a fabric port.
"""

from __future__ import annotations

import json
import math
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleetscope.exporters.fabric.collector import FabricCollector
from fleetscope.exporters.gpu.collector import GpuCollector
from fleetscope.exporters.health import host_facts
from fleetscope.exporters.health.collector import HealthCollector
from fleetscope.exporters.health.policy import Policy
from fleetscope.exporters.nccl.collector import NcclCollector
from fleetscope.exporters.registry import Collector, ExporterRegistry
from fleetscope.exporters.scheduling import Cached
from fleetscope.exporters.server import metrics_route
from fleetscope.simulation.fabric import SimulatedFabric
from fleetscope.simulation.gpu import ScheduledXid, simulated_nvml
from fleetscope.simulation.nccl import SimulatedJob
from fleetscope.web.server import ConnectionLimits, Route, WebServer

EXPORTER_PORT = 9835  # the port a real node's exporter listens on: the `instance` each node is given
# Each node's XID thread waits this long on the simulated NVML at a time (an XID ends the wait at once): at the
# exporter's 0.5 s, hundreds of threads waking twice a second slowed every node's collection threefold.
XID_WAIT_MS = 5000
# Each node's NCCL job takes a training step every 5 s rather than --simulate's 0.5 s: the simulation's cost is
# per step, and at 0.5 s it was most of a node's collection.
NCCL_STEP_SECONDS = 5.0


@dataclass(frozen=True)
class Fault:
    """A fault on one node: an XID (`kind` "xid", `target` the GPU index) or a link flap (`kind` "link-flap",
    `target` the fabric device index), `after` seconds from the start."""
    cluster: str
    hostname: str
    after: float
    kind: str
    target: int
    code: int = 0  # the XID
    seconds: float = 30.0  # how long a flapped link stays down

    @staticmethod
    def parse(text: str) -> Fault:
        """CLUSTER/HOST:AFTER:xid:GPU:CODE or CLUSTER/HOST:AFTER:link-flap:DEVICE[:SECONDS], AFTER in seconds."""
        where, _, rest = text.partition(":")
        cluster, _, hostname = where.partition("/")
        parts = rest.split(":")
        try:
            if cluster and hostname and len(parts) == 4 and parts[1] == "xid":
                return Fault(cluster, hostname, float(parts[0]), "xid", int(parts[2]), code=int(parts[3]))
            if cluster and hostname and len(parts) in (3, 4) and parts[1] == "link-flap":
                seconds = float(parts[3]) if len(parts) == 4 else 30.0
                return Fault(cluster, hostname, float(parts[0]), "link-flap", int(parts[2]), seconds=seconds)
        except ValueError:
            pass
        raise ValueError(f"{text!r} is not CLUSTER/HOST:AFTER:xid:GPU:CODE or CLUSTER/HOST:AFTER:link-flap:DEVICE")


class SimulatedNode:
    """One node's simulated GPUs, fabric and NCCL job, and the registry a real exporter would serve."""

    def __init__(self, cluster: str, hostname: str, gpus: int, xids: Sequence[ScheduledXid], max_age: float,
                 random_xids: bool = True):
        self.cluster, self.hostname = cluster, hostname
        seed = zlib.crc32(f"{cluster}/{hostname}".encode())
        self.fabric = SimulatedFabric(seed=seed)
        self.job = SimulatedJob(seed=seed, step_seconds=NCCL_STEP_SECONDS)
        rates = {} if random_xids else {"xid_mean_interval": math.inf}  # inf: only the scheduled XIDs
        nvml = simulated_nvml(gpus=gpus, seed=seed, scheduled_xids=xids, node=seed or 1, **rates)
        infiniband = self.fabric.root / "class" / "infiniband"
        collectors: list[Collector] = [
            GpuCollector(nvml, hostname, xid_wait_ms=XID_WAIT_MS),
            # The same fake NVML, as both collectors share the host's; the host's limits stand for every node's.
            HealthCollector(nvml, hostname, Policy(), host=lambda: host_facts.read(Path("/sys"), Path("/proc"),
                                                                                   infiniband=infiniband)),
            FabricCollector(self.fabric.root, hostname, before_read=self.fabric.advance),
            NcclCollector(self.job.root, hostname, before_read=self.job.advance, debug_logs=str(self.job.debug_log)),
        ]
        self.sources = [Cached(collector, max_age) for collector in collectors]
        self.registry = ExporterRegistry(self.sources)

    @property
    def path(self) -> str:
        return f"/{self.cluster}/{self.hostname}/metrics"

    def refresh(self) -> None:
        for source in self.sources:
            source.refresh()

    def close(self) -> None:
        self.registry.close()
        self.fabric.close()
        self.job.close()


class SimulatedFleet:
    """clusters x nodes_per_cluster simulated nodes served on one address; use as a context manager, or
    call start() and close(). With random_xids off, a GPU raises only the XIDs its faults schedule."""

    def __init__(self, clusters: Sequence[str], nodes_per_cluster: int, gpus: int = 8, refresh_interval: float = 15.0,
                 faults: Iterable[Fault] = (), listen_address: str = "127.0.0.1:0", random_xids: bool = True):
        faults = list(faults)
        names = [(cluster, f"{cluster}-node-{index:04d}") for cluster in clusters for index in range(nodes_per_cluster)]
        unknown = [f for f in faults if (f.cluster, f.hostname) not in set(names)]
        if unknown:
            raise ValueError(f"no simulated node {unknown[0].cluster}/{unknown[0].hostname} for a fault; nodes are "
                             f"named CLUSTER/CLUSTER-node-NNNN, from 0000")
        ports = SimulatedFabric.DEVICES + 1  # the InfiniBand devices and the RoCE one
        for fault in faults:  # refused now, not when due in the refresh thread
            if fault.kind == "xid" and not 0 <= fault.target < gpus:
                raise ValueError(f"no GPU {fault.target} on {fault.hostname}: it has {gpus}")
            if fault.kind == "link-flap" and not 0 <= fault.target < ports:
                raise ValueError(f"no fabric device {fault.target} on {fault.hostname}: it has {ports}")
        if len(set(clusters)) != len(clusters):
            raise ValueError(f"cluster names repeat: {', '.join(clusters)}")
        self.refresh_interval = refresh_interval
        self.nodes: list[SimulatedNode] = []
        for cluster, hostname in names:
            xids = [ScheduledXid(f.after, f.target, f.code) for f in faults
                    if (f.cluster, f.hostname, f.kind) == (cluster, hostname, "xid")]
            # A node older than three intervals is stale, as a Polled source's is.
            self.nodes.append(SimulatedNode(cluster, hostname, gpus, xids, max_age=3 * refresh_interval + 10,
                                            random_xids=random_xids))
        self._flaps = sorted((f for f in faults if f.kind == "link-flap"), key=lambda f: f.after)
        routes: dict[str, Route] = {node.path: metrics_route(node.registry) for node in self.nodes}
        # Prometheus keeps a connection open to every target.
        limits = ConnectionLimits(max_connections=len(self.nodes) + 64, idle_timeout=max(120.0, 4 * refresh_interval))
        try:
            self._server = WebServer(listen_address, routes, limits=limits)
        except Exception:
            self._close_nodes(self.nodes)
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-refresh", daemon=True)
        self._started = 0.0

    @property
    def address(self) -> str:
        return self._server.url.removeprefix("http://")

    def start(self) -> SimulatedFleet:
        self._started = time.monotonic()
        for node in self.nodes:  # every node has data before the first scrape
            node.refresh()
        self._server.start()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.refresh_interval + 10)
        self._server.shutdown()
        self._close_nodes(self.nodes)

    def __enter__(self) -> SimulatedFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def targets(self, cluster: str) -> list[dict]:
        """Prometheus file_sd entries for a cluster's nodes: each node its own target, with its path, an
        `instance` as a real node's exporter would have, and its `cluster`, as an inventory's entries carry it
        (deploy/baremetal.py's example_targets): external_labels label only what leaves a Prometheus, so a
        Prometheus that serves dashboards or rules from its own series needs the label on the series."""
        return [{"targets": [self.address],
                 "labels": {"__metrics_path__": node.path, "instance": f"{node.hostname}:{EXPORTER_PORT}",
                            "cluster": cluster}}
                for node in self.nodes if node.cluster == cluster]

    def write_targets(self, directory: Path) -> list[Path]:
        """One file_sd JSON file per cluster, <directory>/<cluster>.json."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for cluster in dict.fromkeys(node.cluster for node in self.nodes):
            path = directory / f"{cluster}.json"
            path.write_text(json.dumps(self.targets(cluster), indent=1))
            paths.append(path)
        return paths

    @staticmethod
    def _close_nodes(nodes: Sequence[SimulatedNode]) -> None:
        """All at once: each node's XID thread may take XID_WAIT_MS to notice it is stopped."""
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            list(pool.map(SimulatedNode.close, nodes))

    def _run(self) -> None:
        """Refreshes the nodes in turn, spread evenly over the interval, and flaps links when due."""
        position = 0
        pause = self.refresh_interval / max(1, len(self.nodes))
        next_run = time.monotonic()
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            self._flap_due()
            self.nodes[position].refresh()
            position = (position + 1) % len(self.nodes)
            next_run = max(next_run + pause, time.monotonic() - self.refresh_interval)

    def _flap_due(self) -> None:
        elapsed = time.monotonic() - self._started
        while self._flaps and self._flaps[0].after <= elapsed:
            fault = self._flaps.pop(0)
            node = next(n for n in self.nodes if (n.cluster, n.hostname) == (fault.cluster, fault.hostname))
            node.fabric.flap(fault.target, fault.seconds)
