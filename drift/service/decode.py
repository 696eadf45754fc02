"""Request bodies into Arrow tables of a model's schema, or a BadBatch that says what is wrong.

Numerical columns become float64, categorical columns strings (integers and booleans are
written as text, so a reference read from CSV and outputs sent as JSON agree). Null is a
missing value; NaN and infinity are refused, because Evidently would silently drop them and
a model that emits them has a bug someone should see. A batch is validated whole before
anything is stored: one bad value refuses the batch.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from fleetscope.drift.columns import ColumnKind

JSON = "application/json"
CSV = "text/csv"
PARQUET = ("application/vnd.apache.parquet", "application/x-parquet")
ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
ACCEPTED_TYPES = (JSON, CSV, *PARQUET, ARROW_STREAM, ARROW_FILE)


class BadBatch(Exception):
    def __init__(self, status: int, reason: str, message: str, rows: int | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.rows = status, reason, message, rows


def read_table(body: bytes, content_type: str) -> pa.Table:
    """Any accepted body as an Arrow table, columns as sent (JSON values stay Python objects)."""
    media_type = content_type.split(";")[0].strip().lower()
    if not body:
        raise BadBatch(400, "empty", "the body is empty: send at least one row")
    try:
        if media_type == JSON:
            return _json_table(body)
        if media_type == CSV:
            import pyarrow.csv as csv
            return csv.read_csv(io.BytesIO(body))
        if media_type in PARQUET:
            import pyarrow.parquet as parquet
            return parquet.read_table(io.BytesIO(body))
        if media_type == ARROW_STREAM:
            return pa.ipc.open_stream(body).read_all()
        if media_type == ARROW_FILE:
            return pa.ipc.open_file(pa.py_buffer(body)).read_all()
    except BadBatch:
        raise
    except (pa.ArrowException, ValueError, OSError) as error:
        raise BadBatch(400, "malformed", f"cannot read the {media_type} body: {error}") from None
    raise BadBatch(415, "unsupported_media_type",
                   f"Content-Type {content_type or '(none)'} is not accepted; send one of {', '.join(ACCEPTED_TYPES)}")


class _Values(list):
    """A JSON column's values, kept as Python objects until the schema says what they must be."""


def _json_table(body: bytes) -> pa.Table:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadBatch(400, "malformed", f"the body is not valid JSON: {error}") from None
    if isinstance(document, Mapping) and set(document) == {"columns"}:
        return _json_columns(document["columns"])
    if isinstance(document, Mapping) and set(document) == {"rows"}:
        document = document["rows"]
    if not isinstance(document, list):
        raise BadBatch(400, "malformed", 'send a JSON list of rows, {"rows": [...]} or {"columns": {name: [...]}}')
    return _json_rows(document)


def _json_rows(rows: list) -> pa.Table:
    if not rows:
        raise BadBatch(400, "empty", "the batch has no rows")
    names: list[str] | None = None
    values: dict[str, _Values] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise BadBatch(400, "malformed", f"row {index}: expected an object of column: value")
        if names is None:
            names = list(row)
            values = {name: _Values() for name in names}
        elif len(row) != len(names) or any(name not in values for name in row):
            extra = next((name for name in row if name not in values), None)
            if extra is not None:
                raise BadBatch(400, "schema", f"row {index}: column {extra!r} is not in row 0; every row "
                                              "must have the same columns", len(rows))
            missing = next(name for name in names if name not in row)
            raise BadBatch(400, "schema", f"row {index}: missing column {missing!r} (send null where there is "
                                          "no value)", len(rows))
        for name, value in row.items():
            values[name].append(value)
    return _ObjectTable(values)


def _json_columns(columns: object) -> pa.Table:
    if not isinstance(columns, Mapping) or not columns:
        raise BadBatch(400, "malformed", '"columns" must map each column name to a list of values')
    lengths = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise BadBatch(400, "malformed", f"column {name!r}: expected a list of values")
        lengths[name] = len(values)
    if len(set(lengths.values())) != 1:
        first = next(iter(lengths))
        other = next(name for name, length in lengths.items() if length != lengths[first])
        raise BadBatch(400, "schema", f"column {other!r} has {lengths[other]} values but column {first!r} has "
                                      f"{lengths[first]}; columns must be the same length")
    if not next(iter(lengths.values())):
        raise BadBatch(400, "empty", "the batch has no rows")
    return _ObjectTable({name: _Values(values) for name, values in columns.items()})


