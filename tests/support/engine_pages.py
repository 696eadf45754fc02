"""Pages in serving engines' own formats for the rules and dashboard tests: the text format
(0.0.4), each engine's names and labels, counters that grow with every scrape."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
