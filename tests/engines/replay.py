"""Recorded engine pages through the generated rules in a real Prometheus, and every
fleetscope:inference_* series each phase records compared with the phase's ground truth.

Each phase is one scrape job whose page grows every scrape by what the phase added (engine_pages.
replayed_phase), its model label rewritten to the phase's name, so that one Prometheus holds every phase.
A rate over a series younger than its window is that window's share of the count (rate() divides by the
whole window), so each schema rate is divided by the rate of the replay's clock, a counter that grows by
one a scrape, recorded in the same rule group and so at the same instant: the quotient is the phase's count."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetscope.alerts import inference
from fleetscope.alerts.engines import ENGINES, Engine
from fleetscope.mixin.config import NormalizationConfig
from tests.support.engine_pages import REPLAY_CLOCK, EnginePages, recorded_phases, replayed_phase

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engines"
PREFIX = inference.PREFIX
ABSENT = None
CLOCK = "replay:scrapes:rate5m"


@dataclass
class Row:
    phase: str
    series: str
    expected: str
    got: str
    ok: bool

    def __str__(self) -> str:
        verdict = "ok " if self.ok else "BAD"
        return f"{verdict} {self.phase:<16} {self.series:<40} expected {self.expected:<28} got {self.got}"


def engine_of(folder: Path) -> Engine:
    name = folder.name.split("-")[0]
    return next(engine for engine in ENGINES if engine.name == name)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def vllm_expectations(truth: dict) -> dict[str, object]:
    """What the vLLM mapping must record for a phase, from what the client saw: the engine counts what it
    finished (stop, length) and what its admission limit refused (503); 400s and the client's cancellations
    it counts nowhere, so the schema must say those are not measured rather than zero."""
    c = truth["counts"]
    finished = c["stop"] + c["length"]
    requests = finished + c["rejected"]
    expected: dict[str, object] = {
        "requests:rate5m": requests, "errors:rate5m": c["server_error"], "rejected:rate5m": c["rejected"],
        "cancelled:rate5m": ABSENT, "client_errors:rate5m": ABSENT,
        'not_measured{signal="cancelled"}': 1, 'not_measured{signal="client_errors"}': 1,
        'not_measured{signal="errors"}': ABSENT, 'not_measured{signal="rejected"}': ABSENT,
        "requests_running": 0, "requests_waiting": 0, "requests_in_flight": 0,
        "error_ratio:rate5m": (c["server_error"] + c["rejected"]) / requests if requests else ABSENT,
    }
    if truth["tokens"]["complete"]:
        expected["input_tokens:rate5m"] = truth["tokens"]["prompt"]
        expected["output_tokens:rate5m"] = truth["tokens"]["completion"]
    return expected


EXPECTATIONS = {"vllm": vllm_expectations}


def _latency_rows(phase: str, truth: dict, got: dict[str, float], first_bound: float) -> list[Row]:
    """Request duration against the client's clock: the engine's own is shorter (no HTTP, no
    tokenization), never longer. A quantile the client saw under the first boundary must be recorded as
    at most that boundary, never interpolated inside it."""
    seconds = [r["seconds"] for r in truth["requests"] if r["status"] == 200]
    rows: list[Row] = []
    if not seconds:
        return rows
    name = "request_duration_seconds"
    for q in ("0.5", "0.9", "0.99"):
        client = _quantile(seconds, float(q))
        value = got.get(f'{name}:quantile_rate5m{{quantile="{q}"}}')
        bound = got.get(f'{name}:quantile_upper_bound_rate5m{{quantile="{q}"}}')
        if client <= first_bound:
            ok = value is None and bound == first_bound
            expected = f"<= {first_bound:g} (client {client:.3f})"
        else:
            ok = (value is not None and value <= client + 0.05) or bound == first_bound
            expected = f"<= {client:.3f} (client)"
        shown = f"{value:.3f}" if value is not None else (f"at most {bound:g}" if bound is not None else "absent")
        rows.append(Row(phase, f"{name} p{float(q) * 100:g}", expected, shown, ok))
    mean, client_mean = got.get(f"{name}:mean_rate5m"), sum(seconds) / len(seconds)
    rows.append(Row(phase, f"{name} mean", f"<= {client_mean:.3f} (client)",
                    "absent" if mean is None else f"{mean:.3f}", mean is not None and 0 < mean <= client_mean + 0.01))
    return rows


def compare(phase: str, truth: dict, got: dict[str, float], engine: Engine) -> list[Row]:
    rows = []
    for series, expected in EXPECTATIONS[engine.name](truth).items():
        value = got.get(series)
        if expected is ABSENT:
            ok = value is None
        else:
            ok = value is not None and math.isclose(value, float(expected), rel_tol=0.05, abs_tol=0.02)  # type: ignore[arg-type]
        rows.append(Row(phase, series, "absent" if expected is ABSENT else f"{expected:g}",
                        "absent" if value is None else f"{value:.4g}", ok))
    kv = got.get("kv_cache_usage_ratio")
    rows.append(Row(phase, "kv_cache_usage_ratio", "0-1", "absent" if kv is None else f"{kv:.3g}",
                    kv is not None and 0 <= kv <= 1))
    if engine.request_duration is not None and engine.request_duration.bounds:
        rows += _latency_rows(phase, truth, got, engine.request_duration.bounds[0])
    return rows


def schema_by_phase(server, phases: list[str]) -> dict[str, dict[str, float]]:
    """Every fleetscope:inference_* series of each phase (its model), named without the prefix and with
    its distinguishing label (quantile, signal)."""
    found: dict[str, dict[str, float]] = {phase: {} for phase in phases}
    clock = {sample["metric"].get("model"): float(sample["value"][1]) for sample in server.query(CLOCK)}
    for sample in server.query(f'{{__name__=~"{PREFIX}.+"}}'):
        labels = sample["metric"]
        if labels.get("model") not in found:
            continue
        name = labels["__name__"].removeprefix(PREFIX)
        for extra in ("quantile", "signal", "threshold"):
            if extra in labels:
                name += f'{{{extra}="{labels[extra]}"}}'
        value = float(sample["value"][1])
        if name.endswith(":rate5m") and not name.startswith("error_ratio"):  # per second: a count per scrape
            ticks = clock.get(labels["model"])
            if not ticks:
                continue
            value /= ticks
        found[labels["model"]][name] = value
    return found


def replay(folder: Path, prometheus, tmp_path: Path, timeout: float = 60) -> list[Row]:
    """Every phase recorded in `folder` scraped by a real Prometheus with the generated rules; the rows of
    the last comparison, waited for until all agree or `timeout` passes."""
    engine = engine_of(folder)
    phases = recorded_phases(folder)
    pages, previous = {}, ""
    for name, text, _ in phases:
        pages[name] = replayed_phase(previous, text)
        previous = text
    served = EnginePages(pages)
    try:
        scrape = [{"job_name": name, "metrics_path": EnginePages.path(name),
                   "static_configs": [{"targets": [served.address]}],
                   "metric_relabel_configs": [{"target_label": engine.model_label, "replacement": name}]}
                  for name in pages]
        rules = tmp_path / "inference.yaml"
        config = NormalizationConfig(slo_interval="2s", engines=(engine.name,))
        groups = inference.rule_groups(config)
        for group in groups["groups"]:
            if group["name"] == f"fleetscope-inference-{engine.name}":
                group["rules"].append({"record": CLOCK, "expr": f'label_replace(rate({REPLAY_CLOCK}[5m]), "model", '
                                                                f'"$1", "{engine.model_label}", "(.*)")'})
        rules.write_text(yaml.safe_dump(groups))
        server = prometheus(scrape, rule_files=[rules])
        rows: list[Row] = []

        def agree(_) -> bool:
            nonlocal rows
            got = schema_by_phase(server, list(pages))
            rows = [row for name, _, truth in phases for row in compare(name, truth, got[name], engine)]
            return all(row.ok for row in rows)

        with contextlib.suppress(TimeoutError):  # the rows say what disagrees
            server.wait_for(f"count({PREFIX}requests:rate5m) >= {len(pages)}", agree, timeout=timeout)
        return rows
    finally:
        served.close()
