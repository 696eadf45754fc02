"""The inference SDK's request tracking, against a clock the tests move by hand."""

from __future__ import annotations

import asyncio
import math
import threading

import numpy as np
import pytest
from opentelemetry.sdk.trace import TracerProvider

from fleetscope.exporters.catalog import buckets
from fleetscope.exporters.inference import InferenceMetrics
from fleetscope.exporters.inference.series import DRAIN_AT, ERROR_OVERFLOW, MAX_ERROR_TYPES, OTHER
from tests.support.clock import Clock


@pytest.fixture
def clock():
    return Clock(100.0)


@pytest.fixture
def metrics(clock):
    return InferenceMetrics(engine="test", clock=clock)


def only(metrics):
    (series,) = metrics.snapshot()
    return series


def bucket_of(histogram, value):
    """The index of the bucket a value falls in, by the le rule."""
    return next(i for i, bound in enumerate(histogram.bounds + (math.inf,)) if value <= bound)


def test_a_streamed_request_yields_every_latency(metrics, clock):
    with metrics.track("llama", "chat") as request:
        clock.now += 0.2
        request.dequeued()
        clock.now += 0.3
        request.output_token()
        for _ in range(10):
            clock.now += 0.05
            request.output_token()
        request.tokens(input=120)
    series = only(metrics)
    assert series.requests == {("success", ""): 1}
    assert series.duration.total == pytest.approx(1.0)
    assert series.queue.total == pytest.approx(0.2)
    assert series.time_to_first_token.total == pytest.approx(0.5)
    # Eleven tokens: ten gaps after the first, 0.05 s each.
    assert series.time_per_output_token.total == pytest.approx(0.05)
    assert series.output_tokens.total == 11 and series.input_tokens.total == 120
    assert series.duration.counts[bucket_of(series.duration, 1.0)] == 1
    assert series.in_flight == 0


def test_a_value_on_a_bound_falls_in_that_bucket(metrics, clock):
    with metrics.track("m"):
        clock.now += 0.25
    histogram = only(metrics).duration
    assert histogram.counts[histogram.bounds.index(0.25)] == 1


def test_absent_values_stay_absent(metrics, clock):
    """No queue mark, no tokens: those histograms see nothing rather than a made-up zero."""
    with metrics.track("m"):
        clock.now += 0.01
    series = only(metrics)
    assert series.queue.count == series.time_to_first_token.count == series.time_per_output_token.count == 0
    assert series.input_tokens.count == series.output_tokens.count == 0
    assert series.duration.count == 1


def test_one_output_token_has_no_time_per_token(metrics, clock):
    with metrics.track("m") as request:
        clock.now += 0.1
        request.tokens(output=1)
        request.first_token()
    series = only(metrics)
    assert series.time_to_first_token.count == 1 and series.time_per_output_token.count == 0


def test_outcomes(metrics):
    with pytest.raises(KeyError), metrics.track("m"):
        raise KeyError("x")
    with metrics.track("m") as request:
        request.fail("Timeout")
    with metrics.track("m") as request:
        request.fail("400", client=True)

    async def cancelled():
        with metrics.track("m"):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    request = metrics.start("m")
    request.cancel()
    request.finish()  # an ended request stays as it ended
    assert only(metrics).requests == {("error", "KeyError"): 1, ("error", "Timeout"): 1,
                                      ("client_error", "400"): 1, ("cancelled", ""): 2}


def test_in_flight_counts_requests_not_yet_ended(metrics):
    first, second = metrics.start("m"), metrics.start("m")
    assert only(metrics).in_flight == 2
    first.finish()
    assert only(metrics).in_flight == 1
    second.fail(RuntimeError())
    assert only(metrics).in_flight == 0


