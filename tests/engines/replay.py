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
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetscope.alerts import inference
from fleetscope.alerts.engines import ENGINES, Engine
from fleetscope.mixin.config import NormalizationConfig
from tests.engines.dynamo_expectations import dynamo_expectations
from tests.engines.ray_serve_expectations import latency_checks as ray_serve_latency_checks
from tests.engines.ray_serve_expectations import ray_serve_expectations
from tests.engines.triton_expectations import latency_checks as triton_latency_checks
from tests.engines.triton_expectations import triton_expectations
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
    name = folder.name.rpartition("-")[0]  # vllm-0.32.0, ray-serve-2.60.0
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
        "error_ratio:rate5m": (c["server_error"] + c["rejected"]) / requests if requests else ABSENT,
        **_vllm_in_flight(truth), **_vllm_lora(truth),
    }
    if truth["tokens"]["complete"]:
        expected["input_tokens:rate5m"] = truth["tokens"]["prompt"]
        expected["output_tokens:rate5m"] = truth["tokens"]["completion"]
    return expected


def _vllm_in_flight(truth: dict) -> dict[str, object]:
    """Nothing in flight on a page read after its phase settled; what the client held open on one read mid-flight."""
    held = truth.get("in_flight", {})
    running, waiting = held.get("running", 0), held.get("waiting", 0)
    return {"requests_running": running, "requests_waiting": waiting, "requests_in_flight": running + waiting}


def _vllm_lora(truth: dict) -> dict[str, object]:
    """The adapters whose requests the client had running when the page was read (each 1, the others absent) and
    their count; none before the first request (vLLM sets its LoRA gauge at the first logging step). Requests per
    adapter: not measured, whatever the phase sent."""
    adapters = truth["server"].get("lora_adapters", [])
    running = truth.get("lora", {}).get("running", [])
    expected: dict[str, object] = {'not_measured{signal="lora_requests"}': 1}
    if adapters:
        expected["lora_adapters_running"] = ABSENT if truth["phase"] == "idle" else len(running)
        expected.update({f'lora_adapter_running{{adapter="{name}"}}': 1 if name in running else ABSENT
                         for name in adapters})
    return expected


EXPECTATIONS = {"vllm": vllm_expectations, "ray-serve": ray_serve_expectations, "dynamo": dynamo_expectations,
                "triton": triton_expectations}


def _total(page: str, name: str, le: str | None = None) -> float | None:
    """The sum of a page's samples named `name` (of one bucket boundary where `le` is given), None where it
    has none."""
    values = [float(line.rsplit(maxsplit=1)[1]) for line in page.splitlines()
              if line.startswith((name + "{", name + " ")) and (le is None or f'le="{le}"' in line)]
    return sum(values) if values else None


def _added(previous: str, page: str, name: str, le: str | None = None) -> float | None:
    """What a phase added to a counter: its page's total less the previous page's."""
    now = _total(page, name, le)
    return None if now is None else now - (_total(previous, name, le) or 0.0)


