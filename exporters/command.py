"""`fleetscope exporter`: flags in Prometheus style, start-up and graceful shutdown."""

from __future__ import annotations

import argparse
import signal
import threading

from fleetscope import __version__, durations, log
from fleetscope.exporters.collectors import AVAILABLE, add_common_flags
from fleetscope.exporters.registry import ExporterRegistry
from fleetscope.exporters.server import routes
from fleetscope.self_metrics import RuntimeCollector
from fleetscope.web import config as web_config
from fleetscope.web.connections import ConnectionLimits, raise_open_file_limit
from fleetscope.web.server import WebServer

DESCRIPTION = """Serves GPU telemetry as Prometheus metrics. Each collector can be turned on or
off with --collector.NAME / --no-collector.NAME. --simulate serves a built-in node of 8 H100 GPUs and 8
NDR InfiniBand ports for trying the exporter on a machine without them."""

_logger = log.get("fleetscope.exporters")

# The bounds of the flags that take a count or a duration: past them a value is a typo, refused at start-up.
MAX_CONNECTIONS = durations.bounded_int(1, 4096)
HEADER_TIMEOUT = durations.bounded_duration("1s", "10m")
IDLE_TIMEOUT = durations.bounded_duration("1s", "1h")
LISTEN_ADDRESS = ":9835"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    web = parser.add_argument_group("web")
    web.add_argument("--web.listen-address", dest="listen_address", action="append", metavar="ADDRESS",
                     help="address on which to expose metrics and the web interface; repeat it to serve on "
                          f"several, each with its own --web.max-connections (default: {LISTEN_ADDRESS})")
    web.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics",
                     help="path under which to expose metrics")
    web.add_argument("--web.config.file", dest="web_config_file", default="",
                     help="exporter-toolkit web configuration file enabling TLS and/or basic auth")
    web.add_argument("--web.max-connections", dest="max_connections", type=MAX_CONNECTIONS, default=64,
                     metavar="N", help="open connections at most; past it the one waiting longest for its request is "
                                       f"closed ({MAX_CONNECTIONS.range})")
    web.add_argument("--web.header-timeout", dest="header_timeout", type=HEADER_TIMEOUT, default=10.0,
                     metavar="DURATION",
                     help=f"time a new connection has to send a complete request head ({HEADER_TIMEOUT.range})")
    web.add_argument("--web.idle-timeout", dest="idle_timeout", type=IDLE_TIMEOUT, default=120.0, metavar="DURATION",
                     help=f"time a keep-alive connection may wait for its next request ({IDLE_TIMEOUT.range})")
    add_common_flags(parser.add_argument_group("collectors"))
    for option in AVAILABLE:
        group = parser.add_argument_group(f"collector {option.name}")
        group.add_argument(f"--collector.{option.name}", dest=f"collector_{option.name}",
                           action=argparse.BooleanOptionalAction, default=option.enabled_by_default,
                           help=f"enable the {option.name} collector ({option.help})")
        option.add_flags(group)
    parser.set_defaults(stand_in=None)  # the host; `--simulate` (simulation/node.py) puts a StandIn here


def build(args: argparse.Namespace) -> tuple[ExporterRegistry, WebServer]:
    """Everything the exporter serves, not yet listening; raises UserError for bad flags."""
    if not args.telemetry_path.startswith("/"):
        raise log.UserError(f"--web.telemetry-path must start with '/', got {args.telemetry_path!r}")
    try:
        limits = ConnectionLimits(args.max_connections, args.header_timeout, args.idle_timeout)
    except ValueError as error:
        raise log.UserError(f"--web.header-timeout and --web.idle-timeout: {error}") from None
    config = web_config.load(args.web_config_file)
    enabled = [option for option in AVAILABLE if getattr(args, f"collector_{option.name}")]
    registry = ExporterRegistry([source for option in enabled for source in option.build(args)], RuntimeCollector())
    try:
        server = WebServer(args.listen_address or [LISTEN_ADDRESS], routes(registry, args.telemetry_path), config,
                           limits)
    except log.UserError:
        registry.close()
        raise
    return registry, server


def run(args: argparse.Namespace) -> int:
    registry, server = build(args)
    raise_open_file_limit(server.limits)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        if not stop.is_set():  # a second signal (Ctrl-C, then a supervisor's SIGTERM) says nothing new
            _logger.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    _logger.info("listening", extra={"address": ",".join(url + args.telemetry_path for url in server.urls),
                                     "version": __version__,
                                     "collectors": ",".join(s.name for s in registry.sources)})
    stop.wait()
    server.shutdown()
    registry.close()
    _logger.info("stopped")
    return 0
