"""Request bodies read with a size limit, for the Starlette services."""

from __future__ import annotations

from starlette.requests import Request


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes `limit` bytes: an oversized body is never held whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
