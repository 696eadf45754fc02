"""Evidently itself, run on the same data and settings as compare(): the HTML report the
service serves for a person to look at, and the numbers the parity tests check against."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import pandas as pd

from fleetscope.drift.columns import ColumnKind


def evidently_snapshot(reference: pd.DataFrame, current: pd.DataFrame,
                       kinds: Mapping[str, ColumnKind] | None = None,
                       methods: Mapping[str, str] | None = None,
                       thresholds: Mapping[str, float] | None = None, drift_share: float = 0.5):
    """Run Evidently's DataDriftPreset; with `kinds` None, Evidently infers column kinds itself."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(drift_share=drift_share, per_column_method=dict(methods or {}) or None,
                             per_column_threshold=dict(thresholds or {}) or None)
    report = Report([preset], include_tests=True)
    if kinds is None:
        return _quietly(report.run, current, reference)
    definition = DataDefinition(
        numerical_columns=[name for name, kind in kinds.items() if kind is ColumnKind.NUMERICAL],
        categorical_columns=[name for name, kind in kinds.items() if kind is ColumnKind.CATEGORICAL])
    columns = list(kinds)
    return _quietly(report.run, Dataset.from_pandas(current[columns], data_definition=definition),
                    Dataset.from_pandas(reference[columns], data_definition=definition))


def evidently_html(snapshot) -> str:
    return snapshot.get_html_str(as_iframe=False)


def evidently_numbers(snapshot) -> dict:
    """{"columns": {name: (method id, score, threshold, drifted)}, "share": .., "count": ..}."""
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    method_ids = {test.display_name: name for name, by_kind in _registered_stat_tests.items()
                  for test in by_kind.values()}
    data = snapshot.dict()
    drifted = {test["metric_config"]["params"]["column"]: test["status"] == "FAIL"
               for test in data["tests"] if test["metric_config"]["params"]["type"].endswith(":ValueDrift")}
    numbers: dict = {"columns": {}}
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":DriftedColumnsCount"):
            numbers["share"] = metric["value"]["share"]
            numbers["count"] = metric["value"]["count"]
        elif config["type"].endswith(":ValueDrift"):
            column = config["column"]
            numbers["columns"][column] = (method_ids.get(config["method"], config["method"]), metric["value"], config["threshold"],
                                          drifted[column])
    return numbers


def _quietly(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)
