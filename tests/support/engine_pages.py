"""Pages in serving engines' own formats for the rules and dashboard tests: the text format
(0.0.4), each engine's names and labels, counters that grow with every scrape."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from fleetscope.web.server import Request, Response, WebServer

Page = Callable[[int], str]  # the page's text at the n-th scrape, from 1


def counter(name: str, series: dict[str, float], t: int) -> str:
    """A counter family whose series (label text: amount per scrape) grow with every scrape."""
    lines = "".join(f"{name}{{{labels}}} {t * amount}\n" if labels else f"{name} {t * amount}\n"
                    for labels, amount in series.items())
    return f"# TYPE {name} counter\n{lines}"


def gauge(name: str, labels: str, value: float) -> str:
    return f"# TYPE {name} gauge\n{name}{{{labels}}} {value}\n"


def histogram(name: str, labels: str, buckets: list[tuple[str, float]], total: float, t: int) -> str:
    """A histogram whose buckets (le, amount per scrape) and sum grow with every scrape."""
    sep = "," if labels else ""
    lines = "".join(f'{name}_bucket{{{labels}{sep}le="{le}"}} {t * n}\n' for le, n in buckets)
    count = buckets[-1][1]
    braces = f"{{{labels}}}" if labels else ""
    return (f"# TYPE {name} histogram\n{lines}{name}_count{braces} {t * count}\n"
            f"{name}_sum{braces} {t * total}\n")


class EnginePages:
    """Serves each page at /<name>/metrics on one loopback port until close()."""

    def __init__(self, pages: Mapping[str, Page]):
        self.pages = dict(pages)
        self.scrapes: dict[str, int] = {}
        self.server = WebServer("127.0.0.1:0", {self.path(name): self._serve(name) for name in self.pages})
        self.address = f"127.0.0.1:{self.server.port}"
        self.server.start()

    @staticmethod
    def path(name: str) -> str:
        return f"/{name}/metrics"

    def _serve(self, name: str) -> Callable[[Request], Response]:
        def serve(request: Request) -> Response:
            scrape = self.scrapes[name] = self.scrapes.get(name, 0) + 1
            return Response(body=self.pages[name](scrape).encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4"})
        return serve

    def close(self) -> None:
        self.server.shutdown()


# Recorded pages: an engine's real /metrics page after each phase of a lab run (tests/fixtures/engines/),
# replayed as a page whose counters grow every scrape by what the phase added, so that a rate over the
# replay is the phase's count per scrape and its histograms' quantiles are those of the phase's requests.

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")
_GROWING = ("counter", "histogram", "summary")
REPLAY_CLOCK = "replay_scrapes_total"


def _samples(text: str) -> tuple[dict[str, str], list[tuple[str, str, float]]]:
    """The page's families' types and its samples (family, name with labels, value); _created samples
    (timestamps, not counts) are left out."""
    types: dict[str, str] = {}
    samples = []
    family = ""
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            types[family] = kind.strip()
            continue
        match = _SAMPLE.match(line)
        if not match or line.startswith("#") or match.group(1).endswith("_created"):
            continue
        samples.append((family, match.group(1) + (match.group(2) or ""), float(match.group(3))))
    return types, samples


def replayed_phase(previous: str, current: str) -> Page:
    """The page of one phase: gauges as `current` has them, counters and histograms growing every scrape by
    what they grew from `previous` to `current`."""
    before = {series: value for _, series, value in _samples(previous)[1]}
    types, samples = _samples(current)

    def page(t: int) -> str:
        lines, typed = [], set()
        for family, series, value in samples:
            kind = types.get(family, "untyped")
            if family not in typed:
                lines.append(f"# TYPE {family} {kind}")
                typed.add(family)
            grows = kind in _GROWING and not (kind == "summary" and "quantile=" in series)
            amount = t * (value - before.get(series, 0.0)) if grows else value
            lines.append(f"{series} {amount!r}")
        # One more per scrape: the replay's clock, which a rate over the replay is divided by.
        lines.append(f"# TYPE {REPLAY_CLOCK} counter\n{REPLAY_CLOCK} {t}")
        return "\n".join(lines) + "\n"
    return page


def recorded_phases(folder: Path) -> list[tuple[str, str, dict]]:
    """(name, page text, ground truth) for each phase recorded in `folder`, in order."""
    phases = []
    for page in sorted(folder.glob("*.prom")):
        phases.append((page.stem, page.read_text(), json.loads(page.with_suffix(".json").read_text())))
    return phases
