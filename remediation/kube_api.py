"""A minimal client of the Kubernetes API: where it is and how to authenticate, from the pod's service account
(in-cluster) or a kubeconfig file, and JSON requests to it. Only bearer tokens and client certificates are
supported; a kubeconfig that needs an exec plugin or an auth provider is refused at start-up."""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetscope.remediation.config import ConfigError, KubernetesSettings
from fleetscope.remediation.nodes import BackendError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_RESPONSE_BYTES = 128 * 1024 * 1024  # a NodeList of thousands of nodes fits


@dataclass(frozen=True)
class ApiServer:
    url: str
    context: ssl.SSLContext | None
    token: Callable[[], str | None]  # read at each request: projected service-account tokens rotate


def locate(settings: KubernetesSettings) -> ApiServer:
    if settings.kubeconfig is None:
        return _in_cluster()
    return _from_kubeconfig(settings.kubeconfig, settings.context)


def _in_cluster() -> ApiServer:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("kubernetes.kubeconfig: not set, and this is not a pod (no KUBERNETES_SERVICE_HOST): "
                          "name a kubeconfig file, or run in-cluster with a service account")
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    token_file = SERVICE_ACCOUNT / "token"
    host = f"[{host}]" if ":" in host else host
    return ApiServer(f"https://{host}:{port}", context, lambda: token_file.read_text().strip())


def _from_kubeconfig(path: Path, wanted_context: str) -> ApiServer:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"kubernetes.kubeconfig: cannot read {path}: {error}") from None
    name = wanted_context or document.get("current-context", "")
    context = _named(document, "contexts", name, "context", path)
    cluster = _named(document, "clusters", context.get("cluster", ""), "cluster", path)
    user = _named(document, "users", context.get("user", ""), "user", path) if context.get("user") else {}
    server = cluster.get("server", "")
    if not server.startswith(("https://", "http://")):
        raise ConfigError(f"kubernetes.kubeconfig: cluster {context.get('cluster')!r} in {path} has no server URL")
    for unsupported in ("exec", "auth-provider", "username"):
        if unsupported in user:
            raise ConfigError(f"kubernetes.kubeconfig: user {context.get('user')!r} in {path} authenticates with "
                              f"{unsupported}, which fleetscope remediate does not run; give it a service-account "
                              "token (token or tokenFile) or a client certificate")
    base = path.parent
    ssl_context = None
    if server.startswith("https://"):
        ssl_context = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        elif "certificate-authority-data" in cluster:
            ssl_context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif "certificate-authority" in cluster:
            ssl_context.load_verify_locations(cafile=str(base / cluster["certificate-authority"]))
        certificate, key = _client_certificate(user, base)
        if certificate:
            ssl_context.load_cert_chain(certificate, key)
    token = user.get("token")
    token_file = base / user["tokenFile"] if "tokenFile" in user else None
    return ApiServer(server.rstrip("/"), ssl_context,
                     (lambda: token_file.read_text().strip()) if token_file else (lambda: token))


def _named(document: dict, kind: str, name: str, key: str, path: Path) -> dict:
    for entry in document.get(kind) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(key) or {}
    raise ConfigError(f"kubernetes.kubeconfig: {path} has no {key} named {name!r}"
                      + (" (set kubernetes.context or the file's current-context)" if key == "context" else ""))


def _client_certificate(user: dict, base: Path) -> tuple[str | None, str | None]:
    if "client-certificate-data" in user:
        # ssl loads certificates from files only: the decoded pair goes to a folder only this user can read.
        folder = Path(tempfile.mkdtemp(prefix="fleetscope-kube-"))
        atexit.register(shutil.rmtree, folder, True)
        files = []
        for field in ("client-certificate-data", "client-key-data"):
            file = folder / field
            file.touch(0o600)
            file.write_bytes(base64.b64decode(user.get(field, "")))
            files.append(str(file))
        return files[0], files[1]
    if "client-certificate" in user:
        return str(base / user["client-certificate"]), str(base / user["client-key"])
    return None, None


class KubeApi:
    def __init__(self, server: ApiServer, timeout: float) -> None:
        self._server, self._timeout = server, timeout

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "fleetscope-remediate"}
        if (token := self._server.token()) is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self._server.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._server.context) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise BackendError(f"{method} {path}: the Kubernetes API answered {error.code}: "
                               f"{_status_message(error)}") from None
        except (urllib.error.URLError, OSError) as error:
            raise BackendError(f"{method} {path}: cannot reach the Kubernetes API: {error}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise BackendError(f"{method} {path}: the answer is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise BackendError(f"{method} {path}: the Kubernetes API answered something other than JSON") from None
        if not isinstance(answer, dict):
            raise BackendError(f"{method} {path}: the Kubernetes API answered something other than an object")
        return answer


def _status_message(error: urllib.error.HTTPError) -> str:
    """The message of the API's Status object, cut short; the body may be anything a proxy sends."""
    try:
        message = json.loads(error.read(64 * 1024)).get("message", "")
    except (ValueError, AttributeError, OSError):
        message = ""
    return str(message)[:300] or str(error.reason)