def test_decorators_track_functions_and_coroutines(metrics):
    @metrics.tracked("iris")
    def predict(x):
        return x * 2

    @metrics.tracked("iris", "embeddings")
    async def embed(x):
        return [x]

    assert predict(2) == 4 and predict(3) == 6 and predict.__name__ == "predict"
    assert asyncio.run(embed(1)) == [1]
    counts = {(s.model, s.operation): s.requests for s in metrics.snapshot()}
    assert counts == {("iris", "predict"): {("success", ""): 2}, ("iris", "embeddings"): {("success", ""): 1}}


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), (math.nan, TypeError),
                                        (True, TypeError), ("12", TypeError), (None, None)])
def test_bad_token_counts_are_refused_and_keep_what_was_counted(metrics, bad, error):
    with metrics.track("m") as request:
        request.tokens(input=5, output=7)
        if error is not None:
            with pytest.raises(error, match="tokens must"):
                request.tokens(input=bad)
            with pytest.raises(error, match="tokens must"):
                request.output_token(bad)
    series = only(metrics)
    assert series.input_tokens.total == 5 and series.output_tokens.total == 7


def test_numpy_integers_count_as_tokens(metrics):
    with metrics.track("m") as request:
        request.tokens(input=np.int64(9), output=np.int32(3))
    assert only(metrics).input_tokens.total == 9


@pytest.mark.parametrize("model, error", [(None, TypeError), ("", ValueError), (3, TypeError)])
def test_labels_must_be_strings(metrics, model, error):
    with pytest.raises(error, match="model"):
        metrics.track(model)
    assert metrics.snapshot() == []


def test_series_beyond_the_bound_fold_into_other(clock, caplog):
    metrics = InferenceMetrics(max_series=3, clock=clock)
    for index in range(10):
        with metrics.track(f"model-{index}"):
            pass
    seen = {(s.model, s.operation): sum(s.requests.values()) for s in metrics.snapshot()}
    assert len(seen) == 4 and seen[(OTHER, OTHER)] == 7
    assert "series limit" in caplog.text
    long_name = "x" * 1000
    with metrics.track(long_name):
        pass


def test_error_types_beyond_the_bound_count_as_overflow(metrics):
    for index in range(MAX_ERROR_TYPES + 5):
        with metrics.track("m") as request:
            request.fail(f"Error{index}")
    requests = only(metrics).requests
    assert len(requests) == MAX_ERROR_TYPES + 1
    assert requests[("error", ERROR_OVERFLOW)] == 5


def test_pending_requests_are_folded_in_without_a_scrape(metrics):
    """Memory stays bounded when nothing scrapes: the hot path folds batches in itself."""
    series = metrics._series_for("m", "predict")
    for _ in range(DRAIN_AT * 3 + 1):
        with metrics.track("m"):
            pass
    assert len(series._pending) < DRAIN_AT
    assert only(metrics).duration.count == DRAIN_AT * 3 + 1


def test_threads_lose_nothing():
    metrics = InferenceMetrics()
    per_thread = 5000

    def work():
        for index in range(per_thread):
            with metrics.track("m") as request:
                request.tokens(input=1, output=2)
                if index % 7 == 0:
                    metrics.snapshot()  # scrapes racing the requests

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    series = only(metrics)
    assert series.requests == {("success", ""): 8 * per_thread}
    assert series.duration.count == series.input_tokens.count == 8 * per_thread
    assert series.output_tokens.total == 2 * 8 * per_thread
    assert series.in_flight == 0


def test_exemplars_carry_the_active_trace(metrics, clock):
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span, metrics.track("m") as request:
        clock.now += 0.3
        request.first_token()
    with metrics.track("m"):  # no trace: the exemplar stays the traced one
        clock.now += 0.3
    histogram = only(metrics).duration
    exemplar = histogram.exemplars[bucket_of(histogram, 0.3)]
    assert exemplar.trace_id == span.get_span_context().trace_id
    assert exemplar.value == pytest.approx(0.3)
    ttft = only(metrics).time_to_first_token
    assert ttft.exemplars[bucket_of(ttft, 0.3)].span_id == span.get_span_context().span_id


