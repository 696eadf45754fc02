"""Request bodies into Arrow tables of a model's schema, or a BadBatch that says what is wrong.

Numerical columns become float64, categorical columns strings (integers and booleans are
written as text, so a reference read from CSV and outputs sent as JSON agree). Null is a
missing value; NaN and infinity are refused, because Evidently would silently drop them and
a model that emits them has a bug someone should see. A batch is validated whole before
anything is stored: one bad value refuses the batch.

An embedding column's vectors (JSON arrays of numbers, Arrow fixed-size or plain lists of numbers) become
fixed-size lists of float64, all of one length (the declared dimension, or the batch's first vector's), no longer
than limits.max_embedding_dimensions, every component finite; null is a missing vector. A text column's values
are strings of at most limits.max_text_length characters.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fleetscope.drift.columns import DEFAULT_MAX_TEXT_LENGTH, ColumnKind, category_text, value_rules
from fleetscope.drift.service import arrow_ipc
from fleetscope.log import quoted

JSON = "application/json"
CSV = "text/csv"
PARQUET = ("application/vnd.apache.parquet", "application/x-parquet")
ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
ACCEPTED_TYPES = (JSON, CSV, *PARQUET, ARROW_STREAM, ARROW_FILE)


class BadBatch(Exception):
    counted = False  # set once a refusal is counted, so that nested scopes count it once

    def __init__(self, status: int, reason: str, message: str, rows: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.rows = status, reason, message, rows
        self.headers = headers  # for the answer, e.g. Connection: close where the body was not read whole
        self.column: str | None = None  # the column whose value was refused (its type, range or length)


@dataclass(frozen=True)
class BodyLimits:
    """What one body may declare, checked before it is expanded."""
    max_rows: int
    max_columns: int
    max_decoded_bytes: int
    max_category_length: int
    max_text_length: int = DEFAULT_MAX_TEXT_LENGTH


def read_table(body: bytes, content_type: str, limits: BodyLimits) -> pa.Table | _ObjectTable:
    """Any accepted body as an Arrow table, columns as sent (JSON values stay Python objects).

    Sizes the body declares (rows, columns, decoded bytes) are checked before anything is
    expanded, binary formats are validated in full, and anything the body makes a reader
    raise is a 400, never a crash or a 5xx."""
    media_type = content_type.split(";")[0].strip().lower()
    if not body:
        raise BadBatch(400, "empty", "the body is empty: send at least one row")
    try:
        if media_type == JSON:
            return _json_table(body, limits)
        if media_type == CSV:
            return _csv_table(body, limits)
        if media_type in PARQUET:
            return _parquet_table(body, limits)
        if media_type in (ARROW_STREAM, ARROW_FILE):
            ipc_limits = arrow_ipc.IpcLimits(limits.max_rows, limits.max_decoded_bytes)
            read = arrow_ipc.read_stream if media_type == ARROW_STREAM else arrow_ipc.read_file
            return _checked_shape(read(body, ipc_limits), limits)
    except BadBatch:
        raise
    except arrow_ipc.IpcRefused as refused:
        raise BadBatch(_STATUS[refused.reason], refused.reason, str(refused)) from None
    except (pa.ArrowException, ValueError, OSError, IndexError, TypeError) as error:
        raise BadBatch(400, "malformed", f"cannot read the {media_type} body: {_clip(str(error))}") from None
    raise BadBatch(415, "unsupported_media_type",
                   f"Content-Type {_clip(content_type) or '(none)'} is not accepted; send one of "
                   f"{', '.join(ACCEPTED_TYPES)}")


_STATUS = {"malformed": 400, "too_many_rows": 413, "too_large": 413}


def _checked_shape(table: pa.Table, limits: BodyLimits) -> pa.Table:
    if table.num_columns > limits.max_columns:
        raise BadBatch(400, "too_many_columns", f"the body has {table.num_columns} columns; the limit is "
                                                f"{limits.max_columns} (limits.max_columns)")
    if table.num_rows > limits.max_rows:
        raise _too_many_rows(table.num_rows, limits.max_rows)
    _check_expansion(table, limits)
    return table


def _too_many_rows(rows: int, limit: int) -> BadBatch:
    return BadBatch(413, "too_many_rows", f"the batch has {rows} rows and the limit is {limit}: "
                                          "send it in smaller batches", rows)


def _csv_table(body: bytes, limits: BodyLimits) -> pa.Table:
    import pyarrow.csv as csv

    header = body[:body.find(b"\n")] if b"\n" in body else body
    if header.count(b",") >= limits.max_columns:
        raise BadBatch(400, "too_many_columns", f"the CSV header names more than {limits.max_columns} columns "
                                                "(limits.max_columns)")
    # Only an empty field is missing: pyarrow's default also reads "nan", "NA" and "null" as null,
    # which would let a NaN that JSON refuses slip in through CSV.
    options = csv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    return _checked_shape(csv.read_csv(io.BytesIO(body), convert_options=options), limits)


def _parquet_table(body: bytes, limits: BodyLimits) -> pa.Table:
    import pyarrow.parquet as parquet

    source = pa.BufferReader(body)
    bounds = {"thrift_string_size_limit": len(body), "thrift_container_size_limit": 100_000}
    metadata = parquet.ParquetFile(source, **bounds).metadata
    if metadata.num_columns > limits.max_columns:
        raise BadBatch(400, "too_many_columns", f"the Parquet file has {metadata.num_columns} columns; the limit "
                                                f"is {limits.max_columns} (limits.max_columns)")
    if metadata.num_rows > limits.max_rows:
        raise _too_many_rows(metadata.num_rows, limits.max_rows)
    declared = sum(max(0, metadata.row_group(index).total_byte_size) for index in range(metadata.num_row_groups))
    if declared > limits.max_decoded_bytes:
        raise BadBatch(413, "too_large", f"the Parquet file decodes to {declared} bytes; the limit is "
                                         f"{limits.max_decoded_bytes} (limits.max_decoded_bytes)")
    schema = metadata.schema.to_arrow_schema()
    # Text columns stay dictionary-encoded, so a short dictionary repeated over many rows is
    # checked (_check_expansion) before it is expanded.
    text = [field.name for field in schema if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)]
    table = parquet.ParquetFile(pa.BufferReader(body), metadata=metadata, read_dictionary=text, **bounds).read()
    table.validate(full=True)
    return _checked_shape(table, limits)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Values(list):
    """A JSON column's values, kept as Python objects until the schema says what they must be."""


