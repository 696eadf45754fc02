"""Tracking requests: a context manager, a decorator, and an explicit API for streaming servers.

    metrics = InferenceMetrics(engine="my-server")
    with metrics.track(model="llama-3-8b", operation="chat") as request:
        request.dequeued()                  # the model starts on it: queue time ends
        for token in generate(...):
            request.output_token()          # the first call marks time to first token
        request.tokens(input=prompt_tokens)

On leaving the block the request counts as a success, as cancelled (asyncio.CancelledError,
GeneratorExit) or as an error named after the exception's class. Streaming servers that
outlive a block call `start()` and then `finish()`, `fail()`, `reject()` or `cancel()` themselves.
Outcomes mean what they mean in fleetscope's inference schema (fleetscope.alerts.engines):
an error is the server's failure, a rejection a refusal for overload, a client error an invalid
request, a cancellation the client's. Time to first token and time per output token are
recorded for successful requests only, as OpenTelemetry's GenAI conventions ask.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import numbers
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from opentelemetry import trace

from fleetscope.exporters.inference.series import OTHER, Series, SeriesSnapshot

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_CANCELLATIONS = (asyncio.CancelledError, GeneratorExit)
NAN = float("nan")
MAX_LABEL_LENGTH = 128


class InferenceMetrics:
    """The inference metrics of one process: one series per (model, operation), bounded in number."""

    def __init__(self, engine: str = "python", *, provider: str | None = None, max_series: int = 256,
                 exemplars: bool = True, gpus: Iterable[str] = (), hostname: str | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        """`engine` names the serving engine (the `engine` label); `provider` is OpenTelemetry's
        gen_ai.provider.name on OTLP output, the engine's name unless given. `gpus` are the UUIDs
        of the GPUs the process uses (gpus.visible_gpus() reads them from the environment) on
        `hostname` ($NODE_NAME, else the host name, as the GPU exporter labels its series)."""
        if max_series < 1:
            raise ValueError(f"max_series must be at least 1, not {max_series}")
        self.engine = _label(engine, "engine")
        self.provider = self.engine if provider is None else _label(provider, "provider")
        if isinstance(gpus, str):
            raise TypeError("gpus must be a sequence of GPU UUIDs, not one string")
        self.gpus = tuple(dict.fromkeys(_label(uuid, "GPU UUID") for uuid in gpus))
        self.hostname = _label(hostname if hostname is not None else
                               os.environ.get("NODE_NAME") or socket.gethostname(), "hostname")
        self.max_series = max_series
        self.exemplars = exemplars
        self.clock = clock
        self.created = time.time()
        self._series: dict[tuple[str, str], Series] = {}
        self._lock = threading.Lock()
        self._overflow_warned = False

    def track(self, model: str, operation: str = "predict") -> Request:
        """A request that starts now; use it as a context manager or end it explicitly."""
        return Request(self, self._series_for(model, operation))

    start = track

    def declare(self, model: str, operation: str = "predict") -> None:
        """Serves a model's series, all zero, before its first request, so that the first request
        is an increase that rate() sees (a counter's first sample is its baseline)."""
        self._series_for(model, operation)

    def tracked(self, model: str, operation: str = "predict") -> Callable[[F], F]:
        """Decorates a function or coroutine function so that each call is one tracked request."""
        def decorate(function: F) -> F:
            if inspect.iscoroutinefunction(function):
                @functools.wraps(function)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    with self.track(model, operation):
                        return await function(*args, **kwargs)
                return run_async  # type: ignore[return-value]

            @functools.wraps(function)
            def run(*args: Any, **kwargs: Any) -> Any:
                with self.track(model, operation):
                    return function(*args, **kwargs)
            return run  # type: ignore[return-value]
        return decorate

    def snapshot(self) -> list[SeriesSnapshot]:
        return [series.snapshot() for series in list(self._series.values())]

    def _series_for(self, model: str, operation: str) -> Series:
        series = self._series.get((model, operation))
        if series is not None:
            return series
        key = (_label(model, "model"), _label(operation, "operation"))
        with self._lock:
            series = self._series.get(key)
            if series is None:
                if len(self._series) >= self.max_series:
                    key = (OTHER, OTHER)
                    series = self._series.get(key)
                    if not self._overflow_warned:
                        self._overflow_warned = True
                        log.warning("inference series limit reached; further models count as %r", OTHER,
                                    extra={"max_series": self.max_series})
                if series is None:
                    series = self._series[key] = Series(*key)
        return series


def _label(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value[:MAX_LABEL_LENGTH]


class Request:
    """One request, from arrival to its end. Methods other than the end ones may be called in any order."""

    __slots__ = ("_metrics", "_series", "_start", "_dequeued", "_first_token", "_input", "_output", "_ended")

    def __init__(self, metrics: InferenceMetrics, series: Series):
        self._metrics = metrics
        self._series = series
        self._dequeued: float | None = None
        self._first_token: float | None = None
        self._input: int | None = None
        self._output: int | None = None
        self._ended = False
        series.started()
        self._start = metrics.clock()

    def dequeued(self) -> None:
        """The model started working on the request: its queue time ends here."""
        if self._dequeued is None:
            self._dequeued = self._metrics.clock()

    def first_token(self) -> None:
        if self._first_token is None:
            self._first_token = self._metrics.clock()

    def output_token(self, count: int = 1) -> None:
        """Output tokens produced (streamed); the first call marks the time to first token."""
        if type(count) is not int or count < 0:
            count = _count(count, "output")
        if self._first_token is None:
            self._first_token = self._metrics.clock()
        self._output = (self._output or 0) + count

    def tokens(self, input: int | None = None, output: int | None = None) -> None:  # noqa: A002
        """The request's token counts, as the tokenizer reported them (replacing streamed counts)."""
        if input is not None:
            self._input = input if type(input) is int and input >= 0 else _count(input, "input")
        if output is not None:
            self._output = output if type(output) is int and output >= 0 else _count(output, "output")

    def finish(self) -> None:
        self._end("success", "")

    def fail(self, error: BaseException | str, *, client: bool = False) -> None:
        """An error; `client` when the caller was at fault (a bad request), which error ratios leave out."""
        error_type = error if isinstance(error, str) else type(error).__name__
        self._end("client_error" if client else "error", error_type[:MAX_LABEL_LENGTH] or "unknown")

    def reject(self, reason: str = "overloaded") -> None:
        """Refused for overload before any work (a full queue, a concurrency limit: HTTP 429 or 503)."""
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a string, not {type(reason).__name__}")
        self._end("rejected", reason[:MAX_LABEL_LENGTH] or "overloaded")

    def cancel(self) -> None:
        self._end("cancelled", "")

    def __enter__(self) -> Request:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._ended:
            return
        if exc_type is None:
            self._end("success", "")
        elif issubclass(exc_type, _CANCELLATIONS):
            self._end("cancelled", "")
        else:
            self._end("error", exc_type.__name__)

    def _end(self, outcome: str, error_type: str) -> None:
        if self._ended:
            return
        self._ended = True
        end = self._metrics.clock()
        start, first, output = self._start, self._first_token, self._output
        ttft = tpot = NAN
        if first is not None and outcome == "success":
            ttft = first - start
            if output is not None and output > 1:
                tpot = (end - first) / (output - 1)
        exemplar = None
        if self._metrics.exemplars:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                exemplar = (context.trace_id, context.span_id, time.time())
        self._series.finished((outcome, error_type, end - start,
                               NAN if self._dequeued is None else self._dequeued - start, ttft, tpot,
                               NAN if self._input is None else self._input, NAN if output is None else output,
                               exemplar))


def _count(value: object, name: str) -> int:
    """The slow path of token counts: integers of other types (numpy's) are taken, anything else refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} tokens must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} tokens must not be negative, not {value}")
    return int(value)
