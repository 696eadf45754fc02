"""The exporter's HTTP routes: the metrics page, a landing page and health endpoints."""

from __future__ import annotations

import gzip
import html
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from fleetscope import __version__
from fleetscope.exporters.registry import Collection, ExporterRegistry
from fleetscope.exporters.verbatim import VerbatimFamily
from fleetscope.web.server import Request, Response, Route

_OPENMETRICS_EOF = b"# EOF\n"


class PageRenderer:
    """Renders the metrics page, reusing each collector's rendered part until its collection
    changes. A polled collector changes once per poll, so most scrapes render only the
    exporter's own few series instead of every GPU series again."""

    def __init__(self, registry: ExporterRegistry):
        self._registry = registry
        self._cache: dict[tuple[str, str], tuple[Collection, bytes]] = {}
        self._lock = threading.Lock()

    def render(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        own, collections = self._registry.snapshot()
        parts = [encode(own, encoder)]
        for collection in collections:
            if not collection.error:
                parts.append(self._part(collection, encoder, content_type))
        body = b"".join(part.removesuffix(_OPENMETRICS_EOF) for part in parts)
        if content_type.startswith("application/openmetrics-text"):
            body += _OPENMETRICS_EOF
        return body, content_type

    def _part(self, collection: Collection, encoder: Callable, content_type: str) -> bytes:
        key = (collection.collector, content_type)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] is collection:
                return cached[1]
        part = encode(collection.metrics, encoder)
        with self._lock:
            self._cache[key] = (collection, part)
        return part


class _Fixed:
    def __init__(self, metrics: list[Metric]):
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


def encode(metrics: list[Metric], encoder: Callable = generate_latest) -> bytes:
    """Metrics in an exposition format (text 0.0.4 unless another encoder is given)."""
    verbatim = [metric for metric in metrics if isinstance(metric, VerbatimFamily)]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([metric for metric in metrics if not isinstance(metric, VerbatimFamily)]))
    body = encoder(registry)
    if not verbatim:
        return body
    openmetrics = body.endswith(_OPENMETRICS_EOF)
    foreign = b"".join(family.expose(openmetrics) for family in verbatim)
    return body.removesuffix(_OPENMETRICS_EOF) + foreign + (_OPENMETRICS_EOF if openmetrics else b"")


def metrics_route(registry: ExporterRegistry) -> Route:
    """Text format or OpenMetrics by the Accept header; gzip when the scraper accepts it."""
    renderer = PageRenderer(registry)

    def serve(request: Request) -> Response:
        body, content_type = renderer.render(request.headers.get("Accept", ""))
        headers = {"Content-Type": content_type}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(200, body, headers)

    return serve


def routes(registry: ExporterRegistry, telemetry_path: str) -> dict[str, Route]:
    landing = _landing_page(telemetry_path, [source.name for source in registry.sources])
    text = {"Content-Type": "text/plain; charset=utf-8"}
    return {
        telemetry_path: metrics_route(registry),
        "/": lambda request: Response(200, landing, {"Content-Type": "text/html; charset=utf-8"}),
        "/-/healthy": lambda request: Response(200, b"Healthy\n", text),
        "/-/ready": lambda request: _ready(registry),
    }


def _ready(registry: ExporterRegistry) -> Response:
    waiting = registry.not_ready()
    if waiting:
        return Response(503, f"Not ready: waiting for the first collection of {', '.join(waiting)}\n".encode(),
                        {"Content-Type": "text/plain; charset=utf-8"})
    return Response(200, b"Ready\n", {"Content-Type": "text/plain; charset=utf-8"})


def _landing_page(telemetry_path: str, collectors: list[str]) -> bytes:
    path = html.escape(telemetry_path)
    enabled = ", ".join(collectors) or "none"
    return f"""<!doctype html>
<html><head><title>fleetscope exporter</title></head>
<body><h1>fleetscope exporter</h1>
<p>Version {html.escape(__version__)}. Collectors enabled: {html.escape(enabled)}.</p>
<ul><li><a href="{path}">Metrics</a></li><li><a href="/-/healthy">Health</a></li></ul>
</body></html>
""".encode()
