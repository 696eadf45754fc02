"""A model's fixed reference: rows or a profile PUT over HTTP, or a file named in the config; a model not yet
known takes its schema from the rows it is first given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from fleetscope import log
from fleetscope.drift.columns import ColumnKind, value_rules
from fleetscope.drift.comparison import column_kinds
from fleetscope.drift.service import outcomes, replica_profiles
from fleetscope.drift.service.config import COLUMN_NAME, MODEL_NAME, ModelConfig
from fleetscope.drift.service.decode import BadBatch, conform, read_table
from fleetscope.drift.text_descriptors import DESCRIPTORS
from fleetscope.log import quoted

if TYPE_CHECKING:
    from fleetscope.drift.service.model_state import ModelState
    from fleetscope.drift.service.service import DriftService

_log = log.get("fleetscope.drift")
FILE_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet", ".json": "application/json",
              ".arrow": "application/vnd.apache.arrow.file"}


def put(service: DriftService, name: str, body: bytes, content_type: str, numerical: list[str] | None = None,
        categorical: list[str] | None = None, segments: list[str] | None = None, slot_taken: bool = False,
        mode: str = "rows", embedding: list[str] | None = None, text: list[str] | None = None) -> int:
    """Sets a model's reference; a model not yet known takes its schema from this data, with the kinds declared
    here (numerical, categorical, embedding, text) over those inferred. A profile (PROFILE_CONTENT_TYPE) may be the
    reference of a known model fed profiles."""
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
            declared = {ColumnKind.NUMERICAL: numerical, ColumnKind.CATEGORICAL: categorical,
                        ColumnKind.EMBEDDING: embedding, ColumnKind.TEXT: text}
            config, table = _new_model(service, name, table, declared, segments, mode)
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
    found = {} if reference is None else vector_dimensions({name: ColumnKind.EMBEDDING for name in undeclared},
                                                           reference)
    model.reference_columns = value_rules(model.config.columns).with_reference(found) if found else None


def restore_reference_dimensions(service: DriftService, model: ModelState) -> None:
    """expect_reference_dimensions() of the stored reference, at start-up (its schema only is read)."""
    if undeclared_embeddings(model.config.columns):
        expect_reference_dimensions(model, service.store.reference_schema(model.config.name))


DECLARED_AS = {ColumnKind.NUMERICAL: "numerical", ColumnKind.CATEGORICAL: "categorical",
               ColumnKind.EMBEDDING: "embedding", ColumnKind.TEXT: "text"}  # the query parameter of each kind


def _new_model(service: DriftService, name: str, table, declared: Mapping[ColumnKind, list[str] | None],
               segments: list[str] | None, mode: str) -> tuple[ModelConfig, pa.Table]:
    """The config of a model created by its first reference, and the reference conformed to it. An embedding
    column's dimension is the reference's vectors' length, kept as declared: outputs of another are refused."""
    schema = _new_model_schema(service, name, table, declared, segments, mode)
    config = _config_of(service, name, schema)
    conformed = conform(table, config.columns, service.reference_limits)
    dimensions = vector_dimensions(config.columns, conformed.schema)
    if dimensions:
        config = _config_of(service, name, {**schema, "dimensions": dimensions})
    return config, conformed


def _new_model_schema(service: DriftService, name: str, table, declared: Mapping[ColumnKind, list[str] | None],
                      segments: list[str] | None, mode: str) -> dict:
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
    kinds_declared: dict[str, ColumnKind] = {}
    for kind, columns in declared.items():
        for column in columns or ():
            if kinds_declared.get(column, kind) is not kind:
                raise BadBatch(400, "schema", f"column {quoted(column)} is declared both "
                                              f"{DECLARED_AS[kinds_declared[column]]} and {DECLARED_AS[kind]}")
            kinds_declared[column] = kind
    unknown = set(kinds_declared) - set(table.column_names)
    if unknown:
        raise BadBatch(400, "schema", f"declared column(s) {sorted(unknown)} are not in the reference")
    # Evidently's inference, of the columns not declared
    kinds = column_kinds(_frame(table, [column for column in table.column_names if column not in kinds_declared]))
    unusable = {column: kind for column, kind in kinds.items()
                if kind not in (ColumnKind.NUMERICAL, ColumnKind.CATEGORICAL)}
    if unusable:
        column, kind = next(iter(unusable.items()))
        raise BadBatch(400, "schema", f"column {quoted(column)} looks like {kind.name.lower()} data, which is only "
                                      "compared where declared: declare it with ?text=, ?embedding= (vectors), "
                                      "?categorical= or ?numerical=, or leave it out")
    kinds.update(kinds_declared)
    kinds = {column: kinds[column] for column in table.column_names}
    texts = sum(kind is ColumnKind.TEXT for kind in kinds.values())
    if len(kinds) + len(DESCRIPTORS) * texts > max_columns:
        raise BadBatch(400, "too_many_columns", f"the reference's {len(kinds)} columns compare as "
                                                f"{len(kinds) + len(DESCRIPTORS) * texts} (each text column is "
                                                f"itself and {len(DESCRIPTORS)} descriptors); limits.max_columns "
                                                f"is {max_columns}")
    return {"columns": {column: kind.value for column, kind in kinds.items()}, "segments": list(segments or ()),
            "mode": mode}


def _frame(table, columns: list[str]) -> pd.DataFrame:
    """Some of a table's columns in pandas (a JSON body's as the values it sent)."""
    if isinstance(table, pa.Table):
        return table.select(columns).to_pandas()
    return pd.DataFrame({column: list(table[column]) for column in columns})


def _config_of(service: DriftService, name: str, schema: Mapping) -> ModelConfig:
    try:
        return service.config.model_from_schema(name, schema)
    except ValueError as error:
        raise BadBatch(400, "schema", str(error)) from None


def vector_dimensions(columns: Mapping[str, ColumnKind], schema: pa.Schema) -> dict[str, int]:
    """The dimension of each embedding column in a conformed table's schema (its fixed-size lists' length)."""
    return {name: schema.field(name).type.list_size for name, kind in columns.items()
            if kind is ColumnKind.EMBEDDING and name in schema.names
            and pa.types.is_fixed_size_list(schema.field(name).type)}


def _check_room(service: DriftService) -> None:
    if len(service.held) >= service.limits.max_models:
        raise BadBatch(409, "too_many_models", f"the service holds {len(service.held)} models, its limit "
                                               "(limits.max_models); raise the limit to add more")
