"""A clock the tests move by hand: pass it where code takes a `clock` callable."""

import time


class Clock:
    def __init__(self, now: float | None = None):
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now