def _share(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else ABSENT


def _phase_quantiles(previous: str, page: str, histogram: str, record: str) -> dict[str, object]:
    """Where each quantile of what the phase added lies, from the page's own buckets: at most the first
    boundary when the first bucket holds it (and no interpolated value), else within its bucket."""
    count = _added(previous, page, f"{histogram}_count")
    if not count:
        return {}
    boundaries = sorted({le for le in re.findall(rf'^{re.escape(histogram)}_bucket{{.*le="([^"]+)"', page, re.M)
                         if le != "+Inf"}, key=float)
    cumulative = [(float(le), (_added(previous, page, f"{histogram}_bucket", le) or 0.0) / count) for le in boundaries]
    expected: dict[str, object] = {}
    for q in ("0.5", "0.9", "0.99"):
        value = f'{record}:quantile_rate5m{{quantile="{q}"}}'
        bound = f'{record}:quantile_upper_bound_rate5m{{quantile="{q}"}}'
        if cumulative[0][1] >= float(q):
            expected[value], expected[bound] = ABSENT, cumulative[0][0]
            continue
        upper = next((i for i, (_, share) in enumerate(cumulative) if share >= float(q)), len(cumulative) - 1)
        expected[value], expected[bound] = (cumulative[upper - 1][0], cumulative[upper][0]), ABSENT
    return expected


def vllm_signals(previous: str, page: str) -> dict[str, object]:
    """The serving signals a phase's page implies, worked out from what its own counters and histograms added
    since the previous page, apart from the rules. The lab runs no draft model and no KV connector, so
    acceptance and KV transfer are absent there; vLLM serves every signal, so none is "not measured"."""
    expected: dict[str, object] = {
        "prefix_cache_hit_ratio:rate5m": _share(_added(previous, page, "vllm:prefix_cache_hits_total"),
                                                _added(previous, page, "vllm:prefix_cache_queries_total")),
        "spec_decode_acceptance_ratio:rate5m": ABSENT, "kv_transfer_duration_seconds:mean_rate5m": ABSENT,
        **{f'not_measured{{signal="{signal}"}}': ABSENT for signal in inference.SERVING_SIGNALS},
    }
    for phase, histogram in (("prefill_duration", "vllm:request_prefill_time_seconds"),
                             ("decode_duration", "vllm:request_decode_time_seconds")):
        expected[f"{phase}_seconds:mean_rate5m"] = _share(_added(previous, page, f"{histogram}_sum"),
                                                          _added(previous, page, f"{histogram}_count"))
        expected.update(_phase_quantiles(previous, page, histogram, f"{phase}_seconds"))
    return expected


SIGNALS = {"vllm": vllm_signals}


def signal_rows(phase: str, previous: str, page: str, got: dict[str, float], engine: Engine) -> list[Row]:
    """The serving signals against what the phase's page implies: ratios and means exactly (the rules divide
    what the same scrapes added), quantiles within the bucket the page puts them in."""
    rows = []
    for series, expected in SIGNALS[engine.name](previous, page).items():
        value = got.get(series)
        if expected is ABSENT:
            ok, shown = value is None, "absent"
        elif isinstance(expected, tuple):
            low, high = expected
            ok, shown = value is not None and low <= value <= high, f"in ({low:g}, {high:g}]"
        else:
            ok = value is not None and math.isclose(value, float(expected), rel_tol=1e-6, abs_tol=1e-9)  # type: ignore[arg-type]
            shown = f"{expected:.6g}"
        rows.append(Row(phase, series, shown, "absent" if value is None else f"{value:.6g}", ok))
    return rows


def _latency_rows(phase: str, truth: dict, got: dict[str, float], bounds: tuple[float, ...]) -> list[Row]:
    """Request duration against the client's clock: the engine's own is shorter (no HTTP, no
    tokenization), never longer. A quantile the client saw under the first boundary must be recorded as
    at most that boundary, never interpolated inside it; above it, histogram_quantile interpolates inside
    the bucket that holds the quantile, so it reads at most that bucket's upper boundary."""
    first_bound = bounds[0]
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
            ceiling = next((b for b in bounds if b >= client + 0.05), math.inf)
            ok = (value is not None and value <= ceiling) or bound == first_bound
            expected = f"<= {ceiling:g} (client {client:.3f}, its bucket)"
        shown = f"{value:.3f}" if value is not None else (f"at most {bound:g}" if bound is not None else "absent")
        rows.append(Row(phase, f"{name} p{float(q) * 100:g}", expected, shown, ok))
    mean, client_mean = got.get(f"{name}:mean_rate5m"), sum(seconds) / len(seconds)
    rows.append(Row(phase, f"{name} mean", f"<= {client_mean:.3f} (client)",
                    "absent" if mean is None else f"{mean:.3f}", mean is not None and 0 < mean <= client_mean + 0.01))
    return rows


def compare(phase: str, truth: dict, got: dict[str, float], engine: Engine) -> list[Row]:
    rows = []
    expectations = EXPECTATIONS[engine.name](truth)
    for series, expected in expectations.items():
        value = got.get(series)
        if expected is ABSENT:
            ok = value is None
        else:
            ok = value is not None and math.isclose(value, float(expected), rel_tol=0.05, abs_tol=0.02)  # type: ignore[arg-type]
        rows.append(Row(phase, series, "absent" if expected is ABSENT else f"{expected:g}",
                        "absent" if value is None else f"{value:.4g}", ok))
    kv = got.get("kv_cache_usage_ratio")
    # Unless the expectations say it (Triton's KV cache is TensorRT-LLM's, which its lab does not run).
    if "kv_cache_usage_ratio" not in expectations and engine.kv_cache_usage:
        rows.append(Row(phase, "kv_cache_usage_ratio", "0-1", "absent" if kv is None else f"{kv:.3g}",
                        kv is not None and 0 <= kv <= 1))
    elif "kv_cache_usage_ratio" not in expectations:
        rows.append(Row(phase, "kv_cache_usage_ratio", "absent", "absent" if kv is None else f"{kv:.3g}", kv is None))
    histogram = engine.request_duration
    if engine.name == "ray-serve" and histogram is not None and histogram.bounds:
        bounds = tuple(bound * histogram.seconds_per_unit for bound in histogram.bounds)
        rows += [Row(phase, *check) for check in ray_serve_latency_checks(truth, got, bounds)]
    elif engine.name == "triton":
        rows += [Row(phase, *check) for check in triton_latency_checks(truth, got)]
    elif histogram is not None and histogram.bounds:
        rows += _latency_rows(phase, truth, got, histogram.bounds)
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
        for extra in ("quantile", "signal", "threshold", "adapter"):
            if extra in labels:
                name += f'{{{extra}="{labels[extra]}"}}'
        value = float(sample["value"][1])
        # per second: a count per scrape (ratios of two rates are not)
        if name.endswith(":rate5m") and not name.split(":")[0].endswith(("_ratio", "_per_draft")):
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
                   # The recorded model kept apart, so that a page serving several (Triton's) does not collide.
                   "metric_relabel_configs": [{"source_labels": [engine.model_label],
                                               "target_label": f"recorded_{engine.model_label}"},
                                              {"target_label": engine.model_label, "replacement": name}]}
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
            if engine.name in SIGNALS:
                previous_pages = [""] + [text for _, text, _ in phases[:-1]]
                rows += [row for (name, page, _), previous in zip(phases, previous_pages, strict=True)
                         for row in signal_rows(name, previous, page, got[name], engine)]
            return all(row.ok for row in rows)

        with contextlib.suppress(TimeoutError):  # the rows say what disagrees
            server.wait_for(f"count({PREFIX}requests:rate5m) >= {len(pages)}", agree, timeout=timeout)
        return rows
    finally:
        served.close()


def assert_agree(rows: list[Row]) -> None:
    """Every row of a replay as its ground truth says; where not, the rows that differ, then every row."""
    assert rows, "the replay compared nothing"
    bad = [str(row) for row in rows if not row.ok]
    assert not bad, "\n".join(bad) + "\n\nevery row:\n" + "\n".join(str(row) for row in rows)
