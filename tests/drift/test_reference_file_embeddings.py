"""A reference file named in the config (`reference: {file: ...}`) that holds an embedding column: read from
Parquet, JSON and Arrow and validated as ingest validates a batch, so that a hostile vector stops the service at
start-up with the row and the column; CSV, whose cells hold text, is refused saying what to write instead."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as parquet
import pytest

from fleetscope import log
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.service import DriftService
from tests.drift.hostile import arrow_file

DIMENSIONS = 6


def service_with(tmp_path, name: str, dimensions: int | None = DIMENSIONS) -> DriftService:
    model = {"columns": {"vec": "embedding", "score": "numerical"}, "reference": {"file": name}}
    if dimensions is not None:
        model["dimensions"] = {"vec": dimensions}
    document = {"storage": {"path": str(tmp_path / "store.sqlite")}, "limits": {"max_embedding_dimensions": 16},
                "models": {"m": model}}
    return DriftService(service_config.parse(document, base=tmp_path))


def vectors(rows: int = 40, seed: int = 0) -> list[list[float]]:
    return np.random.default_rng(seed).normal(size=(rows, DIMENSIONS)).tolist()


def write_parquet(path, vecs: list, vector_type: pa.DataType | None = None) -> None:
    vector_type = pa.list_(pa.float64()) if vector_type is None else vector_type
    parquet.write_table(pa.table({"vec": pa.array(vecs, vector_type), "score": [0.5] * len(vecs)}), path)


@pytest.mark.parametrize("suffix", [".parquet", ".json", ".arrow"])
def test_a_reference_file_carries_an_embedding_column(tmp_path, suffix):
    vecs = vectors()
    path = tmp_path / f"reference{suffix}"
    if suffix == ".parquet":
        write_parquet(path, vecs)
    elif suffix == ".json":
        path.write_text(json.dumps([{"vec": vec, "score": 0.5} for vec in vecs]))
    else:
        path.write_bytes(arrow_file(pa.table({"vec": pa.array(vecs, pa.list_(pa.float32(), DIMENSIONS)),
                                              "score": [0.5] * len(vecs)})))
    service = service_with(tmp_path, path.name)
    _, table = service.store.reference("m")
    assert str(table.schema.field("vec").type) == f"fixed_size_list<item: double>[{DIMENSIONS}]"
    np.testing.assert_allclose(np.array(table.column("vec").to_pylist()), np.array(vecs), rtol=1e-6)
    service.ingest("m", json.dumps([{"vec": vec, "score": 0.5} for vec in vectors(seed=1)]).encode(),
                   "application/json")
    evaluation = service.evaluate("m")
    assert evaluation.outcome == "success", evaluation.message
    drift = evaluation.result.columns["vec"]
    assert (drift.reference_rows, drift.current_rows, drift.method) == (40, 40, "model_bootstrap")


def hostile_parquet() -> list[tuple[str, list, pa.DataType, str, int | None]]:
    """(what, the vectors, their Arrow type, what the refusal says, the dimension the model declares)."""
    good = vectors(4)
    return [
        ("ragged", [*good[:2], good[2][:5], good[3]], pa.list_(pa.float64()), "row 2, column 'vec': a vector of 5 "
         "components; this column's vectors have 6", DIMENSIONS),
        ("NaN", [*good[:3], [*good[3][:5], float("nan")]], pa.list_(pa.float64()), "row 3, column 'vec': a vector "
         "with the component nan; every component must be finite", DIMENSIONS),
        ("infinity", [good[0], [float("inf")] * 6, *good[2:]], pa.list_(pa.float32()), "row 1, column 'vec': a "
         "vector with the component inf", DIMENSIONS),
        ("a null component", [good[0], [None] * 6, *good[2:]], pa.list_(pa.float64()), "row 1, column 'vec': a "
         "vector with a null component", DIMENSIONS),
        ("another dimension than declared", [vec[:5] for vec in good], pa.list_(pa.float64()), "row 0, column "
         "'vec': a vector of 5 components; this column's vectors have 6 (its declared dimension)", DIMENSIONS),
        ("more dimensions than the limit", [[0.5] * 17] * 4, pa.list_(pa.float64()), "row 0, column 'vec': a vector "
         "of 17 components; the limit is 16 (limits.max_embedding_dimensions)", None),
        ("numbers, not vectors", [1.0, 2.0, 3.0, 4.0], pa.float64(), "column 'vec' holds double but is an "
         "embedding column (a list of numbers per row)", DIMENSIONS),
        # Parquet's texts are read dictionary-encoded (decode.py, _parquet_table)
        ("texts, not vectors", ["[1, 2, 3, 4, 5, 6]"] * 4, pa.string(), "column 'vec' holds dictionary<values=string, "
         "indices=int32, ordered=0> but is an embedding column", DIMENSIONS),
        ("lists of texts", [["1"] * 6] * 4, pa.list_(pa.string()), "column 'vec' holds list<element: string> but is "
         "an embedding column", DIMENSIONS),
    ]


@pytest.mark.parametrize(("what", "vecs", "vector_type", "message", "dimensions"), hostile_parquet(),
                         ids=[case[0] for case in hostile_parquet()])
def test_a_hostile_vector_in_a_reference_file_stops_the_service_naming_row_and_column(tmp_path, what, vecs,
                                                                                     vector_type, message,
                                                                                     dimensions):
    write_parquet(tmp_path / "reference.parquet", vecs, vector_type)
    with pytest.raises(log.UserError) as refused:
        service_with(tmp_path, "reference.parquet", dimensions)
    assert str(refused.value).startswith(f"model m: reference file {tmp_path / 'reference.parquet'}: "), what
    assert message in str(refused.value), (what, str(refused.value))


def test_a_csv_reference_cannot_hold_an_embedding_column_and_says_what_can(tmp_path):
    rows = [{"vec": json.dumps(vec), "score": 0.5} for vec in vectors(3)]
    (tmp_path / "reference.csv").write_text("vec,score\n" + "".join(f'"{row["vec"]}",0.5\n' for row in rows))
    with pytest.raises(log.UserError, match=r"a CSV file cannot hold the vectors of embedding column 'vec'; write "
                                            r"the reference as \.parquet, \.json or \.arrow"):
        service_with(tmp_path, "reference.csv")


def test_without_a_declared_dimension_the_reference_file_sets_the_one_outputs_must_have(tmp_path):
    write_parquet(tmp_path / "reference.parquet", vectors())
    service = service_with(tmp_path, "reference.parquet", dimensions=None)
    shorter = json.dumps([{"vec": vec[:4], "score": 0.5} for vec in vectors(seed=1)]).encode()
    with pytest.raises(BadBatch) as refused:
        service.ingest("m", shorter, "application/json")
    assert (refused.value.reason, refused.value.column) == ("ragged", "vec")
    assert refused.value.message == ("row 0, column 'vec': a vector of 4 components; this column's vectors have 6 "
                                     "(the reference's dimension)")
    assert service.store.total_rows("m") == 0
    body = json.dumps([{"vec": vec, "score": 0.5} for vec in vectors(seed=1)]).encode()
    assert service.ingest("m", body, "application/json").rows == 40
