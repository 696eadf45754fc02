"""What the Ray Serve mapping (alerts/engines.py RAY_SERVE) must record for a phase the Serve lab recorded
(tests/ray/serve_lab.py, tests/fixtures/engines/ray-serve-<version>/), from what the client knows: Serve's
proxy counts every request once, by the status it answered (counted_as), and every outcome is measured."""

from __future__ import annotations

import bisect
import math

ABSENT = None
# The proxy's clock stops after its own bookkeeping, once the last byte has left: a few milliseconds past the
# client's (at 2.60 here a 6 ms request was timed in the 10-20 ms bucket). A quantile may lie that much later.
PROXY_SLACK_SECONDS = 0.05
OUTCOMES = ("errors", "rejected", "cancelled", "client_errors")


def ray_serve_expectations(truth: dict) -> dict[str, object]:
    c = truth["counts"]
    requests = c["sent"]
    errors = c["server_error"] + c["timeout"]  # 500s, and 408: Serve's request_timeout_s ran out
    return {
        "requests:rate5m": requests, "errors:rate5m": errors, "rejected:rate5m": c["rejected"],
        "cancelled:rate5m": c["cancelled"], "client_errors:rate5m": c["client_error"],
        **{f'not_measured{{signal="{outcome}"}}': ABSENT for outcome in OUTCOMES},
        "requests_running": 0, "requests_waiting": 0, "requests_in_flight": 0,
        "error_ratio:rate5m": (errors + c["rejected"]) / requests if requests else ABSENT,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_checks(truth: dict, got: dict[str, float],
                   bounds_seconds: tuple[float, ...]) -> list[tuple[str, str, str, bool]]:
    """(series, expected, got, ok) for each quantile of the request duration: the recorded quantile above zero
    and at most the upper boundary of the bucket that holds the client's own plus PROXY_SLACK_SECONDS (the
    value is interpolated inside its bucket, so no closer); an "at most" bound where no value is recorded.
    Nothing for a phase where the client closed connections: it stopped its clock before Serve noticed."""
    requests = truth["requests"]
    if not requests or any(r["status"] == 0 for r in requests):
        return []
    seconds = [r["seconds"] for r in requests]
    name, checks = "request_duration_seconds", []
    for q in ("0.5", "0.9", "0.99"):
        client = _quantile(seconds, float(q))
        index = bisect.bisect_left(bounds_seconds, client + PROXY_SLACK_SECONDS)
        upper = bounds_seconds[index] if index < len(bounds_seconds) else math.inf
        value = got.get(f'{name}:quantile_rate5m{{quantile="{q}"}}')
        bound = got.get(f'{name}:quantile_upper_bound_rate5m{{quantile="{q}"}}')
        if value is None:
            ok, shown = bound is not None and bound <= upper + 1e-9, f"at most {bound:g}" if bound else "absent"
        else:
            ok, shown = 0 < value <= upper + 1e-9, f"{value:.4f}"
        checks.append((f"{name} p{float(q) * 100:g}", f"<= {upper:g} (client {client:.3f})", shown, ok))
    return checks
