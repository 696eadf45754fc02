"""The exporter's web server in-process: routes, content negotiation, TLS and basic auth."""

from __future__ import annotations

import base64
import gzip
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from fleetscope.cli import build_parser
from fleetscope.log import UserError
from fleetscope.simulation.node import build
from fleetscope.web import config as web_config
from fleetscope.web.server import WebServer, parse_listen_address
from tests.support.exposition import value


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def running(tmp_path):
    """Builds and starts an exporter from flags; everything started is stopped afterwards."""
    started = []

    def start(*flags: str):
        args = build_parser().parse_args(["exporter", "--web.listen-address=127.0.0.1:0", "--simulate",
                                          "--collector.gpu.poll-interval=1s", *flags])
        registry, server = build(args)
        server.start()
        started.append((registry, server))
        assert registry.wait_ready(30), registry.not_ready()
        return server

    yield start
    for registry, server in started:
        server.shutdown()
        registry.close()


def get(url: str, headers: dict | None = None, context: ssl.SSLContext | None = None, method: str = "GET"):
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_metrics_page_and_other_routes(running):
    server = running()
    status, headers, body = get(server.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    page = body.decode()
    assert value(page, "fleetscope_exporter_collector_success", collector="gpu") == 1
    assert page.count("fleetscope_gpu_up{") == 8
    status, _, body = get(server.url + "/")
    assert status == 200 and b'href="/metrics"' in body
    assert get(server.url + "/-/healthy")[0] == 200
    assert get(server.url + "/nope")[0] == 404
    status, headers, body = get(server.url + "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_gzip_and_openmetrics_are_negotiated(running):
    server = running()
    status, headers, body = get(server.url + "/metrics", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert b"fleetscope_gpu_up" in gzip.decompress(body)
    _, headers, body = get(server.url + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_custom_telemetry_path(running):
    server = running("--web.telemetry-path=/gpu-metrics")
    assert get(server.url + "/gpu-metrics")[0] == 200
    assert get(server.url + "/metrics")[0] == 404


def _web_config(tmp_path: Path, certificate, users: dict[str, str] | None = None, **tls) -> str:
    import yaml

    cert, key = certificate
    document = {"tls_server_config": {"cert_file": str(cert), "key_file": str(key), **tls}}
    if users:
        document["basic_auth_users"] = {user: bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
                                        for user, password in users.items()}
    document["http_server_config"] = {"headers": {"X-Frame-Options": "deny"}}
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_tls_and_basic_auth(running, tmp_path, certificate):
    server = running(f"--web.config.file={_web_config(tmp_path, certificate, {'prom': 's3cret'})}")
    assert server.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(certificate[0]))

    def auth(user: str, password: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    status, headers, _ = get(server.url + "/metrics", context=context)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert get(server.url + "/metrics", auth("prom", "wrong"), context)[0] == 401
    assert get(server.url + "/metrics", auth("nobody", "s3cret"), context)[0] == 401
    assert get(server.url + "/metrics", {"Authorization": "Basic !!!"}, context)[0] == 401
    for _ in range(2):  # the second check is answered from the cache
        status, headers, body = get(server.url + "/metrics", auth("prom", "s3cret"), context)
        assert status == 200 and b"fleetscope_gpu_up" in body
    assert headers["X-Frame-Options"] == "deny"
    # Plain HTTP to a TLS port gets no metrics.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(server.url.replace("https", "http") + "/metrics", timeout=5).read()


def test_tls_refuses_clients_below_min_version(running, tmp_path, certificate):
    server = running(f"--web.config.file={_web_config(tmp_path, certificate, min_version='TLS13')}")
    context = ssl.create_default_context(cafile=str(certificate[0]))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(server.url + "/metrics", timeout=5, context=context)


@pytest.mark.parametrize("document, message", [
    ("[1, 2]", "expected a mapping"),
    ("tls_server_config: {cert_file: a}", "cert_file and key_file are both required"),
    ("tls_server_config: {cert_file: nope.crt, key_file: nope.key}", "does not exist"),
    ("tls_server_config: {cipher_suites: [TLS_AES_128_GCM_SHA256]}", "cannot be honoured"),
    ("tls_server_config: {cert: inline}", "cannot be honoured"),
    ("basic_auth_users: {alice: plaintext}", "not a bcrypt hash"),
    ("basic_auth_users: [alice]", "must map user names"),
    ("http_server_config: {headers: {Server: x}}", "may not set Server"),
    ("http_server_config: {compression: true}", "unknown field"),
    ("tls_config: {}", "unknown field(s) tls_config"),
    ("a: [", "not valid YAML"),
    ("tls_server_config: 5", "expected a mapping"),
    ("http_server_config: [headers]", "must be a mapping"),
])
def test_bad_web_configs_are_refused_with_a_reason(tmp_path, document, message):
    path = tmp_path / "web.yml"
    path.write_text(document)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        web_config.load(str(path))


def test_bad_tls_settings_are_refused(tmp_path, certificate):
    for tls, message in (({"min_version": "TLS99"}, "TLS version"), ({"min_version": 12}, "TLS version"),
                         ({"client_auth_type": "Maybe"}, "client_auth_type"),
                         ({"client_auth_type": "RequireAndVerifyClientCert"}, "needs client_ca_file")):
        with pytest.raises(UserError, match=message):
            web_config.parse({"tls_server_config": {"cert_file": str(certificate[0]), "key_file": str(certificate[1]),
                                                    **tls}}, tmp_path)


def test_missing_web_config_file(tmp_path):
    with pytest.raises(UserError, match="cannot read --web.config.file"):
        web_config.load(str(tmp_path / "missing.yml"))


def test_a_server_never_started_shuts_down_at_once():
    from fleetscope.web.server import WebServer

    server = WebServer("127.0.0.1:0", {})
    server.shutdown()  # must not wait for a serve loop that never ran


@pytest.mark.parametrize("address, expected", [(":9835", ("", 9835)), ("127.0.0.1:0", ("127.0.0.1", 0)),
                                               ("[::1]:80", ("::1", 80))])
def test_listen_addresses(address, expected):
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["9835", "host:", "host:http", ":70000"])
def test_bad_listen_addresses(address):
    with pytest.raises(UserError, match="invalid listen address"):
        parse_listen_address(address)


@pytest.mark.parametrize("tls", [False, True])
def test_shutdown_does_not_wait_for_idle_keep_alive_connections(running, tmp_path, certificate, tls):
    import http.client
    import threading
    import time

    if tls:
        server = running(f"--web.config.file={_web_config(tmp_path, certificate)}")
        context = ssl.create_default_context(cafile=str(certificate[0]))
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=context)
    else:
        server = running()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/metrics")
    assert connection.getresponse().read()  # the connection stays open, as Prometheus keeps it
    done = threading.Event()
    started = time.monotonic()
    threading.Thread(target=lambda: (server.shutdown(), done.set()), daemon=True).start()
    assert done.wait(10), "shutdown waited for an idle keep-alive connection"
    assert time.monotonic() - started < 5
    connection.close()


def _make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_a_renewed_certificate_is_served_without_a_restart(running, tmp_path):
    old, new = _make_certificate(tmp_path, "old"), _make_certificate(tmp_path, "new")
    served = tmp_path / "served"
    served.mkdir()
    live_cert, live_key = served / "tls.crt", served / "tls.key"
    live_cert.write_bytes(old[0].read_bytes())
    live_key.write_bytes(old[1].read_bytes())
    server = running(f"--web.config.file={_web_config(tmp_path, (live_cert, live_key))}")
    trusts_old = ssl.create_default_context(cafile=str(old[0]))
    trusts_new = ssl.create_default_context(cafile=str(new[0]))
    assert get(server.url + "/-/healthy", context=trusts_old)[0] == 200
    # Renewed in place, each file replaced at once (as cert-manager's secret volume does, by renaming).
    for source, target in ((new[0], live_cert), (new[1], live_key)):
        staged = target.with_suffix(".new")
        staged.write_bytes(source.read_bytes())
        staged.replace(target)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if get(server.url + "/-/healthy", context=trusts_new)[0] == 200:
                break
        except (urllib.error.URLError, ssl.SSLError, OSError):
            time.sleep(0.2)
    assert get(server.url + "/-/healthy", context=trusts_new)[0] == 200
    with pytest.raises((urllib.error.URLError, ssl.SSLError)):
        get(server.url + "/-/healthy", context=trusts_old)


def test_a_half_written_renewal_keeps_the_previous_certificate(tmp_path, caplog):
    from fleetscope.web.tls import ReloadingContext

    old, new = _make_certificate(tmp_path, "old"), _make_certificate(tmp_path, "new")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(old[0].read_bytes())
    key.write_bytes(old[1].read_bytes())
    now = [0.0]
    document = {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}}
    tls = web_config.parse(document, base_dir=tmp_path).tls
    assert tls is not None
    context = ReloadingContext(tls.build(), tls.build, [str(cert), str(key)], clock=lambda: now[0])
    first = context.current()
    cert.write_bytes(new[0].read_bytes())  # the new certificate, its key not yet written
    now[0] += 2
    assert context.current() is first
    assert "do not load" in caplog.text
    key.write_bytes(new[1].read_bytes())
    now[0] += 0.5
    assert context.current() is first, "the files are looked at once a second at most"
    now[0] += 1
    renewed = context.current()
    assert renewed is not first
    now[0] += 2
    assert context.current() is renewed, "unchanged files build nothing"


def test_every_listen_address_given_is_served(running):
    """As exporter-toolkit serves each --web.listen-address; one that cannot be bound is a clear error."""
    server = running("--web.listen-address=127.0.0.1:0")
    assert len(server.urls) == 2 and server.urls[0] != server.urls[1]
    for url in server.urls:
        status, _, body = get(url + "/metrics")
        assert status == 200 and b"fleetscope_gpu_up" in body
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            WebServer(["127.0.0.1:0", f"127.0.0.1:{port}"], {})
