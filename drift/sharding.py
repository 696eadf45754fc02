"""Which drift service instance holds a model, when models are spread over several.

Rendezvous (highest random weight) hashing: each shard's weight for a model is a hash of the two, and the
model lives on the shard of highest weight. It is stable (the same on every client, every service instance
and every Python, unlike hash()), needs nothing but the shard count, and when the count grows from n to n+1
only the models whose new shard is n+1 move: about 1/(n+1) of them, where `hash % n` would move most.
"""

from __future__ import annotations

import hashlib
import socket

PLACEHOLDER = "{shard}"


def shard_of(model: str, shards: int) -> int:
    """The shard, 0 to shards - 1, that holds `model`."""
    if shards < 1:
        raise ValueError(f"the shard count must be at least 1, not {shards}")
    return max(range(shards), key=lambda shard: hashlib.sha256(f"{shard}\0{model}".encode()).digest())


def shard_url(template: str, model: str, shards: int) -> str:
    """The service URL for `model`: `template` with {shard} replaced by the model's shard, e.g.
    http://fleetscope-drift-{shard}.fleetscope-drift.monitoring:9840 for the Kubernetes StatefulSet."""
    if shards == 1:
        return template.replace(PLACEHOLDER, "0")
    if PLACEHOLDER not in template:
        raise ValueError(f"with {shards} shards the drift service URL must hold {PLACEHOLDER}, as in "
                         "http://fleetscope-drift-{shard}.fleetscope-drift:9840")
    return template.replace(PLACEHOLDER, str(shard_of(model, shards)))


def index_from_hostname(hostname: str | None = None) -> int:
    """A StatefulSet pod's ordinal: the number after the last '-' of its hostname (fleetscope-drift-2: 2)."""
    name = hostname or socket.gethostname()
    ordinal = name.rsplit("-", 1)[-1]
    if not ordinal.isdigit():
        raise ValueError(f"hostname {name!r} does not end in -N: pass the shard index itself")
    return int(ordinal)
