"""The NCCL collector: collective performance from the NCCL Inspector profiler plugin."""