class _ObjectTable(dict):
    """JSON columns not yet typed (a dict of name -> _Values), with the table attributes used below."""

    @property
    def column_names(self) -> list[str]:
        return list(self)

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.values())))

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame({name: list(values) for name, values in self.items()})


def conform(table: pa.Table | _ObjectTable, columns: Mapping[str, ColumnKind], max_rows: int,
            max_category_length: int) -> pa.Table:
    """The table with exactly the schema's columns and types, or BadBatch naming the problem."""
    rows = table.num_rows
    if rows == 0:
        raise BadBatch(400, "empty", "the batch has no rows")
    if rows > max_rows:
        raise BadBatch(413, "too_many_rows", f"the batch has {rows} rows and the limit is {max_rows}: "
                                             "send it in smaller batches", rows)
    names = table.column_names
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise BadBatch(400, "schema", f"unknown column {unknown[0]!r}; this model's columns are "
                                      f"{', '.join(columns)}", rows)
    missing = [name for name in columns if name not in names]
    if missing:
        raise BadBatch(400, "schema", f"missing column {missing[0]!r} (send null where there is no value)", rows)
    arrays = {}
    for name, kind in columns.items():
        column = table[name]
        if kind is ColumnKind.NUMERICAL:
            arrays[name] = _numerical(name, column, rows)
        else:
            arrays[name] = _categorical(name, column, rows, max_category_length)
    return pa.table(arrays)


def _numerical(name: str, column, rows: int) -> pa.Array:
    if isinstance(column, _Values):
        for index, value in enumerate(column):
            kind = type(value)
            if value is None or kind is int:
                continue
            if kind is not float:
                raise BadBatch(400, "schema", f"row {index}, column {name!r}: {_describe(value)} is not a number "
                                              "(numerical column; null for no value)", rows)
            if not math.isfinite(value):
                raise BadBatch(400, "not_finite", f"row {index}, column {name!r}: {value} is not accepted; send "
                                                  "null for a missing value", rows)
        try:
            return pa.array(column, type=pa.float64())
        except (pa.ArrowException, OverflowError) as error:
            raise BadBatch(400, "schema", f"column {name!r}: {error}", rows) from None
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_null(column.type)):
        raise BadBatch(400, "schema", f"column {name!r} holds {column.type} but is a numerical column", rows)
    values = column.cast(pa.float64())
    finite = pc.fill_null(pc.is_finite(values), True)
    if not pc.all(finite).as_py():
        index = pc.index(finite, False).as_py()
        raise BadBatch(400, "not_finite", f"row {index}, column {name!r}: {values[index].as_py()} is not accepted; "
                                          "send null for a missing value", rows)
    return values


def _categorical(name: str, column, rows: int, max_length: int) -> pa.Array:
    if isinstance(column, _Values):
        texts = []
        for index, value in enumerate(column):
            kind = type(value)
            if value is None or kind is str:
                texts.append(value)
            elif kind is bool:
                texts.append("true" if value else "false")
            elif kind is int:
                texts.append(str(value))
            else:
                raise BadBatch(400, "schema", f"row {index}, column {name!r}: {_describe(value)} is not a category "
                                              "(categorical values are strings, integers or booleans)", rows)
        values = pa.array(texts, type=pa.string())
    else:
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if pa.types.is_boolean(column.type):
            values = pc.if_else(column, "true", "false")
        elif pa.types.is_integer(column.type) or pa.types.is_string(column.type) or \
                pa.types.is_large_string(column.type) or pa.types.is_null(column.type):
            values = column.cast(pa.string())
        else:
            raise BadBatch(400, "schema", f"column {name!r} holds {column.type} but is a categorical column "
                                          "(strings, integers or booleans)", rows)
    lengths = pc.fill_null(pc.utf8_length(values), 0)
    if pc.max(lengths).as_py() > max_length:
        index = pc.index(pc.greater(lengths, max_length), True).as_py()
        raise BadBatch(400, "too_long", f"row {index}, column {name!r}: a category of {lengths[index].as_py()} "
                                        f"characters; the limit is {max_length}", rows)
    return values


def _describe(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, list, dict, bool, float, int)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
