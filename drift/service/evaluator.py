"""Evaluations as the service runs them: the evaluation slots (limits.max_concurrent_evaluations), the windows
read from the store (rows, or profiles: fleetscope.drift.service.profiled), model quality, the outcome kept for
the API and /metrics, and the schedule of models that are due."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pandas as pd

from fleetscope import log
from fleetscope.drift.profiles import Profile
from fleetscope.drift.service import estimated_errors, evaluation, outcomes, profiled, series, windows
from fleetscope.drift.service.config import ModelConfig
from fleetscope.drift.service.model_state import ModelState
from fleetscope.drift.service.store import RowRange, Store
from fleetscope.drift.service.writes import Overloaded

if TYPE_CHECKING:
    from fleetscope.drift.service.service import DriftService

_log = log.get("fleetscope.drift")


class Evaluator:
    def __init__(self, service: DriftService) -> None:
        self._service = service
        self._slots = threading.BoundedSemaphore(service.limits.max_concurrent_evaluations)

    def evaluate(self, name: str, wait: bool = True) -> evaluation.Evaluation:
        service = self._service
        model = service.model(name)
        if not (self._slots.acquire(timeout=30) if wait else self._slots.acquire(blocking=False)):
            raise Overloaded(f"{service.limits.max_concurrent_evaluations} evaluations are running "
                             "(limits.max_concurrent_evaluations); retry shortly", retry_after=5)
        try:
            with model.lock:
                result = self._evaluate(model)
                if model.config.quality is not None:
                    result.model_quality = self._evaluate_quality(model.config, result.evaluated_at)
                    if result.model_quality is not None and not model.config.quality.classification:
                        result.estimated_thresholds = self._estimate_errors(model.config, result.model_quality)
                admitted = service.series.admit(name, series.blocks(result, service.limits.max_classes))
                result.series_dropped = admitted.dropped
                model.latest, model.series = result, admitted
        finally:
            self._slots.release()
        service.evaluations[name, result.outcome] += 1
        service.unusable_intervals[name] += result.unusable_intervals
        if result.outcome == "success":
            service.last_success[name] = result.evaluated_at
        return result

    def run_due(self) -> None:
        """Evaluates every model whose interval has passed (the scheduler calls this)."""
        service = self._service
        now = service.clock()
        for name, model in list(service.held.items()):
            interval = model.config.evaluation_interval or service.config.evaluation_interval
            if now >= model.next_due:
                model.next_due = now + interval
                try:
                    self.evaluate(name, wait=False)
                except Overloaded:
                    model.next_due = now + 1

    def _evaluate(self, model: ModelState) -> evaluation.Evaluation:
        store, limits = self._service.store, self._service.limits
        config, now, started = model.config, self._service.clock(), time.perf_counter()
        outcome = evaluation.Evaluation(config.name, now, "no_data", profiled=config.profiled)
        try:
            if config.profiled:
                self._evaluate_profiles(model, now, outcome)
                outcome.duration = time.perf_counter() - started
                return outcome
            outcome.current = windows.current_rows(store, config.name, config.window, now, limits.max_window_rows)
            current = frame(store, config, outcome.current)
            if config.rolling_reference is not None:
                outcome.reference = windows.rolling_reference_rows(store, config.name, config.rolling_reference,
                                                                   now, limits.max_window_rows)
                reference, version, cache = frame(store, config, outcome.reference), None, None
            else:
                (reference, version), cache = fixed_reference(store, model), model.cache
            if current is None or len(current) == 0:
                outcome.message = "the current window has no rows"
            elif reference is None or len(reference) == 0:
                outcome.message = ("the reference window has no rows" if config.rolling_reference
                                   else "no reference: PUT /v1/models/{model}/reference or name a file in the config")
            else:
                evaluation.run(config, current, reference, limits.max_segments, cache, version, outcome)
        except Exception as error:  # an evaluation must never take the service down
            _log.exception("evaluation failed", extra={"model": config.name})
            # the exception's text stays in the log: it may name files and internals
            outcome.outcome = "error"
            outcome.message = f"the evaluation failed ({type(error).__name__}); the service's log has the details"
        outcome.duration = time.perf_counter() - started
        return outcome

    def _evaluate_quality(self, config: ModelConfig, now: float) -> outcomes.WindowQuality | None:
        try:
            return outcomes.evaluate(self._service.store, config, now, self._service.limits.max_segments)
        except Exception:  # as with drift: the service stays up, the log says why
            _log.exception("model quality evaluation failed", extra={"model": config.name})
            return None

    def _estimate_errors(self, config: ModelConfig,
                         window: outcomes.WindowQuality) -> dict[str, tuple[float, float]]:
        try:
            return estimated_errors.estimate(self._service.store, config, window)
        except Exception:  # as with drift: the service stays up, the log says why
            _log.exception("error estimation failed", extra={"model": config.name})
            return {}

    def _evaluate_profiles(self, model: ModelState, now: float, outcome: evaluation.Evaluation) -> None:
        config, store = model.config, self._service.store
        since, until = windows.current_times(config.window, now)
        exact_categories = self._service.limits.max_exact_categories
        window = store.profiles_between(config.name, since, until, exact_categories)
        current, outcome.unusable_intervals = window.segments, window.unusable
        if config.rolling_reference is not None:
            rolling = store.profiles_between(config.name, *windows.rolling_times(config.rolling_reference, now),
                                             exact_categories)
            reference = {label: found for label, (found, _) in rolling.segments.items()}
            outcome.unusable_intervals += rolling.unusable
            outcome.reference = RowRange(0, 0)
        else:
            reference = _fixed_reference_profiles(store, model)
        if not current:
            outcome.message = "the current window has no profiles"
        elif not reference:
            outcome.message = ("the reference window has no profiles" if config.rolling_reference else
                               "no reference: PUT /v1/models/{model}/reference (rows or a profile) or name a file")
        else:
            profiled.run(config, current, reference, self._service.limits.max_segments, outcome, exact_categories)


def frame(store: Store, config: ModelConfig, rows: RowRange) -> pd.DataFrame | None:
    """The model's columns of stored rows; None for none."""
    if rows.rows == 0:
        return None
    table = store.read(config.name, rows, list(config.columns))
    return None if table is None else table.to_pandas()


def fixed_reference(store: Store, model: ModelState) -> tuple[pd.DataFrame | None, float | None]:
    """The model's set reference and its version; read from the store only when it changed."""
    config = model.config
    version = store.reference_version(config.name)
    if version is None:
        return None, None

    def load() -> pd.DataFrame:
        stored = store.reference(config.name)
        assert stored is not None  # its version was just read
        return stored[1].select(list(config.columns)).to_pandas()

    return model.cache.frame(version, load), version


def _fixed_reference_profiles(store: Store, model: ModelState) -> dict[str, Profile]:
    """The reference as profiles per segment: a profile put as the reference, or rows profiled once."""
    config = model.config
    put = store.profile_reference(config.name)
    version = ("profile", put[0]) if put is not None else ("rows", store.reference_version(config.name))
    if model.reference_profiles is None or model.reference_profiles[0] != version:
        if put is not None:
            found = {profiled.WHOLE: put[1]}
        else:
            reference, _ = fixed_reference(store, model)
            found = {} if reference is None or len(reference) == 0 else profiled.reference_profiles(config, reference)
        model.reference_profiles = (version, found)
    return model.reference_profiles[1]
