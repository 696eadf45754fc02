"""Whether a service that takes writes may listen where other machines reach it without credentials."""

from __future__ import annotations

from fleetscope import log
from fleetscope.web.server import is_loopback

_logger = log.get("fleetscope.web")


def refuse_unauthenticated(address: str, host: str, has_credentials: bool, allowed: bool, could: str,
                           how: str) -> None:
    """UserError where `host` is reachable from other machines, no credentials are configured and
    --web.allow-unauthenticated was not given; a warning where it was. `could`: what anyone who can reach the
    address could then do ("drain nodes"); `how`: where to configure credentials."""
    if has_credentials or is_loopback(host):
        return
    if not allowed:
        raise log.UserError(f"refusing to serve on {address} with no credentials: anyone who can reach it could "
                            f"{could}. {how}, listen on 127.0.0.1, or pass --web.allow-unauthenticated if the "
                            "network itself is trusted")
    _logger.warning("serving without authentication on an address other machines can reach",
                    extra={"address": address})
