"""Requests whose body length a proxy and the server may read differently (RFC 9112 section 6),
sent over raw sockets to every HTTP stack as a real process: the drift service and the example
model server (uvicorn and h11, fleetscope.web.asgi) and the exporter (http.server,
fleetscope.web.server). Each is answered 400 naming the problem, with Connection: close, and the
connection is closed: a request smuggled behind it is never read or answered, and the application
never sees it. Honest keep-alive and chunked requests still share a connection."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fleetscope.localstack.process import fleetscope_server
from tests.drift.support import MODEL_CONFIG
from tests.support.exposition import values

TIMEOUT = 10.0  # for every connect, read and write: a server that keeps a refused connection open fails the test


@dataclass(frozen=True)
class Stack:
    name: str
    method: str
    path: str  # where the app would take the request: it must never see a refused one
    body: bytes
    counter: str | None  # a metric of what the app took, unchanged by a refused request
    metrics: str = "/metrics"
    address: str = ""


STACKS = {
    "drift": Stack("drift", "POST", "/v1/models/iris/outputs",
                   json.dumps([{"score": 0.5, "label": "setosa", "region": "eu"}]).encode(),
                   "fleetscope_drift_rows_accepted_total"),
    "model-server": Stack("model-server", "POST", "/v1/models/iris/predict",
                          json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
                          "fleetscope_inference_requests_total"),
    # The exporter takes no bodies: a GET carrying one is the way to it.
    "exporter": Stack("exporter", "GET", "/metrics", b"x" * 16, None),
}
COMMANDS = {"drift": ["drift", "serve"], "model-server": ["model-server"], "exporter": ["exporter", "--simulate"]}


@pytest.fixture(scope="module", params=list(STACKS))
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    """Each server once for the module: the tests keep to their own connections."""
    directory = tmp_path_factory.mktemp(request.param)
    command = COMMANDS[request.param]
    if request.param == "drift":
        (directory / "drift.yaml").write_text(MODEL_CONFIG)
        command = [*command, f"--config.file={directory / 'drift.yaml'}",
                   f"--storage.path={directory / 'store.sqlite'}"]
    process, address = fleetscope_server(command, directory)
    process.start(timeout=60)
    try:
        yield dataclasses.replace(STACKS[request.param], address=address)
    finally:
        process.stop()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@contextlib.contextmanager
def connection(address: str) -> Iterator[tuple[socket.socket, Reader]]:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        yield sock, Reader(sock)


class Reader:
    """HTTP/1.1 responses read one at a time from a socket; a reset counts as the end of the stream
    (a server that closes with unread bytes behind a refused request may reset rather than end it)."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb")

    def next(self) -> Answer | None:
        """The next response, or None where the server has closed the connection instead."""
        status_line = self._readline()
        if not status_line:
            return None
        version, status, _ = status_line.decode("latin-1").split(" ", 2)
        assert version.startswith("HTTP/1."), status_line
        headers = {}
        while line := self._readline().rstrip(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self._read(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":  # the model server's metrics
            body = b""
            while size := int(self._readline().split(b";")[0], 16):
                body += self._read(size + 2)[:-2]
            self._readline()
        else:  # uvicorn's own 400, read to the connection's end
            assert headers.get("connection", "").lower() == "close", headers
            body = self._read(None)
        return Answer(int(status), headers, body)

    def _readline(self) -> bytes:
        try:
            return self._file.readline(65536)
        except ConnectionResetError:
            return b""

    def _read(self, size: int | None) -> bytes:
        with contextlib.suppress(ConnectionResetError):
            return self._file.read(size) if size is not None else self._file.read()
        return b""


def head(stack: Stack, *fields: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{stack.method} {stack.path} {version}", "Host: 127.0.0.1",
             "Content-Type: application/json", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def behind(stack: Stack) -> bytes:
    """A request pipelined after another, which must be answered only where the first one's framing is sound."""
    return f"GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Smuggled: {stack.name}\r\n\r\n".encode()


def counted(stack: Stack) -> float:
    if stack.counter is None:
        return 0.0
    with connection(stack.address) as (sock, reader):
        sock.sendall(f"GET {stack.metrics} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        answer = reader.next()
    assert answer is not None and answer.status == 200
    return sum(values(answer.body.decode(), stack.counter))


def refused(stack: Stack, data: bytes) -> Answer:
    """The one answer to `data` on a fresh connection, which the server then closes."""
    taken = counted(stack)
    with connection(stack.address) as (sock, reader):
        sock.sendall(data)
        answer = reader.next()
        assert answer is not None
        assert reader.next() is None, "a request behind a refused one was answered"
    assert answer.status == 400, answer
    assert answer.headers.get("connection", "").lower() == "close", answer.headers
    assert len(answer.body) < 200 and b"\r\n" not in answer.body, answer.body  # a reason, no response behind it
    assert counted(stack) == taken, "the app took a refused request"
    return answer


def test_content_length_with_transfer_encoding_is_refused_and_what_follows_is_never_read(stack):
    body = chunked(stack.body)
    answer = refused(stack, head(stack, f"Content-Length: {len(body)}", "Transfer-Encoding: chunked")
                     + body + behind(stack))
    assert b"both Content-Length and Transfer-Encoding" in answer.body


def test_content_length_declared_with_transfer_encoding_first_or_in_any_case_is_refused(stack):
    # A short Content-Length: a proxy framing by it forwards the chunks' rest as the start of another request.
    body = chunked(stack.body)
    answer = refused(stack, head(stack, "transfer-encoding: Chunked", "content-length: 3") + body + behind(stack))
    assert b"both Content-Length and Transfer-Encoding" in answer.body


@pytest.mark.parametrize("fields", [
    ["Content-Length: {length}", "Content-Length: {longer}"],
    ["Content-Length: {length}", "Content-Length: {length}"],
    ["Content-Length: {length}, {longer}"],
], ids=["two-different", "two-same", "a-list"])
def test_more_than_one_content_length_is_refused(stack, fields):
    length, longer = len(stack.body), len(stack.body) + len(behind(stack))
    data = head(stack, *(field.format(length=length, longer=longer) for field in fields))
    answer = refused(stack, data + stack.body + behind(stack))
    assert b"more than one Content-Length" in answer.body


@pytest.mark.parametrize("coding", ["gzip", "chunked, identity", "identity, chunked", "gzip, chunked",
                                    "chunked, chunked"])
def test_a_transfer_encoding_other_than_chunked_alone_is_refused(stack, coding):
    answer = refused(stack, head(stack, f"Transfer-Encoding: {coding}") + chunked(stack.body) + behind(stack))
    assert b"Transfer-Encoding is not supported" in answer.body


def test_transfer_encoding_in_two_fields_is_refused(stack):
    fields = ("Transfer-Encoding: chunked", "Transfer-Encoding: chunked")
    answer = refused(stack, head(stack, *fields) + chunked(stack.body) + behind(stack))
    assert b"Transfer-Encoding is not supported" in answer.body


def test_transfer_encoding_in_an_http_1_0_request_is_refused(stack):
    data = head(stack, "Transfer-Encoding: chunked", "Connection: keep-alive", version="HTTP/1.0")
    answer = refused(stack, data + chunked(stack.body) + behind(stack))
    assert b"HTTP/1.0" in answer.body


def test_a_content_length_that_is_not_a_number_is_refused(stack):
    answer = refused(stack, head(stack, "Content-Length: 1e3") + stack.body + behind(stack))
    assert b"Content-Length is not a number" in answer.body


def test_sound_requests_still_share_a_keep_alive_connection(stack):
    """Content-Length alone, and (where the app takes bodies) chunked alone, each with a request pipelined
    behind it: every one is answered and the connection stays open for one more."""
    if stack.method == "POST":
        framings = [head(stack, f"Content-Length: {len(stack.body)}") + stack.body,
                    head(stack, "Transfer-Encoding: chunked") + chunked(stack.body)]
    else:  # the exporter's pages take no body
        framings = [head(stack), head(stack, "Content-Length: 0")]
    taken = counted(stack)
    with connection(stack.address) as (sock, reader):
        for request in framings:
            sock.sendall(request + behind(stack))
            first, second = reader.next(), reader.next()
            assert first is not None and first.status in (200, 202), first
            assert second is not None and second.status == 200, second
            assert "close" not in first.headers.get("connection", "").lower()
        sock.sendall(behind(stack))  # the connection is still open: a third request on it is answered
        third = reader.next()
        assert third is not None and third.status == 200
    if stack.counter:
        assert counted(stack) > taken, "the sound requests never reached the app, so the refusals prove nothing"


def test_the_exporter_answers_a_request_with_a_body_it_does_not_read_and_then_closes(exporter_process):
    """What follows a GET's declared body is the body, not a request: the exporter reads none of it,
    so it closes the connection after the answer rather than take the body for the next request."""
    address = exporter_process("--simulate")
    smuggled = b"GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connection(address) as (sock, reader):
        sock.sendall(f"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(smuggled)}\r\n\r\n"
                     .encode() + smuggled)
        answer = reader.next()
        assert answer is not None and (answer.status, answer.body) == (200, b"Healthy\n"), answer
        assert answer.headers.get("connection", "").lower() == "close"
        assert reader.next() is None, "the body was read as a request"
