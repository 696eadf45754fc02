"""The request framing both HTTP stacks refuse: a head that leaves the length of its body ambiguous."""

from __future__ import annotations

from collections.abc import Iterable


def framing_problem(fields: Iterable[tuple[str, str]], http_version: str = "HTTP/1.1") -> str | None:
    """Why a request head leaves the length of its body ambiguous (RFC 9112 section 6), or None.

    Request smuggling relies on a proxy and the server reading such a request's length differently,
    so that what one takes for the rest of a body the other takes for a request of its own: the
    server answers such a request 400 and closes the connection, reading nothing behind it.
    `fields`: every header field as received, repeated ones included, in any letter case."""
    lengths: list[str] = []
    codings: list[str] = []  # any Transfer-Encoding field, even an empty one, adds at least one
    for name, value in fields:
        name = name.strip().lower()
        if name == "content-length":
            lengths += [length.strip(" \t") for length in value.split(",")]
        elif name == "transfer-encoding":
            codings += [coding.strip(" \t").lower() for coding in value.split(",")]
    if codings and lengths:
        return "the request has both Content-Length and Transfer-Encoding: send one of them"
    if len(lengths) > 1:
        return "the request has more than one Content-Length: send one"
    if lengths and not (lengths[0].isascii() and lengths[0].isdigit()):
        return "the request's Content-Length is not a number of bytes"
    if codings and http_version == "HTTP/1.0":
        return "an HTTP/1.0 request cannot have a Transfer-Encoding: send Content-Length"
    if codings and codings != ["chunked"]:
        return "the request's Transfer-Encoding is not supported: send chunked alone, or Content-Length"
    return None
