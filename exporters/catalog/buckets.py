"""Histogram bucket boundaries for LLM and classic-model latencies, in seconds, and token counts.

OpenTelemetry's GenAI semantic conventions (model/gen-ai/metrics.yaml, v1.37) advise boundaries
for each server metric; the SDK keeps every advised boundary and departs from the advice only
where an SLO threshold would otherwise fall between two boundaries:

- Time to first token and time per output token: the advice exactly, plus boundaries beyond
  it (long prompts on busy servers; decode steps of 1-5 ms on current GPUs).
- Request duration: not the advice. Its powers of two (0.01 ... 81.92 s) hold none of the round
  thresholds objectives are written against (1, 2.5, 5, 10 s), so a ratio read off them would
  be interpolated or judged at another threshold. These boundaries hold every one exactly, and
  coincide with vLLM's where vLLM has them, so one objective is judged alike over a mixed fleet
  (see fleetscope.alerts.inference).
"""

GENAI_ADVISED_REQUEST_DURATION = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                                  81.92)
GENAI_ADVISED_TIME_TO_FIRST_TOKEN = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                                     5.0, 7.5, 10.0)
GENAI_ADVISED_TIME_PER_OUTPUT_TOKEN = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

REQUEST_DURATION = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0,
                    120.0, 240.0, 480.0, 960.0, 1920.0)
# Queueing spans the same range as whole requests: zero on an idle server, minutes on an overloaded one.
QUEUE_DURATION = REQUEST_DURATION
TIME_TO_FIRST_TOKEN = GENAI_ADVISED_TIME_TO_FIRST_TOKEN + (20.0, 40.0, 80.0)
TIME_PER_OUTPUT_TOKEN = (0.001, 0.0025, 0.005) + GENAI_ADVISED_TIME_PER_OUTPUT_TOKEN
# 1-2-5 up to a million tokens, as vLLM's request_prompt_tokens up to its context length.
TOKENS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0,
          100000.0, 200000.0, 500000.0, 1000000.0)
