"""Serving an ASGI app (the drift service, the example model server) with uvicorn, under the
connection limits of fleetscope.web.connections: uvicorn alone has no deadline for a request
head, and its keep-alive timer restarts on every byte a client trickles."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fleetscope.web.connections import ConnectionLimits, Waiting


def guarded_protocol(limits: ConnectionLimits) -> tuple[type[H11Protocol], Waiting]:
    """An h11 protocol class whose connections `Waiting` bounds, and that Waiting."""
    waiting: Waiting[H11Protocol] = Waiting(limits, close=lambda protocol: protocol.transport.close())

    class GuardedH11Protocol(H11Protocol):
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
