"""What the Triton mapping (alerts/engines.py TRITON) must record for a phase the Triton lab recorded
(tests/engines/triton_lab.py, tests/fixtures/engines/triton-<version>/), from what the client saw.

Seen at 2.51.0 (the tritonserver nvidia-pytriton 0.7.0 bundles): Triton counts a request once it reached the
model's scheduler, as a success or a failure by reason: BACKEND where the model raised (answered 500), REJECTED
where it waited in the queue past the queue policy's timeout (503 "Request timeout expired"), CANCELED where
the client cancelled it while it waited. It counts nowhere a request refused because the queue was full (503
"Exceeds maximum queue size": refused before it is queued), nor one it answered 400 or 404 (an unknown input,
a wrong datatype, an unknown model): those are the ground truth's queue_full and client_error, absent from
every schema series. The lab serves no TensorRT-LLM model, so nothing is running and there is no KV cache."""

from __future__ import annotations

import math

ABSENT = None
MEAN_SLACK_SECONDS = 0.01


def triton_expectations(truth: dict) -> dict[str, object]:
    c = truth["counts"]
    requests = c["ok"] + c["server_error"] + c["queue_timeout"] + c["cancelled"]
    return {
        "requests:rate5m": requests, "errors:rate5m": c["server_error"], "rejected:rate5m": c["queue_timeout"],
        "cancelled:rate5m": c["cancelled"], "client_errors:rate5m": ABSENT,
        'not_measured{signal="client_errors"}': 1,
        **{f'not_measured{{signal="{outcome}"}}': ABSENT for outcome in ("errors", "rejected", "cancelled")},
        "requests_waiting": 0, "requests_in_flight": 0, "requests_running": ABSENT, "kv_cache_usage_ratio": ABSENT,
        "error_ratio:rate5m": (c["server_error"] + c["queue_timeout"]) / requests if requests else ABSENT,
    }


def latency_checks(truth: dict, got: dict[str, float]) -> list[tuple[str, str, str, bool]]:
    """(series, expected, got, ok) for the mean request and queue durations, which Triton counts for successes
    only: above zero and at most the client's mean over the requests it saw succeed (the engine's clock starts
    after the request arrived and stops before the answer left), the queue's at most the request's; absent where
    nothing succeeded."""
    seconds = [r["seconds"] for r in truth["requests"] if r["status"] == 200]
    request = got.get("request_duration_seconds:mean_rate5m")
    queue = got.get("queue_duration_seconds:mean_rate5m")
    shown = {name: "absent" if value is None else f"{value:.4f}" for name, value in (("request", request),
                                                                                      ("queue", queue))}
    if not seconds:
        return [("request_duration_seconds mean", "absent (no success)", shown["request"], request is None),
                ("queue_duration_seconds mean", "absent (no success)", shown["queue"], queue is None)]
    client = sum(seconds) / len(seconds)
    return [("request_duration_seconds mean", f"<= {client:.4f} (client)", shown["request"],
             request is not None and 0 < request <= client + MEAN_SLACK_SECONDS),
            ("queue_duration_seconds mean", "<= the request's", shown["queue"],
             queue is not None and request is not None and 0 <= queue <= request and math.isfinite(queue))]
