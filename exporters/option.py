"""What a collector declares to the exporter, and the helpers its flags and builder share.

Each collector's package has an `option.py` whose `OPTION` is a CollectorOption: its name (the
--collector.<name> flag and its package's folder), its default, its --collector.<name>.* flags, and the
builder that makes its sources. exporters/collectors.py lists those modules. An option module imports
nothing heavy at module level: the collector classes and pynvml are imported inside its builder, so that
`fleetscope exporter --help` and start-up load only what they use.

A builder reads the host, or what args.stand_in puts in its place: `fleetscope exporter --simulate`
(simulation/node.py) gives a simulated node's NVML, sysfs tree and NCCL job there. The exporter never imports the
simulation."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fleetscope import durations
from fleetscope.exporters.registry import Source
from fleetscope.exporters.scheduling import OnScrape, Polled


@dataclass(frozen=True)
class CollectorOption:
    name: str
    help: str
    enabled_by_default: bool
    add_flags: Callable[[argparse._ArgumentGroup], None]
    build: Callable[[argparse.Namespace], Sequence[Source]]


class WrittenFiles(Protocol):
    """Files something writes under `root` where a collector reads them, moved on before each read."""

    root: Path

    def advance(self) -> None: ...

    def close(self) -> None: ...


class WrittenJob(WrittenFiles, Protocol):
    """A job's NCCL Inspector files under `root`, and its NCCL_DEBUG log."""

    debug_log: Path


@dataclass(frozen=True)
class StandIn:
    """What a simulation puts in place of the host's parts, on args.stand_in (None: the host). Each part is made
    when the builder of an enabled collector asks for it, and closed with that collector."""

    nvml: Callable[[], Any]  # pynvml's surface
    fabric: Callable[[], WrittenFiles]  # a sysfs tree of InfiniBand ports
    nccl: Callable[[], WrittenJob]
    kernel_log: Callable[[], str] | None = None  # kernel log lines (`fleetscope check` reads XIDs there)


def scheduled(collector, interval: float, longest_collection: float = 10.0) -> Source:
    """The collector read in the background every `interval` seconds, or at every scrape for 0.

    Polled is the default for every collector: a scrape then renders only what changed since the
    last poll (see exporters/server.py), so the page costs less than a bare prometheus_client page
    of the same series, and a slow file system or driver never delays it. A result is served
    while younger than three intervals, and never expires before one collection of
    `longest_collection` seconds could finish."""
    if interval == 0:
        return OnScrape(collector)
    polled = Polled(collector, interval, max_age=max(3 * interval, interval + longest_collection))
    polled.start(wait=False)  # the exporter listens at once; /-/ready waits for the first collection
    return polled


# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
POLL_INTERVAL = durations.bounded_duration("100ms", "1h", zero="reads at every scrape")


def poll_flag(group: argparse._ArgumentGroup, collector: str, default: str, reads: str) -> None:
    """--collector.<collector>.poll-interval, which every collector has."""
    group.add_argument(f"--collector.{collector}.poll-interval", dest=f"{collector}_poll_interval",
                       type=POLL_INTERVAL, default=durations.parse(default), metavar="DURATION",
                       help=f"read {reads} in the background this often and serve the latest reading; set it to "
                            f"your scrape interval ({POLL_INTERVAL.low} to {POLL_INTERVAL.high}). 0s reads at every "
                            "scrape instead")


class Closing:
    """A collector that also closes something it depends on."""

    def __init__(self, collector, resource):
        self.name = collector.name
        self._collector, self._resource = collector, resource

    def collect(self):
        return self._collector.collect()

    def close(self) -> None:
        self._collector.close()
        self._resource.close()
