"""`fleetscope drift serve`: the drift service, configured by a YAML file and flags."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from fleetscope import durations, log
from fleetscope.drift.service.config import ConfigError, load
from fleetscope.drift.sharding import index_from_hostname
from fleetscope.web.exposure import refuse_unauthenticated
from fleetscope.web.server import parse_listen_address

DESCRIPTION = """Compares live model outputs with reference windows and serves drift as Prometheus metrics.
Models, windows, limits, tokens and TLS are set in --config.file (see fleetscope.drift.service.config);
the flags below override the file."""

_log = log.get("fleetscope.drift")
COMPACTION_INTERVAL = 600.0
# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
RETENTION = durations.bounded_duration("1h", "10y")
EVALUATION_INTERVAL = durations.bounded_duration("1s", "1d")
SHARD_COUNT = durations.bounded_int(1, 1024)
SHARD_INDEX = durations.bounded_int(0, SHARD_COUNT.high - 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config.file", dest="config_file", type=Path, help="YAML configuration file")
    parser.add_argument("--web.listen-address", dest="listen_address",
                        help="address to serve the API and /metrics on (default 127.0.0.1:9840)")
    parser.add_argument("--storage.path", dest="storage_path", type=Path,
                        help="SQLite file that holds accepted outputs and references (default fleetscope-drift.sqlite)")
    parser.add_argument("--storage.retention", dest="retention", type=RETENTION, metavar="DURATION",
                        help=f"how long accepted outputs are kept ({RETENTION.range}; default 7d)")
    parser.add_argument("--evaluation.interval", dest="evaluation_interval", type=EVALUATION_INTERVAL,
                        metavar="DURATION", help="how often each model is evaluated, unless its config says otherwise "
                                                 f"({EVALUATION_INTERVAL.range}; default 1m)")
    parser.add_argument("--shard.count", dest="shard_count", type=SHARD_COUNT, metavar="N",
                        help=f"how many drift service instances the models are spread over ({SHARD_COUNT.range}; "
                             "default 1)")
    parser.add_argument("--shard.index", dest="shard_index", type=_shard_index, metavar="N|hostname",
                        help="which of them this is, from 0 (below --shard.count); 'hostname' takes the number ending "
                             "the hostname, as a Kubernetes StatefulSet's pods are named (fleetscope-drift-2)")
    parser.add_argument("--web.allow-unauthenticated", dest="allow_unauthenticated", action="store_true",
                        help="serve on an address other machines can reach with no write tokens configured, so that "
                             "anyone who can connect may create models and write outputs (refused without this flag)")


def _shard_index(text: str) -> str:
    """'hostname', or a shard number in SHARD_INDEX's bounds, kept as written (run() reads it)."""
    if text != "hostname":
        try:
            SHARD_INDEX(text)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"must be 'hostname' or {str(error).removeprefix('must be ')}") from None
    return text


def run(args: argparse.Namespace) -> int:
    from fleetscope.drift.service.http import create_app
    from fleetscope.drift.service.service import DriftService
    from fleetscope.web import memory
    from fleetscope.web.asgi import serve
    from fleetscope.web.connections import raise_open_file_limit

    try:
        index = args.shard_index
        config = load(args.config_file).with_overrides(
            listen_address=args.listen_address, storage_path=args.storage_path, retention=args.retention,
            evaluation_interval=args.evaluation_interval, shard_count=args.shard_count,
            shard_index=index_from_hostname() if index == "hostname" else None if index is None else int(index))
        host, port = parse_listen_address(config.listen_address)
    except (ConfigError, ValueError) as error:
        raise log.UserError(str(error)) from None
    refuse_unauthenticated(config.listen_address, host, bool(config.auth.write_tokens), args.allow_unauthenticated,
                           "create models and write outputs", "Set auth.write_tokens_file in --config.file")
    _log.info("allocator settings", extra=memory.configure())  # memory back after large bodies
    service = DriftService(config)
    stop = threading.Event()
    scheduler = threading.Thread(target=_schedule, args=(service, stop), name="drift-scheduler", daemon=True)
    scheduler.start()
    tls = {}
    if config.tls_cert_file is not None:
        tls = {"ssl_certfile": str(config.tls_cert_file), "ssl_keyfile": str(config.tls_key_file)}
    _log.info("drift service listening", extra={"address": config.listen_address, "models": len(service.models()),
                                                "store": str(config.storage_path), "tls": bool(tls),
                                                "auth": config.auth.enabled,
                                                "shard": f"{config.shard_index} of {config.shard_count}"})
    connections = config.limits.connections()
    raise_open_file_limit(connections)
    try:
        serve(create_app(service, connections.body_timeout), host or "0.0.0.0", port, connections, **tls)
    finally:
        stop.set()
        scheduler.join(timeout=30)
        service.close()
    return 0


def _schedule(service, stop: threading.Event) -> None:
    """Evaluates models as they fall due, and applies retention every COMPACTION_INTERVAL."""
    next_compaction = 0.0
    while not stop.wait(0.5):
        try:
            service.run_due()
            if service.clock() >= next_compaction:
                service.compact()
                next_compaction = service.clock() + COMPACTION_INTERVAL
        except Exception:  # the scheduler must outlive any one failure
            _log.exception("scheduled work failed")
