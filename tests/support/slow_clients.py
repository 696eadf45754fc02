"""Hostile clients on loopback: many connections that send their request slowly, or nothing.

Used by the slow-client tests and benchmarks/slow_clients.py. One thread drives every socket;
the run is bounded by stop() (the tests and the benchmark always call it)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

REQUESTS = {
    # a request head sent one byte at a time, never finished
    "headers": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris" + b"x" * 100_000,
    # nothing at all after connecting
    "idle": b"",
    # a complete head announcing a body that then trickles
    "body": b"POST /v1/models/iris/outputs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n" + b"[" * 1_000_000,
}


class SlowClients:
    """`count` connections to 127.0.0.1:port, each sending REQUESTS[mode] one byte every `interval`
    seconds. With reconnect, a connection the server closes is opened again (an attacker keeps
    the pressure on); `closed` counts those the server ended."""

    def __init__(self, port: int, count: int, mode: str = "headers", interval: float = 0.5,
                 reconnect: bool = False) -> None:
        self.port, self.count, self.interval, self.reconnect = port, count, interval, reconnect
        self._payload = REQUESTS[mode]
        self._selector = selectors.DefaultSelector()
        self._sent: dict[socket.socket, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self.closed = 0
        self.refused = 0

    def __enter__(self) -> SlowClients:
        for _ in range(self.count):
            self._open()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def open(self) -> int:
        return len(self._sent)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        for sock in list(self._sent):
            self._forget(sock)
        self._selector.close()

    def _open(self) -> None:
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", self.port))
        except OSError:
            self.refused += 1
            sock.close()
            return
        sock.setblocking(False)
        self._sent[sock] = 0
        self._selector.register(sock, selectors.EVENT_READ)

    def _forget(self, sock: socket.socket) -> None:
        self._sent.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()

    def _run(self) -> None:
        next_byte = time.monotonic()
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                try:
                    ended = sock.recv(65536) == b""  # an answer (408, 503) is read and waited past
                except (BlockingIOError, InterruptedError):
                    ended = False
                except OSError:
                    ended = True
                if ended:
                    self.closed += 1
                    self._forget(sock)
                    if self.reconnect and not self._stop.is_set():
                        self._open()
            if time.monotonic() >= next_byte:
                next_byte += self.interval
                for sock, sent in list(self._sent.items()):
                    if sent < len(self._payload):
                        try:
                            sock.send(self._payload[sent:sent + 1])
                            self._sent[sock] = sent + 1
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            pass  # seen as closed by the read above


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True
