"""What the Dynamo mapping (alerts/engines.py DYNAMO) must record for a phase the Dynamo lab recorded
(tests/engines/dynamo_lab.py, tests/fixtures/engines/dynamo-<version>/), from what the client knows.

The frontend counts a request in dynamo_frontend_requests_total once it has been routed to a model, by
status and error_type: success, not_found (an unknown model, under model="unknown_model"), internal (the worker
failed it: 500), cancelled (the client closed the stream), overload (every worker busy: 529). A request whose
sampling parameters fail the frontend's own validation is answered 400 before that counter starts (it is counted
only in dynamo_frontend_failures_total{class="InvalidRequest"}, which names no model), so it is in no schema rate.

A stream the client leaves is counted once, but as cancelled only where the frontend notices before the worker's
stream ends: in the lab (1.6.1, the client leaving 0.3 s into a 240-token stream) one of three was counted
error_type="cancelled" and two status="success". So in a phase where the client left streams the total is
checked and the cancelled count is not: the schema's cancelled rate is a floor.

The lab's frontend runs the KV router (--router-mode kv), so every page serves the router's counters and the
prefix-cache hit ratio is measured: the cached tokens the router should have found over the prompt tokens it routed
(the lab's prefix_cache_truth), absent where the phase routed nothing (its requests were all refused first)."""

from __future__ import annotations

ABSENT = None
OUTCOMES = ("errors", "rejected", "cancelled", "client_errors")


def dynamo_expectations(truth: dict) -> dict[str, object]:
    c = truth["counts"]
    uncounted = sum(1 for r in truth["requests"] if r["status"] == 400)
    requests = c["sent"] - uncounted
    expected: dict[str, object] = {
        "requests:rate5m": requests, "errors:rate5m": c["server_error"], "rejected:rate5m": c["rejected"],
        "cancelled:rate5m": c["cancelled"], "client_errors:rate5m": c["client_error"] - uncounted,
        **{f'not_measured{{signal="{outcome}"}}': ABSENT for outcome in OUTCOMES},
        'not_measured{signal="prefix_cache_hit_ratio"}': ABSENT,
        "prefix_cache_hit_ratio:rate5m": _hit_ratio(truth["prefix_cache"]),
        "requests_in_flight": 0, "requests_waiting": 0,
        "error_ratio:rate5m": (c["server_error"] + c["rejected"]) / requests if requests else ABSENT,
    }
    if c["cancelled"]:
        del expected["cancelled:rate5m"]
    if truth["tokens"]["complete"]:
        expected["input_tokens:rate5m"] = truth["tokens"]["prompt"]
        expected["output_tokens:rate5m"] = truth["tokens"]["completion"]
    return expected


def _hit_ratio(prefix_cache: dict) -> float | None:
    routed = prefix_cache["routed_tokens"]
    return prefix_cache["cached_tokens"] / routed if routed else ABSENT
