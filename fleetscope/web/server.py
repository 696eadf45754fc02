"""A small threaded HTTP server in the style of Prometheus exporters.

Routes are plain functions from Request to Response. TLS and basic auth come from the
exporter-toolkit web config. Shutdown stops accepting, then waits for requests in flight.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qs, urlsplit

import bcrypt

from fleetscope import log
from fleetscope.log import UserError
from fleetscope.web.config import WebConfig
from fleetscope.web.connections import ConnectionLimits, Waiting
from fleetscope.web.framing import framing_problem
from fleetscope.web.tls import ReloadingContext

_logger = log.get("fleetscope.web")
# No single read or write on a connection may block longer (a client that stops reading its
# response); the deadlines for a whole request head are in ConnectionLimits.
_SOCKET_TIMEOUT_SECONDS = 30.0
# Checked with a real hash when the user is unknown, so timing does not tell which users exist.
_DUMMY_HASH = bcrypt.hashpw(b"fleetscope", bcrypt.gensalt(rounds=10))


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request], Response]


def parse_listen_address(address: str) -> tuple[str, int]:
    """':9480', '127.0.0.1:0' or '[::1]:9480' as (host, port); host '' means every interface."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UserError(f"invalid listen address {address!r}: use host:port, :port or [ipv6]:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether a listen host ('' is every interface) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '' (every interface) or a name that may resolve anywhere


class BasicAuth:
    """Checks credentials against bcrypt hashes; caches successes as exporter-toolkit does,
    because bcrypt costs tens of milliseconds per check and Prometheus scrapes often."""

    def __init__(self, users: Mapping[str, bytes]):
        self._users = dict(users)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def allows(self, authorization: str | None) -> bool:
        if not self._users:
            return True
        user, password = _decode_basic(authorization)
        if user is None:
            return False
        hashed = self._users.get(user)
        cache_key = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed or b""])).digest()
        with self._lock:
            if hashed is not None and cache_key in self._verified:
                return True
        ok = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH) and hashed is not None
        if ok:
            with self._lock:
                if len(self._verified) > 1024:
                    self._verified.clear()
                self._verified.add(cache_key)
        return ok


def _decode_basic(authorization: str | None) -> tuple[str | None, str]:
    if not authorization or not authorization.lower().startswith("basic "):
        return None, ""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, "")


class _Connection:
    """One accepted connection: its socket, the TLS one once the handshake is done."""

    __slots__ = ("socket",)

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock

    def shutdown(self, how: int) -> None:
        # socket.socket's own shutdown: SSLSocket.shutdown would drop the TLS state
        # that a response still being written needs.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.socket, how)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for requests in flight
    block_on_close = True
    request_queue_size = 128  # socketserver's 5 drops honest scrapes in a burst

    def __init__(self, address: tuple[str, int], handler: type, tls: ReloadingContext | None,
                 limits: ConnectionLimits):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.tls = tls
        self.waiting: Waiting[_Connection] = Waiting(limits, close=lambda connection: connection.shutdown(
            socket.SHUT_RDWR))
        self._accepted: dict[int, _Connection] = {}
        self._current = threading.local()  # the connection the handler on this thread serves
        super().__init__(address, handler)

    def end_reading(self) -> None:
        """Closes the read side of every open connection: a request in flight still gets its
        response, and an idle keep-alive connection (Prometheus keeps one) ends at once
        instead of holding shutdown until it times out."""
        for connection in self.waiting.connections():
            connection.shutdown(socket.SHUT_RD)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request, client_address) -> None:
        # A connection ended under a handler (a deadline, the cap, the client going away) is
        # routine; socketserver would print its traceback to stderr.
        _logger.debug("connection ended with an error", extra={"client": client_address[0]}, exc_info=True)

    def service_actions(self) -> None:
        self.waiting.expire()  # serve_forever calls this about twice a second

    def process_request(self, request, client_address) -> None:
        connection = _Connection(request)
        if not self.waiting.opened(connection):  # the cap is reached and every connection is busy
            self.shutdown_request(request)
            return
        self._accepted[id(request)] = connection
        super().process_request(request, client_address)

    def finish_request(self, request, client_address) -> None:
        # Runs in the connection's own thread, so a slow TLS handshake never blocks accept().
        connection = self._accepted.pop(id(request))
        self._current.connection = connection
        try:
            request.settimeout(_SOCKET_TIMEOUT_SECONDS)
            if self.tls is not None:
                try:
                    request = connection.socket = self.tls.current().wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as error:
                    _logger.debug("TLS handshake failed", extra={"client": client_address[0], "reason": str(error)})
                    return
            super().finish_request(request, client_address)
        finally:
            self.waiting.closed(connection)

    def request_started(self) -> None:
        self.waiting.request_started(self._current.connection)

    def response_sent(self) -> None:
        self.waiting.response_sent(self._current.connection)


