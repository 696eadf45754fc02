"""The server's TLS context, built again when its certificate, key or client CA file changes.

cert-manager and similar tools renew certificates in place, and exporter-toolkit reads the
files at every handshake; here a handshake checks the files' identity (at most once a second)
and builds a new context only when one changed. New connections get it; open ones keep theirs.
A renewal caught half-written (a certificate without its new key) fails to load: the previous
context stays in use and the next change is tried again.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable, Sequence

from fleetscope import log
from fleetscope.log import UserError

_logger = log.get("fleetscope.web")
FileStamp = tuple[int, int, int] | None


class ReloadingContext:
    def __init__(self, context: ssl.SSLContext, build: Callable[[], ssl.SSLContext], files: Sequence[str],
                 check_every: float = 1.0, clock: Callable[[], float] = time.monotonic):
        """context: built from the files as they are now; build() makes it again, raising UserError if
        they do not load."""
        self.build = build
        self._files = tuple(files)
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._stamps = _stamps(self._files)
        self._context = context
        self._checked = clock()

    def current(self) -> ssl.SSLContext:
        if self._clock() - self._checked < self._check_every:
            return self._context
        with self._lock:
            self._checked = self._clock()
            stamps = _stamps(self._files)
            if stamps != self._stamps:
                self._stamps = stamps
                self._reload()
            return self._context

    def _reload(self) -> None:
        try:
            self._context = self.build()
        except UserError as error:
            _logger.warning("TLS files changed but do not load; serving the previous certificate until they change "
                            "again", extra={"reason": str(error)})
            return
        _logger.info("TLS certificate reloaded", extra={"files": ",".join(self._files)})


def _stamps(files: Sequence[str]) -> tuple[FileStamp, ...]:
    return tuple(_stamp(path) for path in files)


def _stamp(path: str) -> FileStamp:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size
