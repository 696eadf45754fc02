"""NVML GPU Performance Monitoring (Hopper and newer): the DCGM_FI_PROF_* metrics without DCGM,
for a whole GPU or for each MIG GPU instance.

GPM metrics are computed between two samples, so each poll takes a sample and reports the
metrics between it and the previous poll's; the first poll of a GPU reports none.
"""

from __future__ import annotations

from typing import Any

import pynvml

from fleetscope.catalog import FamilySet
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.gpu.calls import Calls

PERCENT = 0.01
METRICS = (
    (pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL, m.GRAPHICS_ENGINE_ACTIVE),
    (pynvml.NVML_GPM_METRIC_SM_UTIL, m.SM_ACTIVE),
    (pynvml.NVML_GPM_METRIC_SM_OCCUPANCY, m.SM_OCCUPANCY),
    (pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, m.TENSOR_ACTIVE),
    (pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL, m.DRAM_ACTIVE),
    (pynvml.NVML_GPM_METRIC_FP64_UTIL, m.FP64_ACTIVE),
    (pynvml.NVML_GPM_METRIC_FP32_UTIL, m.FP32_ACTIVE),
    (pynvml.NVML_GPM_METRIC_FP16_UTIL, m.FP16_ACTIVE),
)


class GpmSampler:
    """Samples one GPU, or one MIG GPU instance of it (Hopper's GPM samples each instance on its own)."""

    def __init__(self, gpu_instance_id: int | None = None) -> None:
        self._gpu_instance_id = gpu_instance_id
        self._previous: Any = None

    def read(self, calls: Calls, handle: Any, labels: dict[str, str], out: FamilySet) -> None:
        """handle: the GPU's (the parent's, for a MIG instance)."""
        sample = calls("nvmlGpmSampleAlloc")
        if sample is None:
            return
        taken = (calls("nvmlGpmSampleGet", handle, sample) if self._gpu_instance_id is None
                 else calls("nvmlGpmMigSampleGet", handle, self._gpu_instance_id, sample))
        if taken is None:
            calls("nvmlGpmSampleFree", sample)
            return
        previous, self._previous = self._previous, sample
        if previous is None:
            return
        try:
            request = pynvml.c_nvmlGpmMetricsGet_t()
            request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = len(METRICS)
            request.sample1 = previous
            request.sample2 = sample
            # NVML's array has a slot for every GPM metric there is; the first len(METRICS) are asked for.
            for slot, (metric_id, _) in zip(request.metrics, METRICS, strict=False):
                slot.metricId = metric_id
            if calls("nvmlGpmMetricsGet", request) is None:
                return
            for slot, (_, spec) in zip(request.metrics, METRICS, strict=False):
                if calls.succeeded("nvmlGpmMetricsGet", slot.nvmlReturn):
                    out.add(spec, labels, slot.value * PERCENT)
        finally:
            calls("nvmlGpmSampleFree", previous)

    def close(self, calls: Calls) -> None:
        if self._previous is not None:
            calls("nvmlGpmSampleFree", self._previous)
            self._previous = None