# The exporter's own pages: few scrapers, each keeping its connection between scrapes.
DEFAULT_LIMITS = ConnectionLimits(max_connections=64, idle_timeout=120.0)


class WebServer:
    """Serves routes on one or more listen addresses (as exporter-toolkit serves every --web.listen-address)
    until shutdown(). Connection limits hold on each address."""

    def __init__(self, listen_address: str | Sequence[str], routes: Mapping[str, Route],
                 web_config: WebConfig | None = None, limits: ConnectionLimits = DEFAULT_LIMITS):
        config = web_config or WebConfig()
        self.limits = limits
        self._routes = dict(routes)
        self._auth = BasicAuth(config.basic_auth_users)
        self._extra_headers = dict(config.headers)
        addresses = [listen_address] if isinstance(listen_address, str) else list(listen_address)
        if not addresses:
            raise UserError("no listen address given")
        self._servers: list[_Server] = []
        handler = self._handler_class()
        for address in addresses:
            host, port = parse_listen_address(address)
            try:
                self._servers.append(_Server((host, port), handler, config.tls, limits))
            except OSError as error:
                self._close()
                raise UserError(f"cannot listen on {address}: {error.strerror}") from None
        self.scheme = "https" if config.tls else "http"
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        """The first address's port."""
        return self._servers[0].server_address[1]

    @property
    def url(self) -> str:
        """The first address's URL."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        return [self._url(server) for server in self._servers]

    def _url(self, server: _Server) -> str:
        host = str(server.server_address[0])
        host = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{server.server_address[1]}"

    def start(self) -> None:
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, name="web-server", daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self) -> None:
        """Stop accepting connections and wait for requests in flight."""
        # socketserver's shutdown() waits for serve_forever() to notice, so only once it runs.
        for server, thread in zip(self._servers, self._threads, strict=False):  # none before start()
            server.shutdown()
            thread.join()
        self._threads = []
        self._close()

    def _close(self) -> None:
        for server in self._servers:
            server.end_reading()
            server.server_close()

    def _handler_class(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "fleetscope"

            def do_GET(self) -> None:
                server._dispatch(self, send_body=True)

            def do_HEAD(self) -> None:
                server._dispatch(self, send_body=False)

            def parse_request(self) -> bool:
                parsed = super().parse_request()  # reads the headers
                cast(_Server, self.server).request_started()  # the head is in: no longer waiting for one
                if not parsed:
                    return False
                # No route reads a body: where a request has one, what follows its head is never taken for
                # the next request. A framing a proxy may read otherwise is refused, any other body left
                # unread and the connection closed after the answer.
                if problem := framing_problem(self.headers.items(), self.request_version):
                    server._refuse(self, problem)
                    return False
                declared = self.headers.get("Content-Length", "0").strip(" \t")  # digits: framing_problem says so
                if declared.lstrip("0") or "Transfer-Encoding" in self.headers:
                    self.close_connection = True
                return True

            def handle_one_request(self) -> None:
                super().handle_one_request()
                if not self.close_connection:
                    cast(_Server, self.server).response_sent()

            def log_message(self, format: str, *args) -> None:
                _logger.debug("http " + format % args)

        return Handler

    def _dispatch(self, handler: BaseHTTPRequestHandler, send_body: bool) -> None:
        url = urlsplit(handler.path)
        if not self._auth.allows(handler.headers.get("Authorization")):
            response = Response(HTTPStatus.UNAUTHORIZED, b"Unauthorized\n",
                                {"WWW-Authenticate": 'Basic realm="fleetscope"', "Content-Type": "text/plain"})
        elif (route := self._routes.get(url.path)) is None:
            response = Response(HTTPStatus.NOT_FOUND, b"404 page not found\n", {"Content-Type": "text/plain"})
        else:
            request = Request(handler.command, url.path, parse_qs(url.query), dict(handler.headers.items()))
            try:
                response = route(request)
            except Exception:
                _logger.exception("request failed", extra={"path": url.path})
                response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n",
                                    {"Content-Type": "text/plain"})
        self._send(handler, response, send_body)

    def _send(self, handler: BaseHTTPRequestHandler, response: Response, send_body: bool) -> None:
        handler.send_response(response.status)
        for name, value in {**self._extra_headers, **response.headers}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(response.body)))
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        if send_body:
            handler.wfile.write(response.body)

    def _refuse(self, handler: BaseHTTPRequestHandler, problem: str) -> None:
        """Answers 400 naming the problem and closes the connection, reading nothing more of it."""
        handler.close_connection = True
        headers = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
        self._send(handler, Response(HTTPStatus.BAD_REQUEST, f"{problem}\n".encode(), headers),
                   send_body=handler.command != "HEAD")

