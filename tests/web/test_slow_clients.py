"""Slow and many clients against both HTTP stacks: the exporter's threaded server in process and
the drift service (uvicorn) as a real process. Whatever the attackers hold, honest requests are
answered, threads and connections stay bounded, and every slow connection is ended in time."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from fleetscope.web.connections import ConnectionLimits, Waiting
from fleetscope.web.server import Response, WebServer
from tests.drift.support import MODEL_CONFIG, call, outputs
from tests.support.slow_clients import SlowClients, wait_until

LIMITS = ConnectionLimits(max_connections=8, header_timeout=1.0, idle_timeout=2.0)


@pytest.fixture
def exporter_server():
    server = WebServer("127.0.0.1:0", {"/metrics": lambda request: Response(200, b"up 1\n")}, limits=LIMITS)
    server.start()
    yield server
    server.shutdown()


def honest_get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
        return response.status


@pytest.mark.parametrize("mode", ["headers", "idle"])
def test_the_exporter_serves_scrapes_while_slow_clients_hold_its_cap(exporter_server, mode):
    threads_before = threading.active_count()
    with SlowClients(exporter_server.port, 40, mode, interval=0.1, reconnect=True) as attackers:
        threads_cap = threads_before + 1 + LIMITS.max_connections + 4
        for _ in range(30):  # connections capped, and one thread per connection (the attackers have one more);
            # an evicted connection's thread takes a moment to end after its socket is shut down, longer on a
            # loaded machine: the count must come back under the cap, while 40 clients keep reconnecting
            assert exporter_server._servers[0].waiting.open <= LIMITS.max_connections
            assert wait_until(lambda: threading.active_count() <= threads_cap, timeout=2.0), threading.active_count()
            time.sleep(0.01)
        assert [honest_get(exporter_server.url + "/metrics") for _ in range(20)] == [200] * 20
        # past the header deadline every slow connection has been ended (the cap evicted most sooner)
        assert wait_until(lambda: attackers.closed >= 40, timeout=LIMITS.header_timeout + 5), attackers.closed


def test_a_keep_alive_connection_is_ended_after_the_idle_timeout(exporter_server):
    connection = http.client.HTTPConnection("127.0.0.1", exporter_server.port, timeout=10)
    for _ in range(3):  # Prometheus reuses its connection while it scrapes
        connection.request("GET", "/metrics")
        assert connection.getresponse().read() == b"up 1\n"
    sock = connection.sock
    sock.settimeout(LIMITS.idle_timeout + 5)
    started = time.monotonic()
    assert sock.recv(1) == b""  # closed by the server
    assert LIMITS.idle_timeout - 0.5 <= time.monotonic() - started <= LIMITS.idle_timeout + 3
    connection.close()


def test_waiting_evicts_the_longest_waiting_and_refuses_only_when_all_are_busy():
    closed = []
    now = [0.0]
    waiting = Waiting(ConnectionLimits(max_connections=2, header_timeout=5, idle_timeout=60), closed.append,
                      clock=lambda: now[0])
    assert waiting.opened("a") and waiting.opened("b")
    waiting.request_started("b")
    assert waiting.opened("c") and closed == ["a"]  # a waited longest for its head
    waiting.request_started("c")
    assert not waiting.opened("d") and waiting.refused == 1  # b and c are both busy
    waiting.response_sent("b")
    now[0] = 61
    waiting.expire()
    assert closed == ["a", "b"] and waiting.timed_out == 1
    waiting.closed("a")  # an evicted connection closing later is not counted out twice
    waiting.closed("b")
    assert waiting.open == 1


def answered(address: str, path: str, attempts: int = 3) -> bool:
    """Whether the first attempt was answered 200; fails when no attempt is."""
    for attempt in range(attempts):
        try:
            assert call(address, "GET", path)[0] == 200
            return attempt == 0
        except OSError:  # reset or closed before an answer (URLError wraps those raised while sending)
            continue
    raise AssertionError(f"{path} was not answered in {attempts} attempts")


def test_the_drift_service_keeps_serving_while_slow_clients_hold_its_cap(drift_service):
    address = drift_service(MODEL_CONFIG + "limits: {max_connections: 16, header_timeout_seconds: 1, "
                                           "idle_timeout_seconds: 2, body_timeout_seconds: 2}\n")
    port = int(address.rsplit(":", 1)[1])
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(100, seed=1))[0] == 200
    with SlowClients(port, 100, "idle", interval=0.1, reconnect=True) as idle, \
            SlowClients(port, 100, "headers", interval=0.1, reconnect=True) as trickling:
        first_tries = [answered(address, path) for _ in range(10) for path in ("/-/healthy", "/metrics")]
        assert wait_until(lambda: idle.closed >= 100 and trickling.closed >= 100, timeout=8), \
            (idle.closed, trickling.closed)
    # Every request is answered. A burst of accepts can still evict a new honest connection before its
    # head is read (asyncio accepts a whole backlog at once); a client's retry then gets through, as the
    # drift client's and Prometheus' next attempt would.
    assert sum(first_tries) >= len(first_tries) - 2, first_tries


def test_a_body_that_trickles_is_cut_off_at_the_body_timeout(drift_service):
    address = drift_service(MODEL_CONFIG + "limits: {body_timeout_seconds: 2}\n")
    port = int(address.rsplit(":", 1)[1])
    with SlowClients(port, 3, "body", interval=0.05) as trickling:  # fewer than the write slots (4)
        time.sleep(0.5)
        assert call(address, "GET", "/metrics")[0] == 200
        assert wait_until(lambda: trickling.closed == 3, timeout=8), trickling.closed
    # the write slots they held are free again
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(100, seed=1))[0] == 200


UPLOAD_LIMIT = 8 << 20  # more than loopback's socket buffers hold, so an unread rest resets a plain client


@contextlib.contextmanager
def _upload_server(body_timeout: float):
    """An app that reads its body with bounded_body (the drift service's way), in process: its port."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from fleetscope.web.asgi import guarded_protocol
    from fleetscope.web.bodies import BodyRefused, bounded_body

    async def upload(request):
        try:
            return PlainTextResponse(str(len(await bounded_body(request, UPLOAD_LIMIT, timeout=body_timeout))))
        except BodyRefused as refusal:
            return PlainTextResponse(refusal.message, status_code=refusal.status, headers=refusal.headers)

    protocol, _ = guarded_protocol(ConnectionLimits(body_timeout=body_timeout))
    config = uvicorn.Config(Starlette(routes=[Route("/", upload, methods=["POST"])]), host="127.0.0.1", port=0,
                            http=protocol, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    loop_thread = threading.Thread(target=server.run, daemon=True)
    loop_thread.start()
    assert wait_until(lambda: server.started, timeout=10)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        loop_thread.join(10)


def _answer_to_head(port: int, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        return sock.recv(4096)


def test_a_trickled_body_is_answered_408():
    """The status a trickling writer sees, read on its own socket."""
    with _upload_server(body_timeout=2.0) as port:
        answer = _answer_to_head(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"abc")
    assert answer.startswith(b"HTTP/1.1 408"), answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_plain_client_sending_a_body_over_the_limit_reads_the_413_not_a_broken_pipe(chunked):
    """urllib writes the whole body before it reads: an oversized body of up to twice the limit is read to its
    end and dropped, so that the refusal and its reason reach it. (The body timeout is long: on a loaded machine
    a drain cut short by it would reset the client as an unread rest does.)"""
    body = b"x" * (2 * UPLOAD_LIMIT - 1)
    with _upload_server(body_timeout=30.0) as port:
        for _ in range(3):
            data = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=data, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 413
            assert refused.value.read().decode() == (f"the body is larger than {UPLOAD_LIMIT} bytes: "
                                                     "send smaller batches")
        accepted = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"x" * 10, method="POST")
        with urllib.request.urlopen(accepted, timeout=30) as answer:
            assert answer.read() == b"10"


@pytest.mark.parametrize("head", [
    f"Content-Length: {2 * UPLOAD_LIMIT + 1}\r\n",  # more than would be drained
    f"Content-Length: {UPLOAD_LIMIT + 1}\r\nExpect: 100-continue\r\n",  # a client that waits for the answer
], ids=["far-over", "expect-continue"])
def test_a_body_declared_far_over_the_limit_or_awaiting_continue_is_refused_at_once_unread(head):
    with _upload_server(body_timeout=30.0) as port:
        started = time.monotonic()
        answer = _answer_to_head(port, f"POST / HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert time.monotonic() - started < 15  # answered, not left waiting 30 s for a body that never comes