def test_buckets_are_increasing_and_hold_the_usual_objectives():
    for bounds in (buckets.REQUEST_DURATION, buckets.TIME_TO_FIRST_TOKEN, buckets.TIME_PER_OUTPUT_TOKEN,
                   buckets.TOKENS):
        assert list(bounds) == sorted(set(bounds))
    assert {0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0} <= set(buckets.REQUEST_DURATION)


def test_buckets_keep_every_boundary_the_genai_conventions_advise_where_they_follow_them():
    assert set(buckets.GENAI_ADVISED_TIME_TO_FIRST_TOKEN) <= set(buckets.TIME_TO_FIRST_TOKEN)
    assert set(buckets.GENAI_ADVISED_TIME_PER_OUTPUT_TOKEN) <= set(buckets.TIME_PER_OUTPUT_TOKEN)


def test_every_recorded_slo_threshold_is_an_exact_sdk_boundary():
    from fleetscope.alerts.engines import SDK
    from fleetscope.alerts.inference import expressible
    from fleetscope.mixin.config import NormalizationConfig

    for latency, thresholds in NormalizationConfig().slo_thresholds:
        for threshold in thresholds:
            assert expressible(getattr(SDK, latency), threshold), (latency, threshold)


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="max_series"):
        InferenceMetrics(max_series=0)


def test_declared_series_are_served_at_zero(metrics):
    metrics.declare("m", "chat")
    (series,) = metrics.snapshot()
    assert (series.model, series.operation, series.duration.count, series.requests) == ("m", "chat", 0, {})


def test_only_successful_requests_time_their_tokens(metrics, clock):
    """OpenTelemetry's GenAI conventions: TTFT and TPOT describe successful responses."""
    for end in (lambda r: r.fail("Timeout"), lambda r: r.cancel(), lambda r: r.reject()):
        request = metrics.start("m")
        clock.now += 0.1
        request.output_token(5)
        clock.now += 0.1
        end(request)
    with metrics.track("m") as request:
        clock.now += 0.2
        request.output_token(3)
        clock.now += 0.2
    series = only(metrics)
    assert series.time_to_first_token.count == series.time_per_output_token.count == 1
    assert series.time_to_first_token.total == pytest.approx(0.2)
    assert series.output_tokens.count == 4  # token counts are kept for every request: they were spent


def test_durations_are_kept_by_outcome(metrics, clock):
    with metrics.track("m"):
        clock.now += 0.3
    request = metrics.start("m")
    clock.now += 2.0
    request.reject("429")
    with pytest.raises(ValueError), metrics.track("m"):
        clock.now += 5.0
        raise ValueError
    series = only(metrics)
    assert {key: h.total for key, h in series.durations.items()} == pytest.approx(
        {("success", ""): 0.3, ("rejected", "429"): 2.0, ("error", "ValueError"): 5.0})
    assert series.duration.count == 3 and series.duration.total == pytest.approx(7.3)
    assert series.requests == {("success", ""): 1, ("rejected", "429"): 1, ("error", "ValueError"): 1}


def test_durations_of_error_classes_beyond_the_bound_fold_into_overflow(metrics):
    for i in range(MAX_ERROR_TYPES + 5):
        metrics.start("m").fail(f"E{i}")
    series = only(metrics)
    assert len(series.durations) == MAX_ERROR_TYPES + 2  # the success histogram, the bound, and the overflow
    assert series.durations[("error", ERROR_OVERFLOW)].count == 5
    assert {key for key in series.durations} == {key for key in series.requests} | {("success", "")}


def test_rejection_reasons_are_bounded_strings(metrics):
    request = metrics.start("m")
    with pytest.raises(TypeError, match="reason must be a string"):
        request.reject(429)
    request.reject("x" * 1000)  # the request is still open after the refused call, and ends now
    for i in range(MAX_ERROR_TYPES + 3):
        metrics.start("m").reject(f"queue-{i}")
    requests = only(metrics).requests
    assert ("rejected", "x" * 128) in requests and requests[("rejected", ERROR_OVERFLOW)] == 4
    assert only(metrics).in_flight == 0
