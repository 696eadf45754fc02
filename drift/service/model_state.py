"""What the service keeps of each model it holds: its config, its reference caches, its latest evaluation and
report, and when it is next due."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fleetscope.drift.profiles import Profile
from fleetscope.drift.report import SafeReport
from fleetscope.drift.service import evaluation
from fleetscope.drift.service.config import ModelConfig
from fleetscope.drift.service.series import Admitted


@dataclass
class ModelState:
    config: ModelConfig
    cache: evaluation.PreparedCache = field(default_factory=evaluation.PreparedCache)
    lock: threading.Lock = field(default_factory=threading.Lock)
    report_lock: threading.Lock = field(default_factory=threading.Lock)  # one build per evaluation, however many ask
    latest: evaluation.Evaluation | None = None
    report: tuple[float, SafeReport] | None = None  # (evaluated_at, the page)
    next_due: float = 0.0
    reference_profiles: tuple[object, dict[str, Profile]] | None = None  # (reference version, per segment)
    series: Admitted = field(default_factory=Admitted)  # what /metrics serves of the latest evaluation