def _json_table(body: bytes, limits: BodyLimits) -> _ObjectTable:
    _check_json_containers(body, limits)
    try:
        document = json.loads(body)
    except RecursionError:
        raise BadBatch(400, "too_deep", "the JSON body nests too deeply: send rows of column: value") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of thousands of digits
        raise BadBatch(400, "malformed", f"the body is not valid JSON: {_clip(str(error))}") from None
    if isinstance(document, Mapping) and set(document) == {"columns"}:
        return _json_columns(document["columns"])
    if isinstance(document, Mapping) and set(document) == {"rows"}:
        document = document["rows"]
    if not isinstance(document, list):
        raise BadBatch(400, "malformed", 'send a JSON list of rows, {"rows": [...]} or {"columns": {name: [...]}}')
    return _json_rows(document)


# An embedding's vector is a JSON array: one more container per row and embedding column, allowed for every
# this many bytes of body (a vector of 384 components takes at least 768 bytes; one that needs more containers
# than this allows is sent as Arrow). Parsed, an array of a few components takes about this many bytes too.
BODY_BYTES_PER_VECTOR = 256


def _check_json_containers(body: bytes, limits: BodyLimits) -> None:
    """Refuses, before parsing, a body with more objects and arrays than any batch within the
    limits has (one per row, one per column and a few around them, and embeddings' vectors at most one per
    BODY_BYTES_PER_VECTOR bytes): parsed, each costs hundreds of bytes, so 16 MB of `[{"c":[]},...]` would take
    half a gigabyte."""
    allowed = limits.max_rows + limits.max_columns + 4 + len(body) // BODY_BYTES_PER_VECTOR
    if body.count(b"[") + body.count(b"{") <= allowed:
        return  # the common case: an upper bound, since brackets inside strings count too
    containers = _containers_outside_strings(body)
    if containers > allowed:
        raise BadBatch(413, "too_many_rows", f"the JSON body holds {containers} objects and arrays; a batch of "
                                             f"at most {limits.max_rows} rows and {limits.max_columns} columns "
                                             f"holds at most {allowed}: send smaller batches")


