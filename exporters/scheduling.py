"""When a collector runs: at each scrape, or in the background with the latest result cached.

Background polling is the default for the GPU collector (see benchmarks/scrape_latency.py):
NVML calls take real time per GPU (nvmlDeviceGetPcieThroughput alone samples for 20 ms), so
reading at scrape time makes scrapes slow; GPM needs a steady interval between samples; a
high-availability Prometheus pair would otherwise double the load on the driver. Polled at
the scrape interval, it costs the driver no more than reading at scrape time. A cached
result older than max_age is not served as if fresh: the collector is reported failed instead.
"""

from __future__ import annotations

import threading
import time

from fleetscope import log
from fleetscope.exporters.registry import Collection, Collector, collect_once

_logger = log.get("fleetscope.exporters")


class OnScrape:
    """Collects when scraped. Concurrent scrapes share one collection instead of queueing."""

    def __init__(self, collector: Collector):
        self.name = collector.name
        self._collector = collector
        self._lock = threading.Lock()

    def latest(self) -> Collection:
        with self._lock:
            return collect_once(self._collector)

    @property
    def ready(self) -> bool:
        return True  # it collects when scraped

    def close(self) -> None:
        self._collector.close()


class Cached:
    """The latest collection of a collector, refreshed by whoever calls refresh(): a Polled source's own
    thread, or one thread for many simulated nodes (fleet_simulation.py). Scrapes read the latest."""

    def __init__(self, collector: Collector, max_age: float):
        self.name = collector.name
        self._collector = collector
        self._max_age = max_age
        self._latest = Collection(collector.name, error="no collection has finished yet")
        self._lock = threading.Lock()
        self._first = threading.Event()

    @property
    def ready(self) -> bool:
        """Whether a first collection has finished (successfully or not)."""
        return self._first.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._first.wait(timeout)

    def latest(self) -> Collection:
        with self._lock:
            latest = self._latest
        age = time.time() - latest.finished_at
        if latest.error is None and age > self._max_age:
            return Collection(self.name, duration_seconds=latest.duration_seconds, finished_at=latest.finished_at,
                              error=f"last collection is {age:.1f}s old (poll stuck?); not serving stale values",
                              last_success_at=latest.last_success_at)
        return latest

    def refresh(self) -> None:
        collection = collect_once(self._collector)
        with self._lock:
            self._latest = collection
        self._first.set()

    def close(self) -> None:
        self._collector.close()


class Polled(Cached):
    """Collects every `interval` seconds in a thread; scrapes read the latest result."""

    def __init__(self, collector: Collector, interval: float, max_age: float | None = None):
        if interval <= 0:
            raise ValueError("poll interval must be positive")
        super().__init__(collector, max_age if max_age is not None else max(3 * interval, interval + 10))
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.name}", daemon=True)

    def start(self, wait: bool = True) -> None:
        """Starts polling. wait: collect once before returning, so the first scrape has data;
        otherwise the first collection runs in the background and `ready` tells when it is done
        (the exporter listens at once and answers /-/ready 503 until then)."""
        if wait:
            self.refresh()
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 10)
        super().close()

    def _run(self) -> None:
        if not self.ready:
            self.refresh()
        next_run = time.monotonic() + self._interval
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            self.refresh()
            # Skip ticks a slow collection overran instead of running back to back.
            next_run += self._interval * max(1, int((time.monotonic() - next_run) // self._interval) + 1)
