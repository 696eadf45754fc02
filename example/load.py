"""Steady traffic for the example model server, whose inputs shift after a while: flowers
drawn around each iris species' means, then, past `shift_after`, with longer and wider petals.

The load knows each flower's true species, so it can play the labelling pipeline too: `label_delay` seconds
after an answer, the species of each answered request goes to the drift service's labels endpoint."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque

# Per species (setosa, versicolor, virginica): means of sepal length, sepal width, petal length
# and petal width in cm, from the iris data set.
SPECIES_MEANS = ((5.01, 3.43, 1.46, 0.25), (5.94, 2.77, 4.26, 1.33), (6.59, 2.97, 5.55, 2.03))
SPREAD = 0.3
SPECIES = ("setosa", "versicolor", "virginica")
SHIFT = (0.0, 0.0, 1.2, 0.6)  # the petals grow: the model sees fewer setosa, and its confidence moves


def instances(rng: random.Random, count: int, shifted: bool) -> list[list[float]]:
    return flowers(rng, count, shifted)[0]


def flowers(rng: random.Random, count: int, shifted: bool) -> tuple[list[list[float]], list[str]]:
    """count flowers' measurements, and the species each was drawn from."""
    rows, species = [], []
    for _ in range(count):
        index = rng.randrange(len(SPECIES_MEANS))
        species.append(SPECIES[index])
        rows.append([round(max(0.1, rng.gauss(mean, SPREAD) + (shift if shifted else 0.0)), 2)
                     for mean, shift in zip(SPECIES_MEANS[index], SHIFT, strict=True)])
    return rows, species


class Load:
    """Posts about `rate` requests a second of `batch` instances each, from `concurrency` threads,
    so that slow answers lower the rate only once every thread waits on one."""

    def __init__(self, url: str, rate: float = 4.0, batch: int = 16, shift_after: float = 60.0,
                 concurrency: int = 8, seed: int = 0, labels_url: str | None = None, label_delay: float = 10.0):
        self.url = url
        self.rate, self.batch, self.shift_after = rate, batch, shift_after
        self.sent = self.failed = 0
        self.labels_sent = self.labels_failed = 0
        self._labels_url, self._label_delay = labels_url, label_delay
        self._pending: deque[tuple[float, list[dict[str, str]]]] = deque()  # (when due, labels)
        self._seed = seed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index, concurrency), name=f"load-{index}",
                                          daemon=True) for index in range(concurrency)]
        if labels_url is not None:
            self._threads.append(threading.Thread(target=self._label, name="load-labels", daemon=True))
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
            rows, species = flowers(rng, self.batch, self.shifted)
            body = json.dumps({"instances": rows}).encode()
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read())
                ok = True
            except (urllib.error.URLError, OSError, ValueError):
                ok = False
            with self._lock:
                if ok:
                    self.sent += 1
                    if self._labels_url is not None:
                        labels = [{"request_id": prediction["request_id"], "actual": truth}
                                  for prediction, truth in zip(answer["predictions"], species, strict=True)]
                        self._pending.append((time.monotonic() + self._label_delay, labels))
                else:
                    self.failed += 1
            self._stop.wait(max(0.0, interval - (time.monotonic() - began)))

    def _label(self) -> None:
        """Posts the labels that are due, a batch a second, each with an Idempotency-Key so a retry counts once."""
        assert self._labels_url is not None
        batch = 0
        while not self._stop.wait(1.0):
            due: list[dict[str, str]] = []
            with self._lock:
                while self._pending and self._pending[0][0] <= time.monotonic():
                    due.extend(self._pending.popleft()[1])
            if not due:
                continue
            batch += 1
            request = urllib.request.Request(self._labels_url, data=json.dumps(due).encode(), headers={
                "Content-Type": "application/json", "Idempotency-Key": f"labels-{self._seed}-{batch}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                self.labels_sent += len(due)
            except (urllib.error.URLError, OSError):
                self.labels_failed += len(due)
