"""The drift service's state, independent of HTTP: the models it holds, its store, limits and counters, and the
resources that act on them: writes (fleetscope.drift.service.writes), outputs, replica_profiles, labels,
references, evaluator and reports."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import AbstractContextManager

from fleetscope import log
from fleetscope.drift.report import SafeReport
from fleetscope.drift.service import evaluation, labels, outcomes, outputs, references, replica_profiles, series
from fleetscope.drift.service.config import ModelConfig, ServiceConfig
from fleetscope.drift.service.evaluator import Evaluator
from fleetscope.drift.service.model_state import ModelState
from fleetscope.drift.service.replica_profiles import PROFILE_CONTENT_TYPE
from fleetscope.drift.service.reports import Reports
from fleetscope.drift.service.store import LabelResult, RowRange, Store
from fleetscope.drift.service.writes import Overloaded, Writes, body_limits

__all__ = ["PROFILE_CONTENT_TYPE", "DriftService", "Overloaded"]
_log = log.get("fleetscope.drift")


class DriftService:
    def __init__(self, config: ServiceConfig, clock=time.time) -> None:
        self.config = config
        self.limits = limits = config.limits
        self.clock = clock
        self.store = Store(config.storage_path, clock=clock, limits=config.storage_limits)
        self.held: dict[str, ModelState] = {}  # the models this instance holds
        self.models_lock = threading.Lock()  # taken to add one
        self.batch_limits = body_limits(limits, limits.max_rows_per_batch)
        self.reference_limits = body_limits(limits, limits.max_window_rows)
        self.rows_accepted: Counter[str] = Counter()
        self.profiles_accepted: Counter[str] = Counter()
        self.rows_rejected: Counter[tuple[str, str]] = Counter()
        self.batches_rejected: Counter[tuple[str, str]] = Counter()
        self.rows_refused_by_column: Counter[tuple[str, str]] = Counter()
        self.labels: Counter[tuple[str, str]] = Counter()  # (model, outcome)
        self.label_delays: dict[str, outcomes.DelayHistogram] = {}
        self.evaluations: Counter[tuple[str, str]] = Counter()
        # the evaluations' series on /metrics
        self.series = series.SeriesBudget(limits.max_series, limits.most_counter_series())
        self.unusable_intervals: Counter[str] = Counter()  # stored profile intervals evaluations had to leave out
        self.last_success: dict[str, float] = {}
        self.writes, self.evaluator, self.reports = Writes(self), Evaluator(self), Reports(self)
        for name, schema in self.store.models().items():
            if name not in config.models and config.owns(name):
                self.hold(config.model_from_schema(name, schema))
        for name, model_config in config.models.items():
            if not config.owns(name):  # another shard's
                continue
            self.hold(model_config)
            self.store.put_model(name, model_config.to_json())
            if model_config.reference_file is not None:
                references.load_file(self, model_config)

    def hold(self, config: ModelConfig) -> ModelState:
        model = ModelState(config)
        references.restore_reference_dimensions(self, model)
        self.held[config.name] = model
        return model

    def models(self) -> dict[str, ModelConfig]:
        return {name: model.config for name, model in self.held.items()}

    def model(self, name: str) -> ModelState:
        model = self.held.get(name)
        if model is None:
            raise KeyError(name)
        return model

    # -- writes (fleetscope.drift.service.writes, outputs, replica_profiles, labels, references) ----------------

    def check_shard(self, name: str) -> None:
        self.writes.check_shard(name)

    def write_slot(self) -> AbstractContextManager[None]:
        return self.writes.slot()

    def counting_refusals(self, name: str | None) -> AbstractContextManager[None]:
        return self.writes.counting_refusals(name)

    def reject(self, model: str | None, reason: str, rows: int | None, column: str | None = None) -> None:
        self.writes.reject(model, reason, rows, column)

    def ingest(self, name: str, body: bytes, content_type: str, batch_id: str | None = None,
               slot_taken: bool = False) -> RowRange:
        return outputs.ingest(self, name, body, content_type, batch_id, slot_taken)

    def ingest_profile(self, name: str, body: bytes, replica: str, start: float, seconds: float,
                       segment: str = "", slot_taken: bool = False) -> tuple[int, bool]:
        return replica_profiles.ingest(self, name, body, replica, start, seconds, segment, slot_taken)

    def ingest_labels(self, name: str, body: bytes, content_type: str, batch_id: str | None = None,
                      slot_taken: bool = False) -> LabelResult:
        return labels.ingest(self, name, body, content_type, batch_id, slot_taken)

    def put_reference(self, name: str, body: bytes, content_type: str, numerical: list[str] | None = None,
                      categorical: list[str] | None = None, segments: list[str] | None = None,
                      slot_taken: bool = False, mode: str = "rows", embedding: list[str] | None = None,
                      text: list[str] | None = None) -> int:
        return references.put(self, name, body, content_type, numerical, categorical, segments, slot_taken, mode,
                              embedding, text)

    # -- evaluations and reports (fleetscope.drift.service.evaluator, reports) -----------------------------------

    def evaluate(self, name: str, wait: bool = True) -> evaluation.Evaluation:
        return self.evaluator.evaluate(name, wait)

    def run_due(self) -> None:
        self.evaluator.run_due()

    def report(self, name: str) -> SafeReport:
        """Evidently's HTML report of the windows the latest evaluation compared."""
        return self.reports.page(name, self._build_report)

    def _build_report(self, model: ModelState, latest: evaluation.Evaluation) -> SafeReport:
        return self.reports.build(model, latest)

    # -- the store ----------------------------------------------------------------------------------------------

    def ready(self) -> bool:
        """True while the store answers: the models and references it holds are loaded at start-up."""
        return self.store.readable()

    def compact(self) -> int:
        self.store.roll_up(self.clock() - self.config.profile_rollup_after,
                           exact_categories=self.limits.max_exact_categories)
        deleted = self.store.compact(self.config.retention)
        if deleted:
            _log.info("retention compaction", extra={"batches_deleted": deleted})
        return deleted

    def close(self) -> None:
        self.store.close()
