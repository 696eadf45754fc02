"""How each serving engine exposes request telemetry, as its own source declares it.

The names, types, units, labels and bucket boundaries are the engines' own, read from:
- vLLM v0.10 (V1 engine): vllm/v1/metrics/loggers.py, PrometheusStatLogger. Labels model_name, engine.
  vllm:inter_token_latency_seconds replaces vllm:time_per_output_token_seconds from v0.11 (both
  carry the same buckets); the rules read whichever the server has.
- SGLang (main, 2026): python/sglang/srt/metrics/collector.py, TokenizerMetricsCollector and
  SchedulerMetricsCollector. Label model_name.
- Text Generation Inference 2.x/3.x: router/src/server.rs (metrics crate; histograms whose name ends
  in "duration" get 35 geometric buckets 0.0001 * 1.5^k). TGI serves one model and labels none.
- Triton Inference Server (core r23-r25): src/metrics.cc, src/metric_model_reporter.cc. Labels
  model, version. Latencies are cumulative microsecond counters; there are no latency histograms.
- fleetscope's inference SDK: fleetscope.exporters.catalog.inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetscope.exporters.catalog import inference as sdk
from fleetscope.exporters.inference import buckets as sdk_buckets


@dataclass(frozen=True)
class Histogram:
    metric: str  # the base name: _bucket, _sum and _count follow it
    bounds: tuple[float, ...] = ()  # the engine's default boundaries, where SLO ratios can be read off them
    alternatives: tuple[str, ...] = ()  # names the same histogram has in other releases


@dataclass(frozen=True)
class Engine:
    name: str
    # How a series names its model: "model_name", "model", or None when the engine labels no model
    # (the scrape config's `model` target label is used, else the job).
    model_label: str | None
    requests: tuple[str, ...]  # counters whose rates add up to finished requests per second
    errors: tuple[str, ...] = ()  # counters (with selectors) of requests the server failed
    cancelled: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()  # gauges that add up to requests admitted and not finished
    input_tokens: str | None = None  # counters of tokens
    output_tokens: str | None = None
    request_duration: Histogram | None = None
    time_to_first_token: Histogram | None = None
    time_per_output_token: Histogram | None = None
    queue_duration: Histogram | None = None
    # (sum counter, count counters, seconds per unit) for engines whose latencies are only counters
    mean_request_duration: tuple[str, tuple[str, ...], float] | None = None
    mean_queue_duration: tuple[str, tuple[str, ...], float] | None = None
    # The engine sets this label itself on its series; the rules take the engine's name otherwise.
    own_engine_label: bool = False
    notes: tuple[str, ...] = field(default=())


_VLLM_LATENCY = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                 480.0, 960.0, 1920.0, 7680.0)
_VLLM_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
              40.0, 80.0, 160.0, 640.0, 2560.0)
_VLLM_TPOT = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
              80.0)
_SGLANG_E2E = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0,
               600.0, 1200.0, 1800.0, 2400.0)
_SGLANG_TTFT = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0)

SDK = Engine(
    name="fleetscope", model_label="model", own_engine_label=True,
    requests=(sdk.REQUESTS.name,),
    errors=(f'{sdk.REQUESTS.name}{{outcome="error"}}',),
    cancelled=(f'{sdk.REQUESTS.name}{{outcome="cancelled"}}',),
    in_flight=(sdk.IN_FLIGHT.name,),
    input_tokens=f'{sdk.REQUEST_TOKENS.name}_sum{{token_type="input"}}',
    output_tokens=f'{sdk.REQUEST_TOKENS.name}_sum{{token_type="output"}}',
    request_duration=Histogram(sdk.REQUEST_DURATION.name, sdk_buckets.REQUEST_DURATION),
    time_to_first_token=Histogram(sdk.TIME_TO_FIRST_TOKEN.name, sdk_buckets.TIME_TO_FIRST_TOKEN),
    time_per_output_token=Histogram(sdk.TIME_PER_OUTPUT_TOKEN.name, sdk_buckets.TIME_PER_OUTPUT_TOKEN),
    queue_duration=Histogram(sdk.QUEUE_DURATION.name, sdk_buckets.QUEUE_DURATION),
)

VLLM = Engine(
    name="vllm", model_label="model_name",
    # Every finished request, whatever its finished_reason (stop, length, abort).
    requests=("vllm:request_success_total",),
    cancelled=('vllm:request_success_total{finished_reason="abort"}',),
    in_flight=("vllm:num_requests_running", "vllm:num_requests_waiting"),
    input_tokens="vllm:prompt_tokens_total",
    output_tokens="vllm:generation_tokens_total",
    request_duration=Histogram("vllm:e2e_request_latency_seconds", _VLLM_LATENCY),
    time_to_first_token=Histogram("vllm:time_to_first_token_seconds", _VLLM_TTFT),
    time_per_output_token=Histogram("vllm:inter_token_latency_seconds", _VLLM_TPOT,
                                    alternatives=("vllm:time_per_output_token_seconds",)),
    queue_duration=Histogram("vllm:request_queue_time_seconds", _VLLM_LATENCY),
    notes=("The engine counts no failed requests: errors come from the SDK or an API gateway, not vLLM.",),
)

SGLANG = Engine(
    name="sglang", model_label="model_name",
    requests=("sglang:num_requests_total", "sglang:num_aborted_requests_total"),
    cancelled=("sglang:num_aborted_requests_total",),
    in_flight=("sglang:num_running_reqs", "sglang:num_queue_reqs"),
    input_tokens="sglang:prompt_tokens_total",
    output_tokens="sglang:generation_tokens_total",
    request_duration=Histogram("sglang:e2e_request_latency_seconds", _SGLANG_E2E),
    time_to_first_token=Histogram("sglang:time_to_first_token_seconds", _SGLANG_TTFT),
    time_per_output_token=Histogram("sglang:inter_token_latency_seconds"),
    queue_duration=Histogram("sglang:queue_time_seconds"),
    notes=("SGLang counts aborted requests but no failed ones.",),
)

TGI = Engine(
    name="tgi", model_label=None,
    requests=("tgi_request_count",),
    # err is validation (the caller's fault), cancelled, conc_limit, overloaded or generation.
    errors=('tgi_request_failure{err!~"validation|cancelled"}',),
    cancelled=('tgi_request_failure{err="cancelled"}',),
    in_flight=("tgi_queue_size", "tgi_batch_current_size"),
    input_tokens="tgi_request_input_length_sum",
    output_tokens="tgi_request_generated_tokens_sum",
    request_duration=Histogram("tgi_request_duration"),
    # TGI's mean time per token includes prefill; it is the nearest it has to time per output token.
    time_per_output_token=Histogram("tgi_request_mean_time_per_token_duration"),
    queue_duration=Histogram("tgi_request_queue_duration"),
    notes=("No time to first token.", "Geometric buckets: no SLO ratio can be read off them at round thresholds."),
)

TRITON = Engine(
    name="triton", model_label="model",
    requests=("nv_inference_request_success", "nv_inference_request_failure"),
    errors=("nv_inference_request_failure",),
    in_flight=("nv_inference_pending_request_count",),
    mean_request_duration=("nv_inference_request_duration_us",
                           ("nv_inference_request_success", "nv_inference_request_failure"), 1e-6),
    mean_queue_duration=("nv_inference_queue_duration_us",
                         ("nv_inference_request_success", "nv_inference_request_failure"), 1e-6),
    notes=("Latencies are cumulative counters: means only, no quantiles or SLO ratios, no time to first token.",),
)

ENGINES = (SDK, VLLM, SGLANG, TGI, TRITON)
