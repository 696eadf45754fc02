"""What the service keeps of each model it holds: its config, its reference caches, its latest evaluation and
report, and when it is next due."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetscope.drift.columns import ColumnKind
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
    # What outputs are conformed to where the reference sets more than the config: the columns expecting the
    # reference's dimension of each embedding column that declares none (references.expect_reference_dimensions).
    reference_columns: Mapping[str, ColumnKind] | None = None

    @property
    def output_columns(self) -> Mapping[str, ColumnKind]:
        return self.config.columns if self.reference_columns is None else self.reference_columns
