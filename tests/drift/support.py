"""Shared helpers for the drift service tests: HTTP calls and output rows."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request

import numpy as np


def call(address: str, method: str, path: str, body: bytes | dict | list | None = None,
         content_type: str = "application/json", token: str | None = None, scheme: str = "http",
         context: ssl.SSLContext | None = None) -> tuple[int, dict | str, dict]:
    """(status, parsed JSON or text, headers) of one request; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{scheme}://{address}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            status, payload, response_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, payload, response_headers = error.code, error.read(), dict(error.headers)
    text = payload.decode()
    try:
        return status, json.loads(text), response_headers
    except json.JSONDecodeError:
        return status, text, response_headers


def declared_over(address: str, path: str, length: int, content_type: str = "application/json") -> tuple[int, str, str]:
    """(status, reason, error) of a POST whose Content-Length is over limits.max_body_bytes, from a client that
    waits for the answer before sending the body (`Expect: 100-continue`): the service refuses it from the
    header alone, reading nothing."""
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(length))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()
        response = connection.getresponse()
        answer = json.loads(response.read())
        return response.status, answer.get("reason", ""), answer.get("error", "")
    finally:
        connection.close()


def outputs(rows: int, seed: int, shift: float = 0.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(shift, 1, rows)
    labels = rng.choice(["setosa", "versicolor", "virginica"], rows, p=[0.5 - shift / 5, 0.3, 0.2 + shift / 5])
    regions = rng.choice(["eu", "us"], rows)
    return [{"score": float(score), "label": str(label), "region": str(region)}
            for score, label, region in zip(scores, labels, regions, strict=True)]


MODEL_CONFIG = """
evaluation_interval: 1h
models:
  iris:
    columns: {score: numerical, label: categorical, region: categorical}
    segments: [region]
    window: {type: sliding, rows: 5000}
"""

PROFILES_MODEL = """
evaluation_interval: 1h
models:
  chat:
    mode: profiles
    columns: {score: numerical, label: categorical, region: categorical}
    segments: [region]
    window: {type: sliding, duration: 1h}
"""
