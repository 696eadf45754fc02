"""What stands in for hardware and jobs where there are none: a fake NVML replaying a recorded node, simulated
GPUs, InfiniBand ports and NCCL jobs, a simulated node for `fleetscope exporter --simulate` and a fleet of them
(`fleetscope simulate-fleet`). Nothing here ships to a node's exporter path: the exporter never imports it."""
