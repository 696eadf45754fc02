"""Histogram bucket boundaries for LLM and classic-model latencies, in seconds, and token counts.

Chosen so that one set serves a 5 ms classifier and a ten-minute generation, with the
round thresholds people write SLOs against (0.1, 0.25, 0.5, 1, 2.5, 5, 10 s ...) as exact
boundaries: an SLO ratio read off a bucket is then exact, not interpolated. The thresholds
also coincide with vLLM's and SGLang's own boundaries where those engines have them, so one
objective can be evaluated over a mixed fleet (see fleetscope.alerts.inference).
"""

REQUEST_DURATION = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0,
                    120.0, 240.0, 480.0, 960.0, 1920.0)
# Queueing spans the same range as whole requests: zero on an idle server, minutes on an overloaded one.
QUEUE_DURATION = REQUEST_DURATION
# Interactive chat wants the first token within 0.2-1 s; long prompts on busy servers take tens of seconds.
TIME_TO_FIRST_TOKEN = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0,
                       40.0, 80.0)
# Decode steps take 5-100 ms on current GPUs; reading speed (about 0.1-0.2 s a token) is the usual objective.
TIME_PER_OUTPUT_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                         0.75, 1.0, 2.5)
# 1-2-5 up to a million tokens, as vLLM's request_prompt_tokens up to its context length.
TOKENS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0,
          100000.0, 200000.0, 500000.0, 1000000.0)
