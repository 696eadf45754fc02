"""The drift service's HTTP API (Starlette), over a DriftService.

Writes (PUT reference, POST outputs, profiles and labels, POST evaluate) need a write token and reads a read
token when auth is configured; a request refused for auth, size or load writes nothing. Each group of routes
declares its own (http_ingest, http_evaluations, http_status); http_api holds what they share.
"""

from __future__ import annotations

from starlette.applications import Starlette

from fleetscope.drift.service import http_evaluations, http_ingest, http_status
from fleetscope.drift.service.http_api import Api
from fleetscope.drift.service.service import DriftService
from fleetscope.web.headers import SecurityHeaders


def create_app(service: DriftService, body_timeout: float = 30.0) -> SecurityHeaders:
    """body_timeout: seconds a client has to send a request's whole body."""
    api = Api(service, body_timeout)
    return SecurityHeaders(Starlette(routes=[*http_ingest.routes(api), *http_evaluations.routes(api),
                                             *http_status.routes(api)]))
