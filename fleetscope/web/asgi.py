"""Serving an ASGI app (the drift service, the example model server) with uvicorn, under the
connection limits of fleetscope.web.connections: uvicorn alone has no deadline for a request
head, and its keep-alive timer restarts on every byte a client trickles. A request whose body
framing is ambiguous (fleetscope.web.framing.framing_problem) is answered 400 and its connection
closed before the app sees it: h11 alone takes Transfer-Encoding over Content-Length where a
request has both, keeps the connection, and reads what follows as the next request."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import h11
import uvicorn
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import H11Protocol

from fleetscope.web.connections import ConnectionLimits, Waiting
from fleetscope.web.framing import framing_problem

_HEAD_END = re.compile(b"\n\r?\n")  # where h11 ends a request head (it takes bare LF line ends too)


def _head_problem(head: bytes) -> str | None:
    """framing_problem() of a request head (up to its blank line), read from the bytes as h11 will read
    them: h11's Request event has already merged repeated Content-Length fields."""
    request_line, *lines = [line.removesuffix(b"\r") for line in head.split(b"\n")]
    fields: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:  # obsolete line folding: h11 joins it to the field above
            fields[-1][1] += b" " + line.strip(b" \t")
        else:
            name, _, value = line.partition(b":")
            fields.append([name, value.strip(b" \t")])
    version = request_line.rpartition(b" ")[2]
    return framing_problem([(name.decode("latin-1"), value.decode("latin-1")) for name, value in fields],
                           version.decode("latin-1"))


class _FramingCheckedConnection(h11.Connection):
    """h11's server side, refusing a request head whose body framing is ambiguous before h11 parses it."""

    refusal: str | None = None
    _searched = 0  # how much of a pending head was searched for its end (a trickled head is searched once)

    def next_event(self) -> Any:
        if self.refusal is None and self.their_state is h11.IDLE:  # a request head comes next
            received = self.trailing_data[0]
            end = _HEAD_END.search(received, max(0, self._searched - 2))
            if end is None:
                self._searched = len(received)
            else:  # h11 takes this head now
                self._searched = 0
                self.refusal = _head_problem(received[:end.start()])
        if self.refusal is not None:
            raise h11.RemoteProtocolError(self.refusal)  # uvicorn answers 400 and closes the connection
        return super().next_event()


def guarded_protocol(limits: ConnectionLimits) -> tuple[type[H11Protocol], Waiting]:
    """An h11 protocol class whose connections `Waiting` bounds, and that Waiting."""
    waiting: Waiting[H11Protocol] = Waiting(limits, close=lambda protocol: protocol.transport.close())

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            max_head = self.config.h11_max_incomplete_event_size  # as uvicorn sizes its own
            self.conn = self._framing = _FramingCheckedConnection(
                h11.SERVER, DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if max_head is None else max_head)

        def send_400_response(self, msg: str) -> None:
            # uvicorn's answer to any request h11 cannot read, with Connection: close; this names the problem
            super().send_400_response(self._framing.refusal or msg)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not waiting.opened(self):
                transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            waiting.closed(self)
            super().connection_lost(exc)

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a complete request head arrived
                waiting.request_started(self)

        def on_response_complete(self) -> None:
            # before the base class, which may start a pipelined request at once
            if not self.transport.is_closing():
                waiting.response_sent(self)
            super().on_response_complete()

    return GuardedH11Protocol, waiting


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, waiting: Waiting) -> None:
        super().__init__(config)
        self._waiting = waiting

    async def on_tick(self, counter: int) -> bool:
        if counter % 5 == 0:  # uvicorn ticks every 0.1 s
            self._waiting.expire()
        return await super().on_tick(counter)


def serve(app, host: str, port: int, limits: ConnectionLimits, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> None:
    """Runs until SIGINT or SIGTERM, as uvicorn.run would."""
    protocol, waiting = guarded_protocol(limits)
    config = uvicorn.Config(app, host=host, port=port, http=protocol, log_level="warning", lifespan="off",
                            timeout_keep_alive=int(limits.idle_timeout) + 1, backlog=2048,
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    _Server(config, waiting).run()