_QUOTE, _OPEN_LIST, _OPEN_OBJECT = ord('"'), ord("["), ord("{")


def _containers_outside_strings(body: bytes, chunk: int = 1 << 20) -> int:
    """The '[' and '{' of a JSON text that are not inside strings, in a few megabytes beyond the
    body (and a copy of it where it holds escapes), at numpy speed.

    Escapes first: in a valid text a backslash occurs only in strings and escapes the byte after
    it, so dropping escaped backslashes (pairwise, from the left) and then escaped quotes leaves
    only the quotes that open and close strings. A bracket is then outside strings where the
    quotes before it are even in number."""
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    data = np.frombuffer(body, dtype=np.uint8)
    count, inside = 0, 0
    for start in range(0, len(data), chunk):
        part = data[start:start + chunk]
        # uint8 wraps past 255, which keeps the parity that is all that matters here
        parity = (np.cumsum(part == _QUOTE, dtype=np.uint8) + inside) & 1
        count += int(np.count_nonzero(((part == _OPEN_LIST) | (part == _OPEN_OBJECT)) & (parity == 0)))
        inside = int(parity[-1])
    return count


def _json_rows(rows: list) -> pa.Table:
    if not rows:
        raise BadBatch(400, "empty", "the batch has no rows")
    names: list[str] | None = None
    values: dict[str, _Values] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise BadBatch(400, "malformed", f"row {index}: expected an object of column: value")
        if names is None:
            if not row:
                raise BadBatch(400, "schema", "row 0 has no columns: send each row as an object of column: value")
            names = list(row)
            values = {name: _Values() for name in names}
        elif len(row) != len(names) or any(name not in values for name in row):
            extra = next((name for name in row if name not in values), None)
            if extra is not None:
                raise BadBatch(400, "schema", f"row {index}: column {quoted(extra)} is not in row 0; every row "
                                              "must have the same columns", len(rows))
            missing = next(name for name in names if name not in row)
            raise BadBatch(400, "schema", f"row {index}: missing column {quoted(missing)} (send null where there is "
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
            raise BadBatch(400, "malformed", f"column {quoted(name)}: expected a list of values")
        lengths[name] = len(values)
    if len(set(lengths.values())) != 1:
        first = next(iter(lengths))
        other = next(name for name, length in lengths.items() if length != lengths[first])
        raise BadBatch(400, "schema", f"column {quoted(other)} has {lengths[other]} values but column "
                                      f"{quoted(first)} has {lengths[first]}; columns must be the same length")
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


def conform(table: pa.Table | _ObjectTable, columns: Mapping[str, ColumnKind], limits: BodyLimits) -> pa.Table:
    """The table with exactly the schema's columns and types, or BadBatch naming the problem."""
    rows = _row_count(table, limits)
    _check_names(table.column_names, columns, rows)
    return _typed(table, columns, rows, limits)


def conform_apart(table: pa.Table | _ObjectTable, columns: Mapping[str, ColumnKind], apart: str,
                  limits: BodyLimits, alone: str) -> tuple[pa.Table, pa.ChunkedArray]:
    """conform() of a table that holds one more column, `apart` (categorical, checked first), which comes back
    apart from the schema's columns, all in one pass; BadBatch with the message `alone` when the table holds
    nothing but that column."""
    rows = _row_count(table, limits)
    split = _typed(table, {apart: ColumnKind.CATEGORICAL}, rows, limits)[apart]
    names = [name for name in table.column_names if name != apart]
    if not names:
        raise BadBatch(400, "schema", alone)
    _check_names(names, columns, rows)
    return _typed(table, columns, rows, limits), split


def _row_count(table: pa.Table | _ObjectTable, limits: BodyLimits) -> int:
    rows = table.num_rows
    if rows == 0:
        raise BadBatch(400, "empty", "the batch has no rows")
    if rows > limits.max_rows:
        raise _too_many_rows(rows, limits.max_rows)
    return rows


def _check_names(names: list[str], columns: Mapping[str, ColumnKind], rows: int) -> None:
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise BadBatch(400, "schema", f"unknown column {quoted(unknown[0])}; this model's columns are "
                                      f"{', '.join(columns)}", rows)
    missing = [name for name in columns if name not in names]
    if missing:
        raise BadBatch(400, "schema", f"missing column {quoted(missing[0])} (send null where there is no value)", rows)


def _typed(table: pa.Table | _ObjectTable, columns: Mapping[str, ColumnKind], rows: int,
           limits: BodyLimits) -> pa.Table:
    arrays = {}
    rules = value_rules(columns)
    for name, kind in columns.items():
        column = table[name]
        try:
            if kind is ColumnKind.NUMERICAL:
                arrays[name] = _numerical(name, column, rows)
            elif kind is ColumnKind.EMBEDDING:
                dimension, source = rules.expected_dimension(name)
                arrays[name] = embedding_values(name, column, rows, dimension, rules.max_dimensions,
                                                limits.max_decoded_bytes, source)
            elif kind is ColumnKind.TEXT:
                arrays[name] = text_values(name, column, rows, rules.max_text_length)
            else:
                arrays[name] = _categorical(name, column, rows, limits.max_category_length)
        except BadBatch as refused:
            refused.column = name
            raise
    return pa.table(arrays)


def _check_expansion(table: pa.Table, limits: BodyLimits) -> None:
    """Dictionary-encoded columns (Parquet text, Arrow dictionaries) decode to a value per row:
    a short dictionary of long values repeated over many rows is refused before it is expanded."""
    decoded = 0
    for column in table.columns:
        for chunk in column.chunks:
            if not pa.types.is_dictionary(chunk.type):
                decoded += chunk.nbytes
                continue
            dictionary = chunk.dictionary
            if pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type):
                # Whether the column is categorical or text is not known yet: each value's own limit is checked
                # once it is, here only the longer of the two.
                longest = pc.max(pc.utf8_length(dictionary)).as_py() or 0
                if longest > max(limits.max_category_length, limits.max_text_length):
                    raise BadBatch(400, "too_long", f"a dictionary value of {longest} characters; "
                                                    f"the limit is {limits.max_category_length} for a category "
                                                    f"and {limits.max_text_length} for a text", table.num_rows)
                value_bytes = pc.binary_length(dictionary)
                decoded += (pc.sum(pc.take(value_bytes, chunk.indices)).as_py() or 0) + 8 * len(chunk)
            else:
                decoded += 8 * len(chunk)
    if decoded > limits.max_decoded_bytes:
        raise BadBatch(413, "too_large", f"the batch decodes to {decoded} bytes; the limit is "
                                         f"{limits.max_decoded_bytes} (limits.max_decoded_bytes)", table.num_rows)


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
            try:
                if type(value) is float:  # JSON's 1.0 is not a category (an integer column read as floats is)
                    raise TypeError(value)
                texts.append(category_text(value))
            except TypeError:
                raise BadBatch(400, "schema", f"row {index}, column {name!r}: {_describe(value)} is not a category "
                                              "(categorical values are strings, integers or booleans)", rows) from None
        try:
            values = pa.array(texts, type=pa.string())
        except (pa.ArrowException, UnicodeError):
            index, value = next((index, value) for index, value in enumerate(texts) if not _is_utf8(value))
            raise BadBatch(400, "bad_text", f"row {index}, column {name!r}: {_describe(value)} is not valid "
                                            "Unicode text (a lone surrogate?)", rows) from None
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


