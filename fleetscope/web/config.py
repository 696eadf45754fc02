"""The exporter-toolkit web configuration file (--web.config.file), as Prometheus exporters read it.

https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md
Settings that Python's ssl module cannot honour the way Go does (cipher suite and curve
names, allowed SANs) and inline PEM are refused with a message rather than silently ignored: a TLS setting that is
quietly dropped is a security hole.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetscope.log import UserError
from fleetscope.web.tls import ReloadingContext

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# exporter-toolkit allows only these response headers to be set.
_ALLOWED_HEADERS = {
    "Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
    "X-XSS-Protection", "Content-Security-Policy",
}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
_TLS_UNSUPPORTED = {"cipher_suites", "curve_preferences", "client_allowed_sans", "prefer_server_cipher_suites",
                    "cert", "key"}
_HTTP_KEYS = {"headers", "http2"}


@dataclass(frozen=True)
class WebConfig:
    tls: ReloadingContext | None = None
    basic_auth_users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def load(path: str | None) -> WebConfig:
    """Read and validate a web config file; None or "" means plain HTTP without auth."""
    if not path:
        return WebConfig()
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except OSError as error:
        raise UserError(f"cannot read --web.config.file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UserError(f"--web.config.file {path} is not valid YAML: {error}") from None
    return parse(document, base_dir=file.parent, source=path)


def parse(document: Any, base_dir: Path, source: str = "web config") -> WebConfig:
    if not isinstance(document, dict):
        raise UserError(f"{source}: expected a mapping at the top level")
    _reject_unknown(document, {"tls_server_config", "http_server_config", "basic_auth_users"}, source)
    tls = document.get("tls_server_config")
    http = document.get("http_server_config") or {}
    users = document.get("basic_auth_users") or {}
    return WebConfig(
        tls=_reloading_context(tls, base_dir, source) if tls else None,
        basic_auth_users=_users(users, source),
        headers=_headers(http, source),
    )


def _reject_unknown(section: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")


def _reloading_context(tls: Any, base_dir: Path, source: str) -> ReloadingContext:
    """The context built now (checking every setting), and again whenever its files change."""
    context = _ssl_context(tls, base_dir, source)
    files = [str(base_dir / str(tls[key])) for key in ("cert_file", "key_file", "client_ca_file") if key in tls]
    return ReloadingContext(context, lambda: _ssl_context(tls, base_dir, source), files)


def _ssl_context(tls: Any, base_dir: Path, source: str) -> ssl.SSLContext:
    where = f"{source}: tls_server_config"
    if not isinstance(tls, dict):
        raise UserError(f"{where}: expected a mapping")
    unsupported = sorted(set(tls) & _TLS_UNSUPPORTED)
    if unsupported:
        raise UserError(f"{where}: {', '.join(unsupported)} cannot be honoured by fleetscope's TLS stack; remove it "
                        "(TLS 1.2+ with the system's default ciphers is used)")
    _reject_unknown(tls, _TLS_KEYS, where)
    if "cert_file" not in tls or "key_file" not in tls:
        raise UserError(f"{where}: cert_file and key_file are both required")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _tls_version(tls.get("min_version", "TLS12"), where)
    if "max_version" in tls:
        context.maximum_version = _tls_version(tls["max_version"], where)
    cert = _existing_file(tls, "cert_file", base_dir, where)
    key = _existing_file(tls, "key_file", base_dir, where)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as error:
        raise UserError(f"{where}: cannot load certificate {cert} with key {key}: {error}") from None

    auth_type = tls.get("client_auth_type", "NoClientCert")
    if auth_type not in _CLIENT_AUTH:
        raise UserError(f"{where}: client_auth_type {auth_type!r} is not one of {', '.join(_CLIENT_AUTH)}")
    context.verify_mode = _CLIENT_AUTH[auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        if "client_ca_file" not in tls:
            raise UserError(f"{where}: client_auth_type {auth_type} needs client_ca_file")
        try:
            context.load_verify_locations(str(base_dir / tls["client_ca_file"]))
        except (ssl.SSLError, OSError) as error:
            raise UserError(f"{where}: cannot load client_ca_file {tls['client_ca_file']}: {error}") from None
    return context


def _tls_version(name: Any, where: str) -> ssl.TLSVersion:
    if name not in _TLS_VERSIONS:
        raise UserError(f"{where}: TLS version {name!r} is not one of {', '.join(_TLS_VERSIONS)}")
    return _TLS_VERSIONS[name]


def _existing_file(tls: dict, key: str, base_dir: Path, where: str) -> str:
    path = base_dir / str(tls[key])
    if not path.is_file():
        raise UserError(f"{where}: {key} {path} does not exist")
    return str(path)


def _users(users: Any, source: str) -> dict[str, bytes]:
    if not isinstance(users, dict):
        raise UserError(f"{source}: basic_auth_users must map user names to bcrypt hashes")
    parsed = {}
    for user, hashed in users.items():
        text = str(hashed)
        if not text.startswith(("$2a$", "$2b$", "$2y$")):
            raise UserError(f"{source}: basic_auth_users.{user} is not a bcrypt hash "
                            "(make one with: htpasswd -nbBC 10 '' PASSWORD | tr -d ':')")
        parsed[str(user)] = text.encode()
    return parsed


def _headers(http: Any, source: str) -> dict[str, str]:
    if not isinstance(http, dict):
        raise UserError(f"{source}: http_server_config must be a mapping")
    _reject_unknown(http, _HTTP_KEYS, f"{source}: http_server_config")
    headers = http.get("headers") or {}
    disallowed = sorted(set(headers) - _ALLOWED_HEADERS)
    if disallowed:
        raise UserError(f"{source}: http_server_config.headers may not set {', '.join(disallowed)}; "
                        f"allowed: {', '.join(sorted(_ALLOWED_HEADERS))}")
    return {str(k): str(v) for k, v in headers.items()}
