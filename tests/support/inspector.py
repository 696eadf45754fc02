"""Lines in the NCCL Inspector plugin's JSON output format (inspector_json.cc in NVIDIA/nccl)."""

from __future__ import annotations

import json

from fleetscope.exporters.nccl.inspector import Communicator, format_dump


def header(comm_id: str = "0x7f8c496ae9f661", rank: int = 0, n_ranks: int = 8, nnodes: int = 1,
           comm_name: str = "DP Group 0") -> dict:
    return {"id": comm_id, "comm_name": comm_name, "rank": rank, "n_ranks": n_ranks, "nnodes": nnodes}


def metadata(version: str = "v4.3", dumped_us: int = 1748030377748202, pid: int = 1639453,
             hostname: str = "node-a") -> dict:
    return {"inspector_output_format_version": version, "git_rev": "", "rec_mechanism": "nccl_profiler_interface",
            "dump_timestamp_us": dumped_us, "hostname": hostname, "pid": pid}


def coll(sn: int, coll: str = "AllReduce", size: int = 16 << 20, exec_us: float = 1000, started_us: int | None = None,
         algobw: float = 100.0, busbw: float = 175.0) -> dict:
    body = {"coll": coll, "coll_algo": "RING", "coll_proto": "SIMPLE", "coll_sn": sn, "coll_msg_size_bytes": size,
            "coll_exec_time_us": exec_us, "coll_timing_source": "kernel_gpu", "coll_algobw_gbs": algobw,
            "coll_busbw_gbs": busbw}
    if started_us is not None:
        body["event_trace_ts"] = {"coll_start_ts": started_us, "coll_stop_ts": started_us + int(exec_us),
                                  "kernel_events": []}
    return {"coll_perf": body}


def p2p(sn: int, op: str = "Send", size: int = 1 << 20, exec_us: float = 200, peer: int = 1) -> dict:
    return {"p2p_perf": {"p2p": op, "p2p_sn": sn, "p2p_peer": peer, "p2p_msg_size_bytes": size,
                         "p2p_exec_time_us": exec_us, "p2p_timing_source": "kernel_gpu", "p2p_algobw_gbs": 5.0,
                         "p2p_busbw_gbs": 5.0}}


def dump_v43(records: list[dict], dropped: int = 0, comm_id: str = "0x7f8c496ae9f661", rank: int = 0,
             n_ranks: int = 8, nnodes: int = 1, comm_name: str = "DP Group 0", dumped_us: int = 1748030377748202,
             pid: int = 1639453, hostname: str = "node-a") -> list[str]:
    """A v4.3 dump: the marker with header and metadata, then its records."""
    return format_dump(Communicator(comm_id, comm_name, rank, n_ranks, nnodes, pid), records, dumped_us, hostname,
                       dropped={"coll": dropped})


def lines_v42(records: list[dict], **head) -> list[str]:
    """v4.2 and before: every line carries its own header and metadata."""
    meta_keys = {"version", "dumped_us", "pid", "hostname"}
    meta = metadata(**{"version": "v4.2", **{k: v for k, v in head.items() if k in meta_keys}})
    top = header(**{k: v for k, v in head.items() if k not in meta_keys})
    return [json.dumps({"header": top, "metadata": meta, **r}, separators=(",", ":")) for r in records]