def embedding_values(name: str, column, rows: int, dimension: int | None, max_dimensions: int,
                     max_bytes: int, source: str = "") -> pa.Array:
    """The column's vectors as fixed-size lists of float64, or BadBatch naming the first bad row. source: where
    the expected dimension comes from, for the refusal of a vector of another length."""
    if isinstance(column, _Values):
        return _json_vectors(name, column, rows, dimension, max_dimensions, max_bytes, source)
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = column.type
    if pa.types.is_null(kind):
        if dimension is None:
            raise BadBatch(400, "schema", f"column {name!r}: every vector is null and the column declares no "
                                          "dimension (dimensions in the config)", rows)
        return pa.nulls(len(column), pa.list_(pa.float64(), dimension))
    listed = pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)
    if not listed or not (pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type)):
        raise BadBatch(400, "schema", f"column {name!r} holds {kind} but is an embedding column (a list of numbers "
                                      "per row)", rows)
    lengths = pc.list_value_length(column)
    present = pc.drop_null(lengths)
    if len(present) == 0 and dimension is None:
        raise BadBatch(400, "schema", f"column {name!r}: every vector is null and the column declares no dimension "
                                      "(dimensions in the config)", rows)
    expected = dimension if dimension is not None else present[0].as_py()
    _check_dimension(name, expected, max_dimensions, pc.index(lengths, present[0]).as_py() if len(present) else 0,
                     rows, declared=dimension is not None)
    wrong = pc.fill_null(pc.not_equal(lengths, expected), False)
    if pc.any(wrong).as_py():
        index = pc.index(wrong, True).as_py()
        raise BadBatch(400, "ragged", f"row {index}, column {name!r}: a vector of {lengths[index].as_py()} "
                                      f"components; this column's vectors have {expected}{_from(source)}", rows)
    flat = pc.list_flatten(column)  # the present vectors' components only
    if flat.null_count:
        row = _row_of_component(column, pc.index(pc.is_null(flat), True).as_py())
        raise BadBatch(400, "not_finite", f"row {row}, column {name!r}: a vector with a null component; send null "
                                          "for a missing vector", rows)
    values = flat.cast(pa.float64())
    finite = pc.is_finite(values)
    if not pc.all(finite).as_py():
        position = pc.index(finite, False).as_py()
        row = _row_of_component(column, position)
        raise BadBatch(400, "not_finite", f"row {row}, column {name!r}: a vector with the component "
                                          f"{values[position].as_py()}; every component must be finite", rows)
    mask = pc.is_null(column) if column.null_count else None
    filled = _spread(values, mask, expected) if mask is not None else values
    return pa.FixedSizeListArray.from_arrays(filled, expected, mask=mask)


