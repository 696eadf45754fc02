"""Alertmanager's webhook payload (version 4), checked before anything acts on it.

https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fleetscope.log import quoted

MAX_ALERTS = 1000  # Alertmanager's max_alerts caps a notification; a body with more is not Alertmanager's
MAX_LABELS = 64
MAX_VALUE_CHARACTERS = 1024


class BadPayload(ValueError):
    """The body is not an Alertmanager webhook notification; the message says what is wrong (answered 400)."""


@dataclass(frozen=True)
class Alert:
    status: str  # "firing" or "resolved"
    labels: dict[str, str]
    fingerprint: str
    starts_at: str


@dataclass(frozen=True)
class Notification:
    receiver: str
    group_key: str
    alerts: tuple[Alert, ...]


def parse(body: bytes) -> Notification:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadPayload(f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadPayload("the body must be a JSON object (Alertmanager's webhook notification)")
    if document.get("version") != "4":
        raise BadPayload(f"version must be \"4\" (Alertmanager's webhook format), "
                         f"got {quoted(document.get('version'))}")
    alerts = document.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("alerts must be a list")
    if len(alerts) > MAX_ALERTS:
        raise BadPayload(f"alerts holds {len(alerts)} alerts, more than {MAX_ALERTS}: set max_alerts on the receiver")
    return Notification(receiver=_string(document.get("receiver", ""), "receiver"),
                        group_key=_string(document.get("groupKey", ""), "groupKey"),
                        alerts=tuple(_alert(alert, f"alerts[{index}]") for index, alert in enumerate(alerts)))


def _alert(value: Any, where: str) -> Alert:
    if not isinstance(value, dict):
        raise BadPayload(f"{where} must be an object")
    status = value.get("status")
    if status not in ("firing", "resolved"):
        raise BadPayload(f"{where}.status must be \"firing\" or \"resolved\", got {quoted(status)}")
    labels = value.get("labels")
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise BadPayload(f"{where}.labels must be an object of at most {MAX_LABELS} labels")
    checked = {_string(name, f"{where}.labels"): _string(text, f"{where}.labels.{name}")
               for name, text in labels.items()}
    if not checked.get("alertname"):
        raise BadPayload(f"{where}.labels has no alertname")
    return Alert(status=status, labels=checked,
                 fingerprint=_string(value.get("fingerprint", ""), f"{where}.fingerprint"),
                 starts_at=_string(value.get("startsAt", ""), f"{where}.startsAt"))


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadPayload(f"{where} must be a string, got {quoted(value)}")
    if len(value) > MAX_VALUE_CHARACTERS:
        raise BadPayload(f"{where} is longer than {MAX_VALUE_CHARACTERS} characters")
    return value
