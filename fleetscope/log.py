"""Structured logging: logfmt for people, one JSON object a line for machines."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class UserError(Exception):
    """Something the user can fix (a bad flag, an unreadable file); said plainly, no traceback."""


# How much of a value a client sent an error message may quote: enough to recognise it, never the whole of it.
QUOTED_CHARACTERS = 200


def quoted(value: object, limit: int = QUOTED_CHARACTERS) -> str:
    """repr() of a value a client sent, cut to `limit` characters with the length said, for error messages."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


# The level names of Prometheus' own logs (go-kit, then slog): warn, not warning.
_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
                logging.CRITICAL: "error"}


def get(name: str) -> logging.Logger:
    return logging.getLogger(name)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": _LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\n\t'):
        return text
    return json.dumps(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log.level", dest="log_level", default="info",
                        choices=["debug", "info", "warn", "error"],
                        help="only log messages with this severity or above")
    parser.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"],
                        help="output format of log messages")


def configure(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
