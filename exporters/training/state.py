"""What a rank carries across restarts: a fixed-size record of doubles in a file of its own, rewritten in place
(one pwrite, a few microseconds) at the end of every step and phase, so that a crash loses at most the step it
interrupted. Put the directory beside the checkpoints (on storage that outlives the node) so that a relaunch on
another node finds it."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from fleetscope.exporters.catalog.training import PHASES

MAGIC = 0x46535452  # "FSTR"
VERSION = 1
# magic, version, job start, last update, restarts, steps, samples, tokens, high-water step, last checkpoint,
# last step, then one double per phase.
_FORMAT = "<" + "d" * (11 + len(PHASES))
SIZE = struct.calcsize(_FORMAT)


@dataclass
class State:
    job_start: float
    last_update: float
    restarts: float = 0.0
    steps: float = 0.0
    samples: float = 0.0
    tokens: float = 0.0
    high_water_step: float = -1.0  # the highest step number any incarnation completed
    last_checkpoint: float = 0.0  # unix time; 0 before the first
    last_step: float = 0.0  # unix time; 0 before the first
    phases: list[float] = field(default_factory=lambda: [0.0] * len(PHASES))

    def pack(self) -> bytes:
        return struct.pack(_FORMAT, MAGIC, VERSION, self.job_start, self.last_update, self.restarts, self.steps,
                           self.samples, self.tokens, self.high_water_step, self.last_checkpoint, self.last_step,
                           *self.phases)

    @classmethod
    def unpack(cls, data: bytes) -> State | None:
        if len(data) != SIZE:
            return None
        values = struct.unpack(_FORMAT, data)
        if values[0] != MAGIC or values[1] != VERSION:
            return None
        (job_start, last_update, restarts, steps, samples, tokens, high_water_step, last_checkpoint,
         last_step) = values[2:11]
        return cls(job_start, last_update, restarts, steps, samples, tokens, high_water_step, last_checkpoint,
                   last_step, list(values[11:]))


class StateFile:
    """The rank's record, read once when the process starts and rewritten in place after."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def read(self) -> State | None:
        return State.unpack(os.pread(self._fd, SIZE + 1, 0))

    def write(self, state: State) -> None:
        os.pwrite(self._fd, state.pack(), 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def state_path(directory: str | os.PathLike[str], job: str, rank: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job)[:100]
    return Path(directory) / f"fleetscope-training-{safe}-rank{rank}.state"
