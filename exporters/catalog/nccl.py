"""NCCL collective metrics, from the NCCL Inspector profiler plugin's JSON output.

Series of a communicator carry COMM_LABELS: the host, NCCL's communicator hash (comm_id)
and the communicator's name as the job set it (sanitized, at most 64 characters). The
number of communicators tracked is bounded (--collector.nccl.max-communicators).
"""

from fleetscope.catalog import MetricSpec

COMM_LABELS = ("hostname", "comm_id", "comm_name")
OPERATION_LABELS = COMM_LABELS + ("rank", "operation", "size")


def _nccl(name: str, type_: str, help_: str, *labels: str) -> MetricSpec:
    return MetricSpec(f"fleetscope_nccl_{name}", type_, help_, labels)


COLLECTIVES = _nccl("collectives_total", "counter",
                    "Collective and point-to-point operations completed, by rank, operation and message size bucket.",
                    *OPERATION_LABELS)
BYTES = _nccl("bytes_total", "counter",
              "Message bytes of the operations completed, per rank as passed to NCCL (coll_msg_size_bytes).",
              *OPERATION_LABELS)
BUS_BYTES = _nccl("bus_bytes_total", "counter",
                  "Bytes over the bus as the NCCL Inspector and nccl-tests count them: per-rank bytes times 2(n-1)/n "
                  "for AllReduce, times (n-1) for AllGather, ReduceScatter, AlltoAll, Gather and Scatter, times 1 for "
                  "Broadcast, Reduce, Send and Recv; none for Unknown. rate(bus_bytes) / rate(seconds) is the bus "
                  "bandwidth.", *OPERATION_LABELS)
SECONDS = _nccl("seconds_total", "counter", "Time spent in the operations completed (coll_exec_time_us).",
                *OPERATION_LABELS)
DURATION = MetricSpec("fleetscope_nccl_duration_seconds", "histogram",
                      "How long each operation took, by operation and message size bucket.",
                      COMM_LABELS + ("operation", "size"),
                      buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0))
COMM_RANKS = _nccl("comm_ranks", "gauge", "Ranks in the communicator (n_ranks).", *COMM_LABELS)
COMM_NODES = _nccl("comm_nodes", "gauge", "Nodes the communicator spans (nnodes).", *COMM_LABELS)
LAST_PROGRESS = _nccl("comm_last_progress_timestamp_seconds", "gauge",
                      "Unix time at which a rank of the communicator on this node last completed an operation; "
                      "a communicator whose processes live but whose progress stops is hung.", *COMM_LABELS)
SEQUENCE = _nccl("rank_sequence", "gauge",
                 "Sequence number of the last collective of this operation a rank completed (coll_sn; NCCL numbers "
                 "each operation on its own); ranks of one communicator that disagree for long point at the rank "
                 "that stopped.", *COMM_LABELS, "rank", "operation")
LATENESS = _nccl("rank_lateness_seconds", "gauge",
                 "How much later than the median rank on this node a rank arrives at collectives (moving average). "
                 "From the kernels' start times where verbose Inspector dumps record them, else from execution time: "
                 "in a synchronous collective the late rank waits least, so it shows the shortest time. Never from "
                 "the host's enqueue time, which measures the CPU.", *COMM_LABELS, "rank")
SKEW = _nccl("comm_skew_seconds", "gauge",
             "The slowest local rank's lateness against the median, per collective (moving average).", *COMM_LABELS)
DROPPED = _nccl("records_dropped_total", "counter",
                "Records the Inspector overwrote before dumping them (dump_stats dropped_total), by kind.",
                *COMM_LABELS, "rank", "kind")
REJECTED = MetricSpec("fleetscope_nccl_records_rejected_total", "counter",
                      "Inspector lines the collector could not use, by reason.", ("hostname", "reason"))
FILES = MetricSpec("fleetscope_nccl_inspector_files", "gauge", "Inspector output files being followed.",
                   ("hostname",))


# From NCCL_DEBUG=INFO logs (--collector.nccl.debug-log)
COMM_TRANSPORT = MetricSpec("fleetscope_nccl_comm_transport_info", "gauge",
                            "A transport the communicator's channels use (P2P/CUMEM, SHM, NET/IB, NET/Socket, ...); "
                            "always 1.", ("hostname", "comm_id", "transport"))
COMM_ALGORITHM = MetricSpec("fleetscope_nccl_comm_algorithm_info", "gauge",
                            "A topology the communicator built (ring, tree); always 1.",
                            ("hostname", "comm_id", "algorithm"))
COMM_CHANNELS = MetricSpec("fleetscope_nccl_comm_channels", "gauge",
                           "Channels the communicator set up, by kind (coll, collnet, nvls, p2p).",
                           ("hostname", "comm_id", "kind"))
NETWORK = MetricSpec("fleetscope_nccl_network_info", "gauge",
                     "A network NCCL chose on this node (IB, Socket, or a net plugin's name); always 1.",
                     ("hostname", "network"))
WARNINGS = MetricSpec("fleetscope_nccl_warnings_total", "counter",
                      "NCCL WARN lines in the debug logs, by category (network, cuda, timeout, memory, other).",
                      ("hostname", "category"))


# From NCCL RAS (--collector.nccl.ras-address)
RAS_UP = MetricSpec("fleetscope_nccl_ras_up", "gauge",
                    "Whether the NCCL RAS service answered the last status query (0 also when no job runs).",
                    ("hostname",))
RAS_RANKS = MetricSpec("fleetscope_nccl_ras_comm_ranks", "gauge",
                       "Ranks in the communicator, job-wide, as RAS sees it.", ("hostname", "comm_id"))
RAS_MISSING_RANKS = MetricSpec("fleetscope_nccl_ras_comm_missing_ranks", "gauge",
                               "Ranks of the communicator that did not answer RAS.", ("hostname", "comm_id"))
RAS_DEAD_RANKS = MetricSpec("fleetscope_nccl_ras_comm_dead_ranks", "gauge",
                            "Missing ranks RAS considers dead.", ("hostname", "comm_id"))
RAS_ERROR_RANKS = MetricSpec("fleetscope_nccl_ras_comm_error_ranks", "gauge",
                             "Ranks reporting an asynchronous error or an abort.", ("hostname", "comm_id"))
RAS_COLLECTIVES_MIN = MetricSpec("fleetscope_nccl_ras_comm_min_collectives", "gauge",
                                 "Fewest collectives any rank of the communicator has run.", ("hostname", "comm_id"))
RAS_COLLECTIVES_MAX = MetricSpec("fleetscope_nccl_ras_comm_max_collectives", "gauge",
                                 "Most collectives any rank of the communicator has run.", ("hostname", "comm_id"))
RAS_LAST_PROGRESS = MetricSpec("fleetscope_nccl_ras_comm_last_progress_timestamp_seconds", "gauge",
                               "Unix time at which the communicator's collective count last rose.",
                               ("hostname", "comm_id"))
RAS_HUNG = MetricSpec("fleetscope_nccl_ras_comm_hung", "gauge",
                      "1 when the communicator's ranks disagree (or some are missing) and its counts have not moved "
                      "for --collector.nccl.ras-hang-after.", ("hostname", "comm_id"))
RAS_LAGGING_RANK = MetricSpec("fleetscope_nccl_ras_lagging_rank_collectives", "gauge",
                              "How many collectives a rank is behind the furthest rank (at most 8 ranks named per "
                              "communicator).", ("hostname", "comm_id", "rank"))

METRICS = tuple(value for value in globals().values() if isinstance(value, MetricSpec))
