"""Data quality against hand-computed values, from rows and from profiles, and as the service serves it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fleetscope.drift import profiles
from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.profiles import as_declared, merge_all, profile
from fleetscope.drift.quality import ColumnQuality, from_frames, from_profiles
from fleetscope.drift.service import config as service_config
from fleetscope.drift.service.decode import BadBatch
from fleetscope.drift.service.metrics import MetricsPage
from fleetscope.drift.service.service import DriftService
from tests.support.clock import Clock
from tests.support.exposition import value

KINDS = {"score": ColumnKind.NUMERICAL, "label": ColumnKind.CATEGORICAL}
REFERENCE = pd.DataFrame({"score": [0.0, 1.0, 2.0, 3.0], "label": ["a", "b", "a", "c"]})
# Ten rows: score missing twice, -1 and 5 outside [0, 3]; label missing once, "d" twice and "e" once are new.
CURRENT = pd.DataFrame({"score": [np.nan, -1.0, 0.0, 1.5, 3.0, 5.0, np.nan, 2.0, 2.5, 1.0],
                        "label": ["a", "d", None, "b", "d", "e", "a", "c", "a", "b"]})
EXPECTED = {"score": ColumnQuality(missing_share=0.2, out_of_range_share=2 / 8),
            "label": ColumnQuality(missing_share=0.1, new_category_share=3 / 9)}


def test_quality_from_rows_is_what_a_hand_count_gives():
    assert from_frames(REFERENCE, CURRENT, KINDS) == EXPECTED


def test_quality_from_profiles_is_the_same_while_counts_are_exact():
    reference = profile(REFERENCE, numerical=["score"], categorical=["label"])
    current = merge_all(profile(part, numerical=["score"], categorical=["label"])
                        for part in (CURRENT.iloc[:4], CURRENT.iloc[4:]))
    assert from_profiles(reference, current, KINDS) == EXPECTED


@pytest.mark.parametrize("shift", [0.0, 0.5, 3.0])
def test_out_of_range_from_a_sketch_is_within_its_rank_error(shift):
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 50_000)})
    current = pd.DataFrame({"x": rng.normal(shift, 1.2, 40_000)})
    exact = from_frames(reference, current, {"x": ColumnKind.NUMERICAL})["x"]
    sketched = from_profiles(profile(reference), merge_all(profile(p) for p in np.array_split(current, 8)),
                             {"x": ColumnKind.NUMERICAL})["x"]
    assert sketched.approximate
    assert abs(sketched.out_of_range_share - exact.out_of_range_share) <= 2 * 0.0166  # two ranks, each within 1.65%


def test_new_categories_from_frequent_items_sketches_are_an_upper_bound(monkeypatch):
    monkeypatch.setattr(profiles, "EXACT_CATEGORIES", 1000)  # past exact counts sooner than 10,000 categories
    rng = np.random.default_rng(8)
    reference = pd.DataFrame({"t": [f"t{v}" for v in rng.zipf(1.3, 30_000)]})
    current = pd.DataFrame({"t": [f"t{v}" for v in rng.zipf(1.3, 30_000)] + ["brand-new"] * 3_000})
    assert min(reference["t"].nunique(), current["t"].nunique()) > 1000  # past exact counts: sketched
    exact = from_frames(reference, current, {"t": ColumnKind.CATEGORICAL})["t"]
    found = from_profiles(as_declared(profile(reference), {"t": ColumnKind.CATEGORICAL}),
                          as_declared(profile(current), {"t": ColumnKind.CATEGORICAL}), {"t": ColumnKind.CATEGORICAL})
    sketched = found["t"]
    # An upper bound: values too rare for either sketch to list may be old ones.
    assert sketched.approximate and sketched.new_category_share >= exact.new_category_share - 1e-12


def test_the_service_serves_quality_and_counts_rows_refused_by_column(tmp_path):
    document = {"storage": {"path": str(tmp_path / "s.sqlite")},
                "models": {"iris": {"columns": {"score": "numerical", "label": "categorical"}}}}
    service = DriftService(service_config.parse(document), clock=Clock(1_800_000_000.0))
    service.put_reference("iris", json.dumps(REFERENCE.to_dict("records")).encode(), "application/json")
    rows = [{"score": None if pd.isna(s) else s, "label": label} for s, label in zip(CURRENT.score, CURRENT.label,
                                                                                      strict=True)]
    service.ingest("iris", json.dumps(rows).encode(), "application/json")
    with pytest.raises(BadBatch, match="column 'score'"):
        service.ingest("iris", json.dumps([{"score": "high", "label": "a"}] * 3).encode(), "application/json")
    evaluation = service.evaluate("iris")
    assert evaluation.quality == EXPECTED
    assert evaluation.to_json()["quality"]["label"] == {"missing_share": 0.1, "new_category_share": 3 / 9,
                                                        "approximate": False}
    page = MetricsPage(service).render().decode()
    assert value(page, "fleetscope_drift_missing_ratio", model="iris", column="score") == 0.2
    assert value(page, "fleetscope_drift_out_of_range_ratio", model="iris", column="score") == 0.25
    assert value(page, "fleetscope_drift_new_category_ratio", model="iris", column="label") == pytest.approx(1 / 3)
    assert value(page, "fleetscope_drift_column_rows_refused_total", model="iris", column="score") == 3
    assert value(page, "fleetscope_drift_column_rows_refused_total", model="iris", column="label") == 0
