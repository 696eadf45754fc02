"""Evidently's HTML report of the windows a model's latest evaluation compared: built once per evaluation
however many ask, in slots of its own (limits.max_concurrent_reports), so that a burst of readers never delays
a scheduled evaluation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from fleetscope.drift.report import SafeReport, evidently_html, evidently_snapshot, with_banner
from fleetscope.drift.service.evaluation import Evaluation
from fleetscope.drift.service.evaluator import fixed_reference, frame
from fleetscope.drift.service.model_state import ModelState
from fleetscope.drift.service.writes import Overloaded

if TYPE_CHECKING:
    from fleetscope.drift.service.service import DriftService

# How long a report request waits for a build (its own or another's) before it is answered 503.
REPORT_WAIT_SECONDS = 60.0


class Reports:
    def __init__(self, service: DriftService) -> None:
        self._service = service
        self._slots = threading.BoundedSemaphore(service.limits.max_concurrent_reports)

    def page(self, name: str, build: Callable[[ModelState, Evaluation], SafeReport]) -> SafeReport:
        """The report of the model's latest evaluation; `build` makes it when there is none yet."""
        model = self._service.model(name)
        latest = model.latest
        if latest is None or latest.outcome != "success":
            raise LookupError(f"model {name!r} has no successful evaluation yet: POST /v1/models/{name}/evaluate")
        if latest.profiled and (latest.samples is None or None in latest.samples):
            raise LookupError(f"model {name!r} is fed profiles without samples of their rows, so there are no rows "
                              f"to draw Evidently's report from; /v1/models/{name}/drift has the evaluation")
        # Whoever comes first builds it; the others wait for that build instead of repeating it.
        if not model.report_lock.acquire(timeout=REPORT_WAIT_SECONDS):
            raise Overloaded(f"the report of {name!r} is still being built; retry shortly", retry_after=5)
        try:
            if model.report is None or model.report[0] != latest.evaluated_at:
                model.report = (latest.evaluated_at, build(model, latest))
            return model.report[1]
        finally:
            model.report_lock.release()

    def build(self, model: ModelState, latest: Evaluation) -> SafeReport:
        assert latest.result is not None  # reports are built for successful evaluations only
        if not self._slots.acquire(timeout=REPORT_WAIT_SECONDS):
            raise Overloaded("reports are busy (limits.max_concurrent_reports)", retry_after=5)
        try:
            config, store = model.config, self._service.store
            if latest.samples is not None:
                reference, current = (sample.frame() for sample in latest.samples if sample is not None)
            else:
                current = frame(store, config, latest.current)
                if latest.reference is not None:
                    reference = frame(store, config, latest.reference)
                else:
                    reference, _ = fixed_reference(store, model)
            kinds = {name: drift.kind for name, drift in latest.result.columns.items()}
            methods = {name: drift.method for name, drift in latest.result.columns.items()}
            thresholds = {name: drift.threshold for name, drift in latest.result.columns.items()}
            page = evidently_html(evidently_snapshot(reference, current, kinds, methods, thresholds,
                                                     config.drift_share))
            if latest.samples is None:
                return page
            return with_banner(page, f"Drawn from a sample: {len(current):,} of the {latest.current_rows:,} rows of "
                                     f"the current window and {len(reference):,} of the reference's "
                                     f"{latest.reference_rows:,}, kept with the profiles the replicas sent. The "
                                     f"drift service's own scores (/v1/models/{config.name}/drift and /metrics) "
                                     f"come from the whole profiles, and may differ from these.")
        finally:
            self._slots.release()
