"""`fleetscope remediate`: the Alertmanager webhook receiver that drains nodes, configured by a YAML file."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from fleetscope import log
from fleetscope.remediation.config import Config, ConfigError, load
from fleetscope.web import config as web_config
from fleetscope.web.exposure import refuse_unauthenticated
from fleetscope.web.server import BasicAuth, parse_listen_address

DESCRIPTION = """Receives Alertmanager's webhook and, for the alerts --config.file's rules name, drains the alert's
Slurm node (scontrol) or cordons and taints its Kubernetes node, within rate limits (limits.max_actions_per_hour,
limits.max_drained_ratio), writing every decision to an audit log. Starts in dry-run unless the config says
dry_run: false."""

_log = log.get("fleetscope.remediation")
DEFAULT_LISTEN = "127.0.0.1:9850"
# What of tls_server_config uvicorn can honour: a certificate and key at TLS 1.2 or later. Anything else is refused
# rather than dropped, as fleetscope.web.config refuses what Python's ssl cannot do.
_TLS_HONOURED = {"cert_file", "key_file", "min_version"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config.file", dest="config_file", type=Path, required=True,
                        help="YAML configuration: backend, rules, limits, audit log, tokens")
    parser.add_argument("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN,
                        help="address to receive the webhook and serve /metrics on")
    parser.add_argument("--web.config.file", dest="web_config_file", default="",
                        help="exporter-toolkit web configuration file: basic auth users, TLS certificate and key")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                        help="decide and log only, whatever the config's dry_run says")
    parser.add_argument("--web.allow-unauthenticated", dest="allow_unauthenticated", action="store_true",
                        help="serve on an address other machines can reach with no tokens or basic auth users, so "
                             "that anyone who can connect may drain nodes (refused without this flag)")


def run(args: argparse.Namespace) -> int:
    from fleetscope.remediation.audit import AuditLog
    from fleetscope.remediation.http import create_app
    from fleetscope.remediation.remediator import Remediator
    from fleetscope.web.asgi import serve
    from fleetscope.web.connections import ConnectionLimits

    try:
        config = load(args.config_file)
        if args.dry_run:
            config = _dry(config)
        backend = _backend(config)
    except ConfigError as error:
        raise log.UserError(f"--config.file {args.config_file}: {error}") from None
    web = web_config.load(args.web_config_file)
    tls = _tls_files(args.web_config_file)
    host, port = parse_listen_address(args.listen_address)
    refuse_unauthenticated(args.listen_address, host, bool(config.tokens or web.basic_auth_users),
                           args.allow_unauthenticated, "drain nodes",
                           "Set auth.tokens_file in --config.file or basic_auth_users in --web.config.file")
    audit = AuditLog(config.audit_path)
    remediator = Remediator(config, backend, audit)
    _log.info("remediator listening", extra={"address": args.listen_address, "backend": backend.name,
                                             "dry_run": config.dry_run, "rules": len(config.rules),
                                             "audit": str(config.audit_path),
                                             "max_actions_per_hour": config.limits.max_actions_per_hour,
                                             "max_drained_ratio": config.limits.max_drained_ratio})
    limits = ConnectionLimits(max_connections=64, body_timeout=config.limits.body_timeout)
    try:
        serve(create_app(remediator, BasicAuth(web.basic_auth_users), web.headers), host or "0.0.0.0", port, limits,
              **tls)
    finally:
        audit.close()
    return 0


def _dry(config: Config) -> Config:
    return replace(config, dry_run=True)


def _backend(config: Config) -> Any:
    if config.backend == "kubernetes":
        from fleetscope.remediation.kube_api import KubeApi, locate
        from fleetscope.remediation.kubernetes import KubernetesBackend
        settings = config.kubernetes
        return KubernetesBackend(settings, KubeApi(locate(settings), settings.request_timeout))
    from fleetscope.remediation.slurm import SlurmBackend
    return SlurmBackend(config.slurm)


def _tls_files(path: str) -> dict[str, str]:
    """uvicorn's certificate and key from the web config's tls_server_config (web_config.load checked them)."""
    if not path:
        return {}
    document = yaml.safe_load(Path(path).read_text()) or {}
    tls = document.get("tls_server_config")
    if not tls:
        return {}
    unhonoured = sorted(set(tls) - _TLS_HONOURED) + (["min_version"] if tls.get("min_version", "TLS12") != "TLS12"
                                                      else [])
    if unhonoured:
        raise log.UserError(f"--web.config.file {path}: tls_server_config.{', '.join(unhonoured)} cannot be honoured "
                            "by fleetscope remediate (a certificate and key at TLS 1.2 or later only); remove it")
    base = Path(path).parent
    return {"ssl_certfile": str(base / tls["cert_file"]), "ssl_keyfile": str(base / tls["key_file"])}
