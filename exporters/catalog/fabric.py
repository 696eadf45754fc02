"""InfiniBand and RoCE port metrics, read from sysfs (/sys/class/infiniband).

Each series carries PORT_LABELS: the host, the RDMA device (mlx5_0) and the port number.
"""

from fleetscope.catalog import MetricSpec

PORT_LABELS = ("hostname", "device", "port")


def _port(name: str, type_: str, help_: str, *extra: str) -> MetricSpec:
    return MetricSpec(f"fleetscope_fabric_port_{name}", type_, help_, PORT_LABELS + extra)


DEVICE_INFO = MetricSpec(
    "fleetscope_fabric_device_info", "gauge",
    "An RDMA device (HCA or NIC) and its firmware; always 1.",
    ("hostname", "device", "hca_type", "firmware_version", "board_id"),
)
PORT_INFO = _port("info", "gauge", "A port and its link layer (InfiniBand, or Ethernet for RoCE); always 1.",
                  "link_layer")
PORT_STATE = _port("state", "gauge", "Logical port state: 1 down, 2 init, 3 armed, 4 active, 5 active deferred.")
PORT_PHYSICAL_STATE = _port("physical_state", "gauge",
                            "Physical port state: 2 polling, 3 disabled, 4 training, 5 link up, 6 error recovery.")
PORT_RATE = _port("rate_bytes_per_second", "gauge", "Link rate in bytes per second (400 Gb/s NDR is 5e10).")
TRANSMIT_BYTES = _port("transmit_bytes_total", "counter",
                       "Data bytes sent (port_xmit_data, which counts 4-byte words, times 4).")
RECEIVE_BYTES = _port("receive_bytes_total", "counter",
                      "Data bytes received (port_rcv_data, which counts 4-byte words, times 4).")
TRANSMIT_PACKETS = _port("transmit_packets_total", "counter", "Packets sent (port_xmit_packets).")
RECEIVE_PACKETS = _port("receive_packets_total", "counter", "Packets received (port_rcv_packets).")
SYMBOL_ERRORS = _port("symbol_errors_total", "counter", "Minor link errors on any lane (symbol_error).")
LINK_DOWNED = _port("link_downed_total", "counter", "Times the link went down after failing to recover (link_downed).")
LINK_ERROR_RECOVERIES = _port("link_error_recoveries_total", "counter",
                              "Times the link recovered from errors by retraining (link_error_recovery).")
TRANSMIT_WAIT = _port("transmit_wait_ticks_total", "counter",
                      "Ticks the port had data to send but could not, a sign of congestion (port_xmit_wait).")
ERRORS = _port("errors_total", "counter",
               "Port errors by the IB counter that counted them (port_rcv_errors, port_xmit_discards, ...).", "type")
HW_ERRORS = _port("hw_errors_total", "counter",
                  "Transport errors and retransmissions counted by the NIC (hw_counters: out_of_sequence, "
                  "local_ack_timeout_err, ...).", "type")
CONGESTION_NOTIFICATIONS = _port("congestion_notifications_total", "counter",
                                 "RoCE congestion control: CNPs sent and handled, ECN-marked packets (hw_counters).",
                                 "type")
UNREADABLE = _port("unreadable_files", "gauge",
                   "Counter files of the port that could not be read or parsed at the last collection.")

METRICS = tuple(value for value in globals().values() if isinstance(value, MetricSpec))
