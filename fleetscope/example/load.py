"""Steady traffic for the example model server, whose inputs shift after a while: flowers
drawn around each iris species' means, then, past `shift_after`, with longer and wider petals."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request

# Per species (setosa, versicolor, virginica): means of sepal length, sepal width, petal length
# and petal width in cm, from the iris data set.
SPECIES_MEANS = ((5.01, 3.43, 1.46, 0.25), (5.94, 2.77, 4.26, 1.33), (6.59, 2.97, 5.55, 2.03))
SPREAD = 0.3
SHIFT = (0.0, 0.0, 1.2, 0.6)  # the petals grow: the model sees fewer setosa, and its confidence moves


def instances(rng: random.Random, count: int, shifted: bool) -> list[list[float]]:
    rows = []
    for _ in range(count):
        means = rng.choice(SPECIES_MEANS)
        rows.append([round(max(0.1, rng.gauss(mean, SPREAD) + (shift if shifted else 0.0)), 2)
                     for mean, shift in zip(means, SHIFT, strict=True)])
    return rows


class Load:
    """Posts about `rate` requests a second of `batch` instances each, from `concurrency` threads,
    so that slow answers lower the rate only once every thread waits on one."""

    def __init__(self, url: str, rate: float = 4.0, batch: int = 16, shift_after: float = 60.0,
                 concurrency: int = 8, seed: int = 0):
        self.url = url
        self.rate, self.batch, self.shift_after = rate, batch, shift_after
        self.sent = self.failed = 0
        self._seed = seed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index, concurrency), name=f"load-{index}",
                                          daemon=True) for index in range(concurrency)]
        self._started = 0.0

    @property
    def shifted(self) -> bool:
        return self._started > 0 and time.monotonic() - self._started >= self.shift_after

    def start(self) -> Load:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)

    def _run(self, index: int, concurrency: int) -> None:
        rng = random.Random(self._seed * 1000 + index)
        interval = concurrency / self.rate
        self._stop.wait(interval * index / concurrency)  # spread the threads over one interval
        while not self._stop.is_set():
            began = time.monotonic()
            body = json.dumps({"instances": instances(rng, self.batch, self.shifted)}).encode()
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                ok = True
            except (urllib.error.URLError, OSError):
                ok = False
            with self._lock:
                if ok:
                    self.sent += 1
                else:
                    self.failed += 1
            self._stop.wait(max(0.0, interval - (time.monotonic() - began)))
