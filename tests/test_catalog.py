"""Every cataloged metric follows the naming conventions of DESIGN.md."""

from __future__ import annotations

import pytest

from fleetscope.catalog import BASE_UNITS, MetricSpec, check_unique
from fleetscope.drift import catalog as drift_catalog
from fleetscope.exporters import catalog
from fleetscope.exporters.catalog.gpu import GPU_LABELS

# Suffixes that are not base units but are the right names for what they count or state:
# states and flags, codes, and plain counts of things.
NON_UNIT_SUFFIXES = ("_info", "_total", "_up", "_enabled", "_pending", "_failed", "_active", "_state", "_success",
                     "_xid", "_per_second", "_files", "_ranks", "_nodes", "_sequence", "_channels",
                     "_collectives", "_hung", "_tokens", "_in_flight",
                     # training: counts of steps, samples and restarts
                     "_steps", "_samples", "_restarts",
                     # drift: a score whose meaning the method label gives, its threshold, the bound on its
                     # error (in the score's own units), a 0/1 verdict, and counts of rows and models
                     "_score", "_threshold", "_bound", "_detected", "_rows", "_models",
                     # the drift service's own page: series it holds at most, and left out
                     "_series",
                     # model quality: a measure whose meaning the metric label gives (ratios such as accuracy,
                     # errors in the prediction's own units such as rmse), realized or estimated
                     "_quality", "_quality_estimated")
# fleetscope_build_info is one spec (fleetscope.self_metrics) that every producer's catalog lists: once here.
EVERY_SPEC = tuple(dict.fromkeys(catalog.ALL + drift_catalog.ALL))


@pytest.mark.parametrize("spec", EVERY_SPEC, ids=lambda s: s.name)
def test_names_carry_base_units(spec):
    name = spec.name.removesuffix("_total")
    assert name.endswith(tuple(f"_{unit}" for unit in BASE_UNITS)) or spec.name.endswith(NON_UNIT_SUFFIXES), (
        f"{spec.name}: end in a base unit ({', '.join(BASE_UNITS)}) or say why not")
    assert "_percent" not in spec.name and "_milli" not in spec.name and "_mhz" not in spec.name


@pytest.mark.parametrize("spec", [s for s in catalog.ALL if s.name.startswith("fleetscope_gpu_")
                                  and s.name != "fleetscope_gpu_driver_info"
                                  and s.name != "fleetscope_gpu_nvml_errors_total"], ids=lambda s: s.name)
def test_gpu_series_carry_the_gpu_labels(spec):
    assert spec.labels[: len(GPU_LABELS)] == GPU_LABELS


@pytest.mark.parametrize("bad, problem", [
    (dict(name="gpu_temp", type="gauge", help="x"), "fleetscope_"),
    (dict(name="fleetscope_x_total", type="gauge", help="x"), "only counters"),
    (dict(name="fleetscope_x", type="counter", help="x"), "end in _total"),
    (dict(name="fleetscope_x", type="gauge", help=" "), "HELP"),
    (dict(name="fleetscope_x", type="summary", help="x"), "type"),
    (dict(name="fleetscope_x", type="gauge", help="x", labels=("a", "a")), "duplicate"),
    (dict(name="fleetscope_x", type="gauge", help="x", labels=("__name__",)), "bad label"),
])
def test_specs_breaking_conventions_are_refused(bad, problem):
    with pytest.raises(ValueError, match=problem):
        MetricSpec(**bad)


def test_names_are_unique():
    check_unique(EVERY_SPEC)
    with pytest.raises(ValueError, match="declared twice"):
        check_unique(catalog.ALL + catalog.ALL[:1])
