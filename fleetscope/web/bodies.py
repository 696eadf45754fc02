"""Request bodies read with a size limit and a deadline, for the Starlette services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.requests import ClientDisconnect, Request


class BodyRefused(Exception):
    """The body was too large (413) or too slow (408); nothing of it is kept."""

    # The rest of the body may be left unread, so the connection cannot carry another request:
    # the answer closes it rather than leave a trickling client holding it.
    headers = {"Connection": "close"}

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


async def bounded_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body; BodyRefused as soon as it passes `limit` bytes (an oversized body is never
    held whole) or has not arrived within `timeout` seconds (a trickling client holds no slot).

    A body refused for its size is read to its end and dropped, up to twice `limit` in all, before the
    refusal is answered: a client that writes its whole body before reading (urllib, requests) then reads
    the 413 and its reason, not a connection reset. A body declared larger than that, or sent by a client
    that waits for the answer first (`Expect: 100-continue`), is refused at once, unread."""
    chunks: list[bytes] = []
    stream, declared, read = request.stream(), _declared(request), 0
    if declared <= limit:
        try:
            async with asyncio.timeout(timeout):
                read = await _take(stream, limit, chunks.append)
        except TimeoutError:
            raise BodyRefused(408, "body_timeout", f"the body did not arrive within {timeout:g} seconds") from None
    if max(declared, read) > limit:
        chunks.clear()
        waits = request.headers.get("expect", "").lower() == "100-continue"
        if not waits and declared <= 2 * limit:
            await _drop(stream, 2 * limit - read, timeout)
        raise BodyRefused(413, "too_large", f"the body is larger than {limit} bytes: send smaller batches")
    return b"".join(chunks)


async def discard_body(request: Request, limit: int, timeout: float) -> None:
    """Reads and drops the body (up to `limit` bytes, for at most `timeout` seconds), so that an
    answer given without it (429) reaches a client still sending, not a reset connection."""
    if _declared(request) <= limit:
        await _drop(request.stream(), limit, timeout)


def _declared(request: Request) -> int:
    """The body's Content-Length, or 0 where it declares none (chunked: counted as it arrives)."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


async def _take(stream: AsyncIterator[bytes], limit: int, take: Callable[[bytes], object]) -> int:
    """Passes the body's chunks to `take` while they stay within `limit` bytes; the bytes read: the whole
    body's, or, with the rest left unread, a count past `limit`."""
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            break
        take(chunk)
    return size


async def _drop(stream: AsyncIterator[bytes], limit: int, timeout: float) -> None:
    with contextlib.suppress(TimeoutError, ClientDisconnect):
        async with asyncio.timeout(timeout):
            await _take(stream, limit, lambda chunk: None)