def _check_dimension(name: str, dimension: int, max_dimensions: int, row: int, rows: int, declared: bool) -> None:
    if dimension < 1:
        raise BadBatch(400, "ragged", f"row {row}, column {name!r}: an empty vector", rows)
    if not declared and dimension > max_dimensions:
        raise BadBatch(400, "too_many_dimensions", f"row {row}, column {name!r}: a vector of {dimension} "
                                                   f"components; the limit is {max_dimensions} "
                                                   "(limits.max_embedding_dimensions)", rows)


def _row_of_component(column: pa.Array, position: int) -> int:
    """The row whose vector holds the `position`-th component of the column's flattened present vectors."""
    lengths = np.asarray(pc.fill_null(pc.list_value_length(column), 0))
    return int(np.searchsorted(np.cumsum(lengths), position, side="right"))


def _spread(values: pa.Array, mask: pa.Array, dimension: int) -> pa.Array:
    """The present vectors' components with `dimension` zeros where each missing vector stands, which a
    fixed-size list array needs (its mask hides them)."""
    missing = np.asarray(mask, dtype=bool)
    spread = np.zeros((len(missing), dimension))
    spread[~missing] = np.asarray(values).reshape(-1, dimension)
    return pa.array(spread.reshape(-1))


def _from(source: str) -> str:
    return f" ({source})" if source else ""


