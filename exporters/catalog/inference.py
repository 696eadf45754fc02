"""Inference request metrics, served by model servers that use the fleetscope SDK.

Series carry SERIES_LABELS: the model, the operation (OpenTelemetry GenAI's
gen_ai.operation.name: chat, text_completion, embeddings, predict, ...) and the engine
that serves it. All three are bounded by the SDK (--max-series), which folds anything past
the bound into "_other". The histograms' buckets are declared with them, from fleetscope.exporters.catalog.buckets.
"""

from fleetscope.catalog import MetricSpec
from fleetscope.exporters.catalog import buckets

SERIES_LABELS = ("model", "operation", "engine")


def _inference(name: str, type_: str, help_: str, *labels: str, bounds: tuple[float, ...] = ()) -> MetricSpec:
    return MetricSpec(f"fleetscope_inference_{name}", type_, help_, SERIES_LABELS + labels, buckets=bounds)


REQUEST_DURATION = _inference(
    "request_duration_seconds", "histogram",
    "Time from a request's arrival to its last byte, by outcome and error class as requests_total counts them "
    "(gen_ai.server.request.duration with error.type).", "outcome", "error_type",
    bounds=buckets.REQUEST_DURATION)
QUEUE_DURATION = _inference(
    "queue_duration_seconds", "histogram",
    "Time a request waited before the model started on it; only requests whose server marks that moment.",
    bounds=buckets.QUEUE_DURATION)
TIME_TO_FIRST_TOKEN = _inference(
    "time_to_first_token_seconds", "histogram",
    "Time from a request's arrival to its first output token, successful requests only "
    "(gen_ai.server.time_to_first_token).", bounds=buckets.TIME_TO_FIRST_TOKEN)
TIME_PER_OUTPUT_TOKEN = _inference(
    "time_per_output_token_seconds", "histogram",
    "Mean time per output token after the first, one observation per successful request with two or more output "
    "tokens (gen_ai.server.time_per_output_token).", bounds=buckets.TIME_PER_OUTPUT_TOKEN)
REQUEST_TOKENS = _inference(
    "request_tokens", "histogram",
    "Tokens per request, input (prompt) or output (completion); rate of _sum is token throughput "
    "(gen_ai.client.token.usage).", "token_type", bounds=buckets.TOKENS)
REQUESTS = _inference(
    "requests_total", "counter",
    "Requests finished, by outcome (success, error, rejected, client_error, cancelled) and the error's class.",
    "outcome", "error_type")
IN_FLIGHT = _inference(
    "requests_in_flight", "gauge", "Requests started and not yet finished.")

GPU_INFO = MetricSpec(
    "fleetscope_inference_gpu_info", "gauge",
    "A GPU the serving process uses (InferenceMetrics(gpus=...)), by UUID and the host it is on; always 1. Off "
    "Kubernetes, rules join the process's requests and tokens to the GPU exporter's series on (hostname, uuid).",
    ("engine", "hostname", "uuid"))

METRICS = (REQUEST_DURATION, QUEUE_DURATION, TIME_TO_FIRST_TOKEN, TIME_PER_OUTPUT_TOKEN, REQUEST_TOKENS,
           REQUESTS, IN_FLIGHT, GPU_INFO)
