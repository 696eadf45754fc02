"""A model's fixed reference: rows or a profile PUT over HTTP, or a file named in the config; a model not yet
known takes its schema from the rows it is first given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

from fleetscope import log
from fleetscope.drift.columns import ColumnKind, value_rules
from fleetscope.drift.comparison import column_kinds
from fleetscope.drift.service import outcomes, replica_profiles
from fleetscope.drift.service.config import COLUMN_NAME, MODEL_NAME, ModelConfig
from fleetscope.drift.service.decode import BadBatch, conform, read_table
from fleetscope.log import quoted

if TYPE_CHECKING:
    from fleetscope.drift.service.model_state import ModelState
    from fleetscope.drift.service.service import DriftService

_log = log.get("fleetscope.drift")
FILE_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet", ".json": "application/json",
              ".arrow": "application/vnd.apache.arrow.file"}


def put(service: DriftService, name: str, body: bytes, content_type: str, numerical: list[str] | None = None,
        categorical: list[str] | None = None, segments: list[str] | None = None, slot_taken: bool = False,
        mode: str = "rows") -> int:
    """Sets a model's reference; a model not yet known takes its schema from this data. A profile
    (PROFILE_CONTENT_TYPE) may be the reference of a known model fed profiles."""
    model, limits = service.held.get(name), service.reference_limits
    with service.writes.refusals_and_slot(name, slot_taken):
        if model is not None and model.config.rolling_reference is not None:
            raise BadBatch(409, "rolling_reference", f"model {name!r} uses a rolling reference window; "
                                                     "it cannot be set")
        if content_type.split(";")[0].strip().lower() == replica_profiles.PROFILE_CONTENT_TYPE:
            return replica_profiles.put_reference(service, name, model, body)
        table = read_table(body, content_type, limits)
        if model is not None:  # outputs logged with their request ids (model quality) leave them out
            table, _ = outcomes.conform_outputs(model.config, table, limits)
        else:
            config = _new_model_config(service, name, table, numerical, categorical, segments, mode)
            table = conform(table, config.columns, limits)
        with service.models_lock:
            if model is None:
                _check_room(service)
            service.store.put_reference(name, table, None if model is not None else config.to_json())
            if model is None:
                model = service.hold(config)
            expect_reference_dimensions(model, table.schema)
    _log.info("reference set", extra={"model": name, "rows": table.num_rows})
    return table.num_rows


def load_file(service: DriftService, config: ModelConfig) -> None:
    """The reference file named in the model's config, stored as its reference; log.UserError saying what is
    wrong with it."""
    path, limits = config.reference_file, service.reference_limits
    assert path is not None  # called for models configured with a reference file
    content_type = FILE_TYPES.get(path.suffix.lower())
    if content_type is None:
        raise log.UserError(f"model {config.name}: reference file {path} must be .csv, .parquet, .json or .arrow")
    vectors = [name for name, kind in config.columns.items() if kind is ColumnKind.EMBEDDING]
    if content_type == FILE_TYPES[".csv"] and vectors:
        # A CSV cell holds text, and reading a vector back out of it would be a second, looser decoder.
        raise log.UserError(f"model {config.name}: reference file {path}: a CSV file cannot hold the vectors of "
                            f"embedding column {quoted(vectors[0])}; write the reference as .parquet, .json or "
                            ".arrow")
    try:
        body = path.read_bytes()
        table = conform(read_table(body, content_type, limits), config.columns, limits)
    except OSError as error:
        raise log.UserError(f"model {config.name}: cannot read reference file {path}: {error}") from None
    except BadBatch as error:
        raise log.UserError(f"model {config.name}: reference file {path}: {error.message}") from None
    service.store.put_reference(config.name, table)
    expect_reference_dimensions(service.held[config.name], table.schema)


def undeclared_embeddings(columns: Mapping[str, ColumnKind]) -> list[str]:
    """The embedding columns whose dimension the config leaves to the reference."""
    declared = value_rules(columns).dimensions
    return [name for name, kind in columns.items() if kind is ColumnKind.EMBEDDING and name not in declared]


def expect_reference_dimensions(model: ModelState, reference: pa.Schema | None) -> None:
    """From now on, outputs of each embedding column that declares no dimension must have the vectors' length of
    the reference whose (conformed) schema this is: read once, when the reference is set or the service starts."""
    undeclared = undeclared_embeddings(model.config.columns)
    found = {} if reference is None else {
        name: reference.field(name).type.list_size for name in undeclared
        if name in reference.names and pa.types.is_fixed_size_list(reference.field(name).type)}
    model.reference_columns = value_rules(model.config.columns).with_reference(found) if found else None


def restore_reference_dimensions(service: DriftService, model: ModelState) -> None:
    """expect_reference_dimensions() of the stored reference, at start-up (its schema only is read)."""
    if undeclared_embeddings(model.config.columns):
        expect_reference_dimensions(model, service.store.reference_schema(model.config.name))


def _new_model_config(service: DriftService, name: str, table, numerical: list[str] | None,
                      categorical: list[str] | None, segments: list[str] | None, mode: str) -> ModelConfig:
    if not MODEL_NAME.match(name):
        raise BadBatch(400, "bad_model_name", f"model name {quoted(name)}: use 1-128 letters, digits, "
                                              "'_', '.', ':' or '-'")
    _check_room(service)
    max_columns = service.limits.max_columns
    if len(table.column_names) > max_columns:
        raise BadBatch(400, "too_many_columns", f"the reference has {len(table.column_names)} columns; "
                                                f"limits.max_columns is {max_columns}")
    for column in table.column_names:
        if not COLUMN_NAME.match(column):
            raise BadBatch(400, "schema", f"column name {quoted(column)}: use letters, digits, '_', '.', ':' "
                                          "or '-'")
    frame = table.to_pandas()
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
        return service.config.model_from_schema(name, schema)
    except ValueError as error:
        raise BadBatch(400, "schema", str(error)) from None


def _check_room(service: DriftService) -> None:
    if len(service.held) >= service.limits.max_models:
        raise BadBatch(409, "too_many_models", f"the service holds {len(service.held)} models, its limit "
                                               "(limits.max_models); raise the limit to add more")
