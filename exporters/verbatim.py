"""Families served under another exporter's names exactly as that exporter serves them.

prometheus_client's encoders add `_total` to every counter's name, as OpenMetrics asks; a
dcgm-exporter counter such as DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION has none, and the queries
written for it must find it unchanged. In OpenMetrics, where a counter's samples must end in
`_total`, such a counter is typed `unknown`: its samples keep their names either way.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString


class VerbatimFamily(Metric):
    """A family whose sample names are served as given, with its TYPE as given where the format allows."""

    def add(self, labels: Mapping[str, str], value: float) -> None:
        self.add_sample(self.name, dict(labels), float(value))

    def expose(self, openmetrics: bool) -> bytes:
        type_ = self.type
        if openmetrics and type_ == "counter" and not self.name.endswith("_total"):
            type_ = "unknown"
        elif not openmetrics and type_ == "unknown":
            type_ = "untyped"
        lines = [f"# HELP {self.name} {_escape_help(self.documentation)}", f"# TYPE {self.name} {type_}"]
        for sample in self.samples:
            labels = ",".join(f'{name}="{_escape_value(value)}"' for name, value in sample.labels.items())
            lines.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}" if labels
                         else f"{sample.name} {floatToGoString(sample.value)}")
        return ("\n".join(lines) + "\n").encode()


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(text: str) -> str:
    return _escape_help(text).replace('"', r"\"")
