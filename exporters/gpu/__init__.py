"""The GPU collector: NVML through pynvml, with a recorded fake for machines without a GPU."""
