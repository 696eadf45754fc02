"""The gpu collector's --collector.gpu flags and its builder."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleetscope.exporters.option import CollectorOption, poll_flag, scheduled
from fleetscope.exporters.registry import Source


def _flags(group: argparse._ArgumentGroup) -> None:
    poll_flag(group, "gpu", "15s", "NVML")
    group.add_argument("--collector.gpu.pod-resources-socket", dest="gpu_pod_resources_socket",
                       default="/var/lib/kubelet/pod-resources/kubelet.sock", metavar="PATH",
                       help="kubelet pod-resources socket; where it exists, GPU series carry the namespace, pod "
                            "and container the GPU is allocated to. Empty disables")
    group.add_argument("--collector.gpu.xid-events", dest="gpu_xid_events", action=argparse.BooleanOptionalAction,
                       default=True, help="count XID errors from NVML's event API")
    group.add_argument("--collector.gpu.hpc-job-mapping-dir", dest="gpu_hpc_job_mapping_dir", type=Path,
                       default=os.environ.get("DCGM_HPC_JOB_MAPPING_DIR") or None, metavar="PATH",
                       help="dcgm-exporter's HPC job-mapping directory (a file per GPU index listing its jobs, "
                            "written by a Slurm prolog): GPU series carry hpc_job. Without the flag, "
                            "$DCGM_HPC_JOB_MAPPING_DIR where it is set")
    group.add_argument("--collector.gpu.slurm-jobs", dest="gpu_slurm_jobs", action=argparse.BooleanOptionalAction,
                       default=True, help="label each GPU and process with the Slurm job of its processes (from "
                                          "their cgroup or SLURM_JOB_ID), where no mapping directory names it")
    group.add_argument("--collector.gpu.pod-uid", dest="gpu_pod_uid", action=argparse.BooleanOptionalAction,
                       default=False, help="add pod_uid, read from the GPU processes' cgroups, to process series "
                                           "and to a GPU whose processes are all in one pod (needs hostPID)")
    group.add_argument("--collector.gpu.ray", dest="gpu_ray", action=argparse.BooleanOptionalAction, default=True,
                       help="label each GPU and process held by a Ray worker with its Ray job (RAY_JOB_ID in its "
                            "environment) and a Serve replica's ray_serve_application and ray_serve_deployment "
                            "(its process title)")
    group.add_argument("--collector.gpu.ray-dashboard", dest="gpu_ray_dashboard", default="", metavar="URL",
                       help="the Ray dashboard (http://<head>:8265): the job and actor class of actors in workers "
                            "Ray prestarted, and the Serve replica (ray_serve_replica) an actor is or was placed for, "
                            "which only it knows; read at most every 15s with a 2s timeout. Empty disables")
    group.add_argument("--collector.gpu.ray-token-file", dest="gpu_ray_token_file", type=Path, default=None,
                       metavar="PATH", help="the Ray cluster's token, for a dashboard with token authentication "
                                            "(Ray's default since 2.52; ~/.ray/auth_token on the head)")
    # Outside --collector.gpu.: the name dcgm-exporter users look for. It renders this collector's readings.
    group.add_argument("--compat.dcgm", dest="compat_dcgm", action=argparse.BooleanOptionalAction, default=False,
                       help="also serve every GPU reading under dcgm-exporter's names, labels and units "
                            "(DCGM_FI_DEV_GPU_UTIL{UUID,modelName,Hostname,...}), from the same NVML reads, so "
                            "dashboards and autoscalers written for dcgm-exporter work unchanged")


def _sources(args: argparse.Namespace) -> Sequence[Source]:
    from fleetscope.exporters.attribution import HoldersSource, combine
    from fleetscope.exporters.attribution.processes import ProcessAttribution
    from fleetscope.exporters.attribution.ray import RayAttribution, RayDashboard
    from fleetscope.exporters.attribution.slurm import JobMappingDirectory
    from fleetscope.exporters.gpu.collector import GpuCollector
    from fleetscope.exporters.kubernetes.podresources import PodResources

    if args.stand_in:
        library: Any = args.stand_in.nvml()
    else:
        import pynvml

        library = pynvml
    holders: list[HoldersSource] = []
    if args.gpu_pod_resources_socket:
        holders.append(PodResources(args.gpu_pod_resources_socket).gpu_pods)
    if args.gpu_hpc_job_mapping_dir:
        holders.append(JobMappingDirectory(args.gpu_hpc_job_mapping_dir).holders)
    dashboard = (RayDashboard(args.gpu_ray_dashboard, args.hostname, args.gpu_ray_token_file)
                 if args.gpu_ray and args.gpu_ray_dashboard else None)
    ray = RayAttribution(args.procfs, dashboard) if args.gpu_ray else None
    attribution = ProcessAttribution(slurm_jobs=args.gpu_slurm_jobs, pod_uid=args.gpu_pod_uid, proc=args.procfs,
                                     ray=ray)
    collector = GpuCollector(library, args.hostname, holders=combine(holders) if holders else dict,
                             xid_events=args.gpu_xid_events, compat_dcgm=args.compat_dcgm, attribution=attribution)
    return (scheduled(collector, args.gpu_poll_interval),)


OPTION = CollectorOption("gpu", "NVIDIA GPUs through NVML", True, _flags, _sources)
