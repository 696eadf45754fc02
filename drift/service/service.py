"""The drift service's state and operations, independent of HTTP: models, ingest,
references, scheduled and on-demand evaluation, reports and retention."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from fleetscope import log
from fleetscope.catalog import FamilySet
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.comparison import column_kinds
from fleetscope.drift.profiles import Profile, ProfileError, as_declared
from fleetscope.drift.report import SafeReport, evidently_html, evidently_snapshot, with_banner
from fleetscope.drift.service import evaluation, outcomes, profiled, series, windows
from fleetscope.drift.service.config import COLUMN_NAME, MODEL_NAME, Limits, ModelConfig, ServiceConfig
from fleetscope.drift.service.decode import BadBatch, BodyLimits, conform, read_table
from fleetscope.drift.service.store import LabelResult, RowRange, Store
from fleetscope.drift.sharding import shard_of
from fleetscope.log import quoted
from fleetscope.web import memory

_log = log.get("fleetscope.drift")
# How long a report request waits for a build (its own or another's) before it is answered 503.
REPORT_WAIT_SECONDS = 60.0
PROFILE_CONTENT_TYPE = "application/vnd.fleetscope.profile"
# A replica's name, and a batch's Idempotency-Key.
IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# A profile's interval: from a second to an hour, and starting no later than this far ahead of the service's
# clock (replicas' clocks drift; one far ahead would file outputs in the future).
MAX_INTERVAL_SECONDS = 3600.0
MAX_CLOCK_AHEAD_SECONDS = 300.0


class Overloaded(Exception):
    """Too much work at once; the client should retry after `retry_after` seconds."""

    counted = False
    reason = "overloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Model:
    config: ModelConfig
    cache: evaluation.PreparedCache
    lock: threading.Lock
    report_lock: threading.Lock  # one build per evaluation, however many ask for it at once
    latest: evaluation.Evaluation | None = None
    report: tuple[float, SafeReport] | None = None  # (evaluated_at, the page)
    next_due: float = 0.0
    reference_profiles: tuple[object, dict[str, Profile]] | None = None  # (reference version, per segment)
    series: FamilySet = field(default_factory=FamilySet)  # what /metrics serves of the latest evaluation


class DriftService:
    def __init__(self, config: ServiceConfig, clock=time.time) -> None:
        self.config = config
        self.limits = config.limits
        self.clock = clock
        self.store = Store(config.storage_path, clock=clock, limits=config.storage_limits)
        self._models: dict[str, _Model] = {}
        self._models_lock = threading.Lock()
        self._writes = threading.BoundedSemaphore(self.limits.max_concurrent_writes)
        self._evaluations = threading.BoundedSemaphore(self.limits.max_concurrent_evaluations)
        # Reports have their own slots, so a burst of readers never delays a scheduled evaluation.
        self._reports = threading.BoundedSemaphore(self.limits.max_concurrent_reports)
        self._batch_limits = self._body_limits(self.limits.max_rows_per_batch)
        self._reference_limits = self._body_limits(self.limits.max_window_rows)
        self.rows_accepted: Counter[str] = Counter()
        self.profiles_accepted: Counter[str] = Counter()
        self.rows_rejected: Counter[tuple[str, str]] = Counter()
        self.batches_rejected: Counter[tuple[str, str]] = Counter()
        self.rows_refused_by_column: Counter[tuple[str, str]] = Counter()
        self.labels: Counter[tuple[str, str]] = Counter()  # (model, outcome)
        self.label_delays: dict[str, outcomes.DelayHistogram] = {}
        self.evaluations: Counter[tuple[str, str]] = Counter()
        # the evaluations' series on /metrics
        self.series = series.SeriesBudget(self.limits.max_series, self.limits.most_counter_series())
        self.unusable_intervals: Counter[str] = Counter()  # stored profile intervals evaluations had to leave out
        self.last_success: dict[str, float] = {}
        for name, schema in self.store.models().items():
            if name not in config.models and config.owns(name):
                self._add(config.model_from_schema(name, schema))
        for name, model_config in config.models.items():
            if not config.owns(name):  # another shard's
                continue
            self._add(model_config)
            self.store.put_model(name, model_config.to_json())
            if model_config.reference_file is not None:
                self._load_reference_file(model_config)

    def _body_limits(self, max_rows: int) -> BodyLimits:
        limits = self.limits
        return BodyLimits(max_rows, limits.max_columns, limits.max_decoded_bytes, limits.max_category_length)

    def _add(self, config: ModelConfig) -> _Model:
        model = _Model(config, evaluation.PreparedCache(), threading.Lock(), threading.Lock())
        self._models[config.name] = model
        return model

    def models(self) -> dict[str, ModelConfig]:
        return {name: model.config for name, model in self._models.items()}

    def check_shard(self, name: str) -> None:
        """BadBatch 421 naming the right shard when the model belongs to another instance."""
        config = self.config
        if not config.owns(name):
            shard = shard_of(name, config.shard_count)
            raise BadBatch(421, "wrong_shard", f"model {quoted(name)} belongs to drift service shard {shard} of "
                                               f"{config.shard_count}; this is shard {config.shard_index}",
                           headers={"Fleetscope-Shard": str(shard)})

    def model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            raise KeyError(name)
        return model

    # -- writes ------------------------------------------------------------------------

    @contextmanager
    def write_slot(self) -> Iterator[None]:
        """One of limits.max_concurrent_writes; Overloaded at once when none is free. A write holds
        it from reading its body to storing it, so bodies, decoding and storing together never
        take more memory than the limits allow (README: Security and limits)."""
        if not self._writes.acquire(blocking=False):
            raise Overloaded(f"{self.limits.max_concurrent_writes} writes are in progress "
                             "(limits.max_concurrent_writes); retry shortly", retry_after=1)
        try:
            yield
        finally:
            self._writes.release()
            memory.give_back()  # what a large body took, back to the system once writes pause

    @contextmanager
    def counting_refusals(self, name: str | None) -> Iterator[None]:
        """Counts a write refused for its input or for load, by reason, and lets the refusal through."""
        try:
            yield
        except (BadBatch, Overloaded) as error:
            if not error.counted:  # nested scopes count a refusal once
                error.counted = True
                self.reject(name, error.reason, getattr(error, "rows", None), getattr(error, "column", None))
            raise

    @contextmanager
    def _writing_to(self, name: str, slot_taken: bool) -> Iterator[_Model]:
        """A write to a model this instance holds: refusals counted, a write slot held (unless the caller
        holds one), and BadBatch for another shard's model or one without a schema."""
        with self.counting_refusals(name), (nullcontext() if slot_taken else self.write_slot()):
            self.check_shard(name)
            model = self._models.get(name)
            if model is None:
                raise BadBatch(404, "unknown_model", f"model {quoted(name)} has no schema: declare it in the config or "
                                                     "PUT its reference first")
            yield model

    def ingest(self, name: str, body: bytes, content_type: str, batch_id: str | None = None,
               slot_taken: bool = False) -> RowRange:
        """Validates and stores one batch of outputs; all of it or nothing. A batch id seen before
        for the model stores nothing and answers the rows it was first stored as.

        slot_taken: the caller holds a write_slot() (the HTTP API takes one before reading the body)."""
        with self._writing_to(name, slot_taken) as model:
            limits, config = self._batch_limits, model.config
            table, ids = read_table(body, content_type, limits), None
            if config.quality is not None:
                table, ids = outcomes.without_request_ids(table, config.quality, limits)
            table = conform(table, config.columns, limits)
            rows = outcomes.output_rows(config, table, ids) if ids is not None else None
            stored = self.store.append(name, table, batch_id, rows, digest=Store.digest(body, content_type))
        if not stored.replayed:
            self.rows_accepted[name] += stored.rows
        return stored

    def ingest_profile(self, name: str, body: bytes, replica: str, start: float, seconds: float,
                       segment: str = "", slot_taken: bool = False) -> tuple[int, bool]:
        """Validates a replica's profile of one interval and merges it into the stored one; returns its rows
        and whether it was stored before (a retry or a duplicate, which stores nothing)."""
        with self._writing_to(name, slot_taken) as model:
            config = model.config
            if not config.profiled:
                raise BadBatch(409, "not_profiled", f"model {name!r} takes rows (mode: rows): POST them to "
                                                    f"/v1/models/{name}/outputs, or set mode: profiles")
            if not IDENTIFIER.match(replica):
                raise BadBatch(400, "bad_replica", "replica must be 1-128 letters, digits, '-', '_', '.' or ':'")
            if not (math.isfinite(start) and 1 <= seconds <= MAX_INTERVAL_SECONDS):
                raise BadBatch(400, "bad_interval", f"an interval has a finite start and lasts 1 to "
                                                    f"{MAX_INTERVAL_SECONDS:.0f} seconds")
            if start > self.clock() + MAX_CLOCK_AHEAD_SECONDS:
                raise BadBatch(400, "bad_interval", "the interval starts in the future: check the replica's clock")
            try:
                segment = profiled.parse_segment(config, segment, self.limits.max_category_length)
            except ValueError as error:
                raise BadBatch(400, "bad_segment", str(error)) from None
            checked = _checked_profile(config, body, self.limits)
            stored = self.store.add_profile(name, segment, start, seconds, replica, checked, limits=self.limits)
        if stored:
            self.rows_accepted[name] += checked.rows
            self.profiles_accepted[name] += 1
        return checked.rows, not stored

    def ingest_labels(self, name: str, body: bytes, content_type: str, batch_id: str | None = None,
                      slot_taken: bool = False) -> LabelResult:
        """Joins a batch of ground truth to the model's outputs, or stores it pre-joined; all of it or nothing.
        Labels that join nothing are counted by reason in the result, not refused."""
        with self._writing_to(name, slot_taken) as model:
            config = model.config
            kind, rows = outcomes.read_labels(config, body, content_type, self._batch_limits)
            assert config.quality is not None  # read_labels refuses a model without one
            oldest = self.clock() - config.quality.horizon
            if kind == "joined":
                result = self.store.add_labels(name, rows, oldest, batch_id, digest=Store.digest(body, content_type))
            else:
                latest = self.clock() + MAX_CLOCK_AHEAD_SECONDS
                late = next((index for index, row in enumerate(rows) if row[0] is not None and row[0] > latest), None)
                if late is not None:
                    raise BadBatch(400, "bad_time", f"row {late}, column {outcomes.TIME!r}: the output is dated in "
                                                    "the future; check the sender's clock", len(rows))
                kept = [row for row in rows if row[0] is None or row[0] >= oldest]
                result = self.store.add_joined(name, kept, batch_id, beyond_horizon=len(rows) - len(kept),
                                               digest=Store.digest(body, content_type))
        if not result.replayed:
            for outcome, count in result.counts.items():
                self.labels[name, outcome] += count
            self.label_delays.setdefault(name, outcomes.DelayHistogram()).observe(result.delays)
        return result

    def reject(self, model: str | None, reason: str, rows: int | None, column: str | None = None) -> None:
        """Counts a refused request; names of models the service does not hold (user input,
        unbounded) are all counted as "_unknown". Rows refused for a value of one of the model's
        columns are counted by that column too."""
        label = model if model in self._models else "_unknown"
        self.batches_rejected[label, reason] += 1
        if rows:
            self.rows_rejected[label, reason] += rows
            if column is not None and label != "_unknown" and column in self._models[label].config.columns:
                self.rows_refused_by_column[label, column] += rows

    def put_reference(self, name: str, body: bytes, content_type: str, numerical: list[str] | None = None,
                      categorical: list[str] | None = None, segments: list[str] | None = None,
                      slot_taken: bool = False, mode: str = "rows") -> int:
        """Sets a model's reference; a model not yet known takes its schema from this data. A profile
        (PROFILE_CONTENT_TYPE) may be the reference of a known model fed profiles."""
        model = self._models.get(name)
        with self.counting_refusals(name), (nullcontext() if slot_taken else self.write_slot()):
            self.check_shard(name)
            if model is not None and model.config.rolling_reference is not None:
                raise BadBatch(409, "rolling_reference", f"model {name!r} uses a rolling reference window; "
                                                         "it cannot be set")
            if content_type.split(";")[0].strip().lower() == PROFILE_CONTENT_TYPE:
                return self._put_reference_profile(name, model, body)
            table = read_table(body, content_type, self._reference_limits)
            if model is not None and model.config.quality is not None:  # outputs logged with their request ids
                table, _ = outcomes.without_request_ids(table, model.config.quality, self._reference_limits)
            config = model.config if model is not None else self._new_model_config(name, table, numerical,
                                                                                  categorical, segments, mode)
            table = conform(table, config.columns, self._reference_limits)
            with self._models_lock:
                if model is None:
                    self._check_room()
                self.store.put_reference(name, table, None if model is not None else config.to_json())
                if model is None:
                    self._add(config)
        _log.info("reference set", extra={"model": name, "rows": table.num_rows})
        return table.num_rows

    def _put_reference_profile(self, name: str, model: _Model | None, body: bytes) -> int:
        if model is None or not model.config.profiled:
            raise BadBatch(409, "not_profiled", f"a profile can be the reference of a model fed profiles only; "
                                                f"{'declare' if model is None else 'set mode: profiles for'} "
                                                f"{name!r} in the config")
        checked = _checked_profile(model.config, body, self.limits)
        self.store.put_profile_reference(name, checked)
        _log.info("reference profile set", extra={"model": name, "rows": checked.rows})
        return checked.rows

    def _new_model_config(self, name: str, table, numerical, categorical, segments, mode: str) -> ModelConfig:
        if not MODEL_NAME.match(name):
            raise BadBatch(400, "bad_model_name", f"model name {quoted(name)}: use 1-128 letters, digits, "
                                                  "'_', '.', ':' or '-'")
        self._check_room()
        if len(table.column_names) > self.limits.max_columns:
            raise BadBatch(400, "too_many_columns", f"the reference has {len(table.column_names)} columns; "
                                                    f"limits.max_columns is {self.limits.max_columns}")
        for column in table.column_names:
            if not COLUMN_NAME.match(column):
                raise BadBatch(400, "schema", f"column name {quoted(column)}: use letters, digits, '_', '.', ':' "
                                              "or '-'")
        frame = _as_frame(table)
        declared = set(numerical or ()) | set(categorical or ())
        unknown = declared - set(frame.columns)
        if unknown:
            raise BadBatch(400, "schema", f"declared column(s) {sorted(unknown)} are not in the reference")
        kinds = column_kinds(frame)  # Evidently's inference, overridden by what was declared
        kinds.update({column: ColumnKind.NUMERICAL for column in numerical or ()})
        kinds.update({column: ColumnKind.CATEGORICAL for column in categorical or ()})
        unusable = {column: kind for column, kind in kinds.items()
                    if kind not in (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL)}
        if unusable:
            column, kind = next(iter(unusable.items()))
            raise BadBatch(400, "schema", f"column {quoted(column)} looks like {kind.name.lower()} data, which is not "
                                          "compared: declare it with ?categorical= or ?numerical=, or leave it out")
        schema = {"columns": {column: kind.value for column, kind in kinds.items()}, "segments": list(segments or ()),
                  "mode": mode}
        try:
            return self.config.model_from_schema(name, schema)
        except ValueError as error:
            raise BadBatch(400, "schema", str(error)) from None

    def _check_room(self) -> None:
        if len(self._models) >= self.limits.max_models:
            raise BadBatch(409, "too_many_models", f"the service holds {len(self._models)} models, its limit "
                                                   "(limits.max_models); raise the limit to add more")

    def _load_reference_file(self, config: ModelConfig) -> None:
        path = config.reference_file
        assert path is not None  # called for models configured with a reference file
        suffix = path.suffix.lower()
        content_type = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet",
                        ".json": "application/json", ".arrow": "application/vnd.apache.arrow.file"}.get(suffix)
        if content_type is None:
            raise log.UserError(f"model {config.name}: reference file {path} must be .csv, .parquet, .json or .arrow")
        try:
            body = path.read_bytes()
            table = conform(read_table(body, content_type, self._reference_limits), config.columns,
                            self._reference_limits)
        except OSError as error:
            raise log.UserError(f"model {config.name}: cannot read reference file {path}: {error}") from None
        except BadBatch as error:
            raise log.UserError(f"model {config.name}: reference file {path}: {error.message}") from None
        self.store.put_reference(config.name, table)

    # -- evaluation --------------------------------------------------------------------

    def evaluate(self, name: str, wait: bool = True) -> evaluation.Evaluation:
        model = self.model(name)
        if not (self._evaluations.acquire(timeout=30) if wait else self._evaluations.acquire(blocking=False)):
            raise Overloaded(f"{self.limits.max_concurrent_evaluations} evaluations are running "
                             "(limits.max_concurrent_evaluations); retry shortly", retry_after=5)
        try:
            with model.lock:
                result = self._evaluate(model)
                if model.config.quality is not None:
                    result.model_quality = self._evaluate_quality(model.config, result.evaluated_at)
                admitted = self.series.admit(name, series.blocks(result, self.limits.max_classes))
                result.series_dropped = admitted.dropped
                model.latest, model.series = result, admitted.families
        finally:
            self._evaluations.release()
        self.evaluations[name, result.outcome] += 1
        self.unusable_intervals[name] += result.unusable_intervals
        if result.outcome == "success":
            self.last_success[name] = result.evaluated_at
        return result

    def _evaluate(self, model: _Model) -> evaluation.Evaluation:
        config, now, started = model.config, self.clock(), time.perf_counter()
        outcome = evaluation.Evaluation(config.name, now, "no_data", profiled=config.profiled)
        try:
            if config.profiled:
                self._evaluate_profiles(model, now, outcome)
                outcome.duration = time.perf_counter() - started
                return outcome
            outcome.current = windows.current_rows(self.store, config.name, config.window, now,
                                                   self.limits.max_window_rows)
            current = self._frame(config, outcome.current)
            if config.rolling_reference is not None:
                outcome.reference = windows.rolling_reference_rows(self.store, config.name, config.rolling_reference,
                                                                   now, self.limits.max_window_rows)
                reference, version, cache = self._frame(config, outcome.reference), None, None
            else:
                (reference, version), cache = self._fixed_reference(model), model.cache
            if current is None or len(current) == 0:
                outcome.message = "the current window has no rows"
            elif reference is None or len(reference) == 0:
                outcome.message = ("the reference window has no rows" if config.rolling_reference
                                   else "no reference: PUT /v1/models/{model}/reference or name a file in the config")
            else:
                evaluation.run(config, current, reference, self.limits.max_segments, cache, version, outcome)
        except Exception as error:  # an evaluation must never take the service down
            _log.exception("evaluation failed", extra={"model": config.name})
            # the exception's text stays in the log: it may name files and internals
            outcome.outcome = "error"
            outcome.message = f"the evaluation failed ({type(error).__name__}); the service's log has the details"
        outcome.duration = time.perf_counter() - started
        return outcome

    def _evaluate_quality(self, config: ModelConfig, now: float) -> outcomes.WindowQuality | None:
        try:
            return outcomes.evaluate(self.store, config, now, self.limits.max_segments)
        except Exception:  # as with drift: the service stays up, the log says why
            _log.exception("model quality evaluation failed", extra={"model": config.name})
            return None

    def _evaluate_profiles(self, model: _Model, now: float, outcome: evaluation.Evaluation) -> None:
        config = model.config
        since, until = windows.current_times(config.window, now)
        window = self.store.profiles_between(config.name, since, until)
        current, outcome.unusable_intervals = window.segments, window.unusable
        if config.rolling_reference is not None:
            rolling = self.store.profiles_between(config.name, *windows.rolling_times(config.rolling_reference, now))
            reference = {label: found for label, (found, _) in rolling.segments.items()}
            outcome.unusable_intervals += rolling.unusable
            outcome.reference = RowRange(0, 0)
        else:
            reference = self._fixed_reference_profiles(model)
        if not current:
            outcome.message = "the current window has no profiles"
        elif not reference:
            outcome.message = ("the reference window has no profiles" if config.rolling_reference else
                               "no reference: PUT /v1/models/{model}/reference (rows or a profile) or name a file")
        else:
            profiled.run(config, current, reference, self.limits.max_segments, outcome)

    def _fixed_reference_profiles(self, model: _Model) -> dict[str, Profile]:
        """The reference as profiles per segment: a profile put as the reference, or rows profiled once."""
        config = model.config
        put = self.store.profile_reference(config.name)
        version = ("profile", put[0]) if put is not None else ("rows", self.store.reference_version(config.name))
        if model.reference_profiles is None or model.reference_profiles[0] != version:
            if put is not None:
                found = {profiled.WHOLE: put[1]}
            else:
                frame, _ = self._fixed_reference(model)
                found = {} if frame is None or len(frame) == 0 else profiled.reference_profiles(config, frame)
            model.reference_profiles = (version, found)
        return model.reference_profiles[1]

    def _frame(self, config: ModelConfig, rows: RowRange) -> pd.DataFrame | None:
        if rows.rows == 0:
            return None
        table = self.store.read(config.name, rows, list(config.columns))
        return None if table is None else _as_frame(table)

    def _fixed_reference(self, model: _Model) -> tuple[pd.DataFrame | None, float | None]:
        """The model's set reference and its version; read from the store only when it changed."""
        config = model.config
        version = self.store.reference_version(config.name)
        if version is None:
            return None, None

        def load() -> pd.DataFrame:
            stored = self.store.reference(config.name)
            assert stored is not None  # its version was just read
            return _as_frame(stored[1].select(list(config.columns)))

        return model.cache.frame(version, load), version

    def report(self, name: str) -> SafeReport:
        """Evidently's HTML report of the windows the latest evaluation compared."""
        model = self.model(name)
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
                model.report = (latest.evaluated_at, self._build_report(model, latest))
            return model.report[1]
        finally:
            model.report_lock.release()

    def _build_report(self, model: _Model, latest: evaluation.Evaluation) -> SafeReport:
        assert latest.result is not None  # reports are built for successful evaluations only
        if not self._reports.acquire(timeout=REPORT_WAIT_SECONDS):
            raise Overloaded("reports are busy (limits.max_concurrent_reports)", retry_after=5)
        try:
            config = model.config
            if latest.samples is not None:
                reference, current = (sample.frame() for sample in latest.samples if sample is not None)
            else:
                current = self._frame(config, latest.current)
                if latest.reference is not None:
                    reference = self._frame(config, latest.reference)
                else:
                    reference, _ = self._fixed_reference(model)
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
            self._reports.release()

    def run_due(self) -> None:
        """Evaluates every model whose interval has passed (the scheduler calls this)."""
        now = self.clock()
        for name, model in list(self._models.items()):
            interval = model.config.evaluation_interval or self.config.evaluation_interval
            if now >= model.next_due:
                model.next_due = now + interval
                try:
                    self.evaluate(name, wait=False)
                except Overloaded:
                    model.next_due = now + 1

    def ready(self) -> bool:
        """True while the store answers: the models and references it holds are loaded at start-up."""
        return self.store.readable()

    def compact(self) -> int:
        self.store.roll_up(self.clock() - self.config.profile_rollup_after)
        deleted = self.store.compact(self.config.retention)
        if deleted:
            _log.info("retention compaction", extra={"batches_deleted": deleted})
        return deleted

    def close(self) -> None:
        self.store.close()


def _as_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


def _checked_profile(config: ModelConfig, body: bytes, limits: Limits) -> Profile:
    """A profile read and declared as the model's columns are, its segment columns (constant within a segment)
    left out; BadBatch naming what is wrong with it."""
    try:
        received = Profile.from_bytes(body)
        received.columns = {name: column for name, column in received.columns.items() if name not in config.segments}
        return as_declared(received, profiled.compared_kinds(config), limits.max_category_length,
                           limits.max_profile_rows)
    except ProfileError as error:
        raise BadBatch(400, "bad_profile", str(error)) from None
