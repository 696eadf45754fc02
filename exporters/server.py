"""The exporter's HTTP routes: the metrics page, a landing page and health endpoints."""

from __future__ import annotations

import gzip
import html

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from fleetscope import __version__
from fleetscope.web.server import Request, Response, Route


def metrics_route(registry: CollectorRegistry) -> Route:
    """Text format or OpenMetrics by the Accept header; gzip when the scraper accepts it."""

    def serve(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(registry)
        headers = {"Content-Type": content_type}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(200, body, headers)

    return serve


def routes(registry: CollectorRegistry, telemetry_path: str, collectors: list[str]) -> dict[str, Route]:
    landing = _landing_page(telemetry_path, collectors)
    text = {"Content-Type": "text/plain; charset=utf-8"}
    return {
        telemetry_path: metrics_route(registry),
        "/": lambda request: Response(200, landing, {"Content-Type": "text/html; charset=utf-8"}),
        "/-/healthy": lambda request: Response(200, b"Healthy\n", text),
        "/-/ready": lambda request: Response(200, b"Ready\n", text),
    }


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
