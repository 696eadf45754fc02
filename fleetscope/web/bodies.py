"""Request bodies read with a size limit and a deadline, for the Starlette services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.requests import Request


class BodyRefused(Exception):
    """The body was too large (413) or too slow (408); nothing of it is kept."""

    # The rest of the body is never read, so the connection cannot carry another request:
    # the answer closes it rather than leave a trickling client holding it.
    headers = {"Connection": "close"}

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


async def bounded_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body; BodyRefused as soon as it passes `limit` bytes (an oversized body is never
    held whole) or has not arrived within `timeout` seconds (a trickling client holds no slot)."""
    chunks: list[bytes] = []
    await _receive(request, limit, timeout, chunks.append)
    return b"".join(chunks)


async def discard_body(request: Request, limit: int, timeout: float) -> None:
    """Reads and drops the body (up to `limit` bytes, for at most `timeout` seconds), so that an
    answer given without it (429) reaches a client still sending, not a reset connection."""
    with contextlib.suppress(BodyRefused):
        await _receive(request, limit, timeout, lambda chunk: None)


async def _receive(request: Request, limit: int, timeout: float, take: Callable[[bytes], object]) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                take(chunk)
    except TimeoutError:
        raise BodyRefused(408, "body_timeout", f"the body did not arrive within {timeout:g} seconds") from None


def _too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, "too_large", f"the body is larger than {limit} bytes: send smaller batches")
