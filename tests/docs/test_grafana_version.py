"""The dashboards are what the Grafana version the docs state can load (docs/dashboards.md, "Grafana
version"): every dashboards/json/*.json goes through grafana-foundation-sdk's dashboard model and back, and
a field the model does not know (dropped on the way) or a changed value fails, as does a schemaVersion other
than the one the pinned SDK writes."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.docs.blocks import ROOT

DASHBOARDS = sorted((ROOT / "dashboards" / "json").glob("*.json"))
SCHEMA_VERSION = 42
MINIMUM_GRAFANA = "12.2"


def unknown(original: Any, loaded: Any, path: str = "") -> list[str]:
    """What of `original` did not survive the model: fields it dropped, values it changed."""
    if isinstance(original, dict):
        if not isinstance(loaded, dict):
            return [f"{path}: became {type(loaded).__name__}"]
        return [problem for key, value in original.items()
                for problem in ([f"{path}/{key}: unknown to the model"] if key not in loaded
                                else unknown(value, loaded[key], f"{path}/{key}"))]
    if isinstance(original, list):
        if not isinstance(loaded, list) or len(loaded) != len(original):
            return [f"{path}: the list changed"]
        return [problem for i, (a, b) in enumerate(zip(original, loaded, strict=True))
                for problem in unknown(a, b, f"{path}[{i}]")]
    return [] if original == loaded else [f"{path}: {original!r} became {loaded!r}"]


def through_the_model(document: dict[str, Any]) -> dict[str, Any]:
    register_default_plugins()  # panels' options and the Prometheus queries, as the SDK's README says
    loaded: dict[str, Any] = json.loads(JSONEncoder().encode(Dashboard.from_json(document)))
    return loaded


def test_there_are_dashboards_to_check():
    assert len(DASHBOARDS) >= 5


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_each_dashboard_loads_in_the_sdks_model_without_unknown_fields(path: Path):
    document = json.loads(path.read_text())
    assert document["schemaVersion"] == SCHEMA_VERSION
    problems = unknown(document, through_the_model(document))
    assert not problems, f"{path.name}: " + "\n".join(problems[:20])


def test_an_unknown_field_is_caught():
    document = json.loads(DASHBOARDS[0].read_text())
    index, panel = next((i, panel) for i, panel in enumerate(document["panels"]) if "fieldConfig" in panel)
    panel["fieldConfig"]["defaults"]["notAGrafanaField"] = 1
    document["notAGrafanaField"] = True
    problems = unknown(document, through_the_model(document))
    assert sorted(problems) == ["/notAGrafanaField: unknown to the model",
                        f"/panels[{index}]/fieldConfig/defaults/notAGrafanaField: unknown to the model"], problems


def test_the_pinned_sdk_writes_the_schema_version_the_docs_state():
    default = inspect.signature(Dashboard.__init__).parameters["schema_version"].default
    assert default == SCHEMA_VERSION
    docs = (ROOT / "docs" / "dashboards.md").read_text()
    assert f"**Grafana {MINIMUM_GRAFANA} or newer**" in docs
    assert re.search(rf"`schemaVersion` {SCHEMA_VERSION}\b", docs)
    assert "grafana-foundation-sdk==0.0.21" in (ROOT / "pyproject.toml").read_text()
    assert "grafana-foundation-sdk 0.0.21" in docs
