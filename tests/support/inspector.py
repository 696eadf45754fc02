"""Lines in the NCCL Inspector plugin's JSON output formats (inspector_json.cc in NVIDIA/nccl):
v4.0 as released NCCL writes it, and the v4.2/v4.3 of open pull requests the collector tolerates."""

from __future__ import annotations

import json

from fleetscope.exporters.nccl.inspector import Communicator, format_lines


def header(comm_id: str = "0x7f8c496ae9f661", rank: int = 0, n_ranks: int = 8, nnodes: int = 1,
           comm_name: str = "DP Group 0") -> dict:
    return {"id": comm_id, "comm_name": comm_name, "rank": rank, "n_ranks": n_ranks, "nnodes": nnodes}


def metadata(version: str = "v4.3", dumped_us: int = 1748030377748202, pid: int = 1639453,
             hostname: str = "node-a") -> dict:
    return {"inspector_output_format_version": version, "git_rev": "", "rec_mechanism": "nccl_profiler_interface",
            "dump_timestamp_us": dumped_us, "hostname": hostname, "pid": pid}


def coll(sn: int, coll: str = "AllReduce", size: int = 16 << 20, exec_us: float = 1000, enqueued_us: int | None = None,
         kernel_start_us: int | None = None, algobw: float = 100.0, busbw: float = 175.0) -> dict:
    """A coll_perf record; with enqueued_us, the verbose event trace: the host's collective start
    and stop, and two kernel channels starting at kernel_start_us (and 3 us later)."""
    body: dict = {"coll": coll, "coll_sn": sn, "coll_msg_size_bytes": size, "coll_exec_time_us": exec_us,
                  "coll_timing_source": "kernel_gpu", "coll_algobw_gbs": algobw, "coll_busbw_gbs": busbw}
    if enqueued_us is not None:
        kernel = kernel_start_us if kernel_start_us is not None else enqueued_us
        body["event_trace_ts"] = {
            "coll_start_ts": enqueued_us, "coll_stop_ts": kernel + int(exec_us),
            "kernel_events": [{"channel_id": channel, "kernel_start_ts": kernel + 3 * channel,
                               "kernel_stop_ts": kernel + int(exec_us), "kernel_record_ts": kernel + int(exec_us) + 2}
                              for channel in range(2)]}
    return {"coll_perf": body}


def p2p(sn: int, op: str = "Send", size: int = 1 << 20, exec_us: float = 200, peer: int = 1) -> dict:
    return {"p2p_perf": {"p2p": op, "p2p_sn": sn, "p2p_peer": peer, "p2p_msg_size_bytes": size,
                         "p2p_exec_time_us": exec_us, "p2p_timing_source": "kernel_gpu", "p2p_algobw_gbs": 5.0,
                         "p2p_busbw_gbs": 5.0}}


def dump_v43(records: list[dict], dropped: int = 0, comm_id: str = "0x7f8c496ae9f661", rank: int = 0,
             n_ranks: int = 8, nnodes: int = 1, comm_name: str = "DP Group 0", dumped_us: int = 1748030377748202,
             pid: int = 1639453, hostname: str = "node-a") -> list[str]:
    """A v4.3 dump (NVIDIA/nccl pull request #2304): the marker with header, metadata and record
    counts, then its records."""
    marker = {
        "header": header(comm_id, rank, n_ranks, nnodes, comm_name),
        "metadata": {**metadata("v4.3", dumped_us, pid, hostname)},
        "dump_stats": {stat: value for kind in ("coll", "p2p") for stat, value in (
            (f"{kind}_records", sum(f"{kind}_perf" in r for r in records)),
            (f"{kind}_dropped_total", dropped if kind == "coll" else 0),
            (f"{kind}_dropped_since_last_dump", 0))},
    }
    return [json.dumps(line, separators=(",", ":")) for line in (marker, *records)]


def lines_v40(records: list[dict], comm_id: str = "0x7f8c496ae9f661", rank: int = 0, n_ranks: int = 8,
              nnodes: int = 1, comm_name: str | None = "DP Group 0", dumped_us: int = 1748030377748202,
              pid: int = 1639453, hostname: str = "node-a") -> list[str]:
    """v4.0 as released NCCL writes it; comm_name=None as before NCCL 2.30."""
    comm = Communicator(comm_id, comm_name or "unknown", rank, n_ranks, nnodes, pid)
    return format_lines(comm, records, dumped_us, hostname, with_comm_name=comm_name is not None)


def lines_v42(records: list[dict], **head) -> list[str]:
    """v4.2 and before: every line carries its own header and metadata."""
    meta_keys = {"version", "dumped_us", "pid", "hostname"}
    meta = metadata(**{"version": "v4.2", **{k: v for k, v in head.items() if k in meta_keys}})
    top = header(**{k: v for k, v in head.items() if k not in meta_keys})
    return [json.dumps({"header": top, "metadata": meta, **r}, separators=(",", ":")) for r in records]