def _json_vectors(name: str, column: _Values, rows: int, dimension: int | None, max_dimensions: int,
                  max_bytes: int, source: str) -> pa.Array:
    expected = dimension
    components: list = []
    missing = np.zeros(len(column), dtype=bool)
    for index, vector in enumerate(column):
        if vector is None:
            missing[index] = True
            continue
        if type(vector) is not list:
            raise BadBatch(400, "schema", f"row {index}, column {name!r}: {_describe(vector)} is not a vector "
                                          "(an embedding column takes a list of numbers; null for no vector)", rows)
        if expected is None:
            expected = len(vector)
            _check_dimension(name, expected, max_dimensions, index, rows, declared=False)
        if not components and len(column) * expected * 8 > max_bytes:
            raise BadBatch(413, "too_large", f"column {name!r}: {len(column)} vectors of {expected} components "
                                             f"decode to {len(column) * expected * 8} bytes; the limit is "
                                             f"{max_bytes} (limits.max_decoded_bytes)", rows)
        if len(vector) != expected:
            raise BadBatch(400, "ragged", f"row {index}, column {name!r}: a vector of {len(vector)} components; "
                                          f"this column's vectors have {expected}{_from(source)}", rows)
        for component in vector:
            kind = type(component)
            if kind is not float and kind is not int:
                raise BadBatch(400, "schema", f"row {index}, column {name!r}: {_describe(component)} in a vector is "
                                              "not a number", rows)
        components.extend(vector)
    if expected is None:
        if dimension is None:
            raise BadBatch(400, "schema", f"column {name!r}: every vector is null and the column declares no "
                                          "dimension (dimensions in the config)", rows)
        expected = dimension
    try:
        values = np.array(components, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise BadBatch(400, "not_finite", f"column {name!r}: a component is beyond float64's range", rows) from None
    finite = np.isfinite(values)
    if not finite.all():
        position = int(np.argmin(finite))
        row = int(np.flatnonzero(~missing)[position // expected])
        raise BadBatch(400, "not_finite", f"row {row}, column {name!r}: a vector with the component "
                                          f"{values[position]}; every component must be finite", rows)
    mask = pa.array(missing) if missing.any() else None
    flat = _spread(pa.array(values), mask, expected) if mask is not None else pa.array(values)
    return pa.FixedSizeListArray.from_arrays(flat, expected, mask=mask)


def text_values(name: str, column, rows: int, max_length: int) -> pa.Array:
    """The column's texts, or BadBatch naming the first row that is not a text or is too long."""
    if isinstance(column, _Values):
        for index, value in enumerate(column):
            if value is not None and type(value) is not str:
                raise BadBatch(400, "schema", f"row {index}, column {name!r}: {_describe(value)} is not a text "
                                              "(text column; null for no text)", rows)
        try:
            values = pa.array(column, type=pa.string())
        except (pa.ArrowException, UnicodeError):
            index = next(index for index, value in enumerate(column) if not _is_utf8(value))
            raise BadBatch(400, "bad_text", f"row {index}, column {name!r}: a text that is not valid Unicode (a "
                                            "lone surrogate?)", rows) from None
    else:
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or
                pa.types.is_null(column.type)):
            raise BadBatch(400, "schema", f"column {name!r} holds {column.type} but is a text column", rows)
        values = column.cast(pa.string())
    lengths = pc.fill_null(pc.utf8_length(values), 0)
    if len(lengths) and pc.max(lengths).as_py() > max_length:
        index = pc.index(pc.greater(lengths, max_length), True).as_py()
        raise BadBatch(400, "too_long", f"row {index}, column {name!r}: a text of {lengths[index].as_py()} "
                                        f"characters; the limit is {max_length} (limits.max_text_length)", rows)
    return values


def _is_utf8(value: str | None) -> bool:
    try:
        if value is not None:
            value.encode()
        return True
    except UnicodeEncodeError:
        return False


def _describe(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, list, dict, bool, float, int)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
