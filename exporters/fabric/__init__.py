"""The fabric collector: InfiniBand and RoCE port counters from sysfs."""
