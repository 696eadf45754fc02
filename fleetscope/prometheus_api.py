"""A small client of the Prometheus HTTP API, as Prometheus and VictoriaMetrics serve it: the dashboards'
preview, the local stack, the demo and the tests query through it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any


class QueryError(RuntimeError):
    pass


class QueryApi:
    """Prometheus' query API, as Prometheus and VictoriaMetrics both serve it at `url`."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    def api(self, path: str, **params: str) -> Any:
        return api(self.url, path, 10.0, **params)

    def query(self, expr: str) -> list[dict]:
        """Instant vector results as Prometheus returns them: [{"metric": {...}, "value": [t, "v"]}]."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise QueryError(f"{expr!r} returned a {data['resultType']}, not an instant vector")
        return data["result"]

    def wait_for(self, expr: str, condition: Callable[[list[dict]], bool] = bool, timeout: float = 30.0) -> list[dict]:
        """Polls `expr` until condition(result) holds; raises TimeoutError with the last result."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if condition(result):
                return result
            time.sleep(0.25)
        raise TimeoutError(f"{expr!r} did not satisfy the condition within {timeout:.0f}s; last result: {result}")


def api(base_url: str, path: str, timeout: float = 10.0, **params: str) -> Any:
    """The `data` of a Prometheus HTTP API answer, e.g. api(url, "query", query="up");
    QueryError with Prometheus' own message when it refuses."""
    url = f"{base_url.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            body = json.loads(text)
        except ValueError:  # VictoriaMetrics answers some refusals (too many series, ...) in plain text
            raise QueryError(f"{path} {params}: HTTP {error.code}: {text.strip()[:500]}") from None
    if body.get("status") != "success":
        raise QueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]
