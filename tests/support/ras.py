"""A stand-in for the NCCL RAS service on loopback, speaking its client protocol
(src/ras/client.cc in NVIDIA/nccl) and answering STATUS with reports in NCCL's JSON schema."""

from __future__ import annotations

import json
import socket
import threading


def report(comms: dict[str, dict[int, int]], missing: dict[str, list[tuple[int, bool]]] | None = None,
           errors: dict[str, list[int]] | None = None, missing_comma: bool = False) -> str:
    """comms: {hash: {rank: AllReduce count}}; missing: {hash: [(rank, considered dead)]};
    errors: {hash: [ranks with async_error]}. missing_comma reproduces NCCL 2.28.9's invalid JSON."""
    missing, errors = missing or {}, errors or {}
    body = {"nccl_version": "2.28.9", "cuda_runtime_version": 12090, "cuda_driver_version": 13000,
            "timestamp": "2026-11-23 07:00:00", "communicators_count": len(comms), "communicators": []}
    for comm_hash, ranks in comms.items():
        gone = missing.get(comm_hash, [])
        body["communicators"].append({
            "hash": comm_hash, "secondary_hash": "0x1:0x2", "size": len(ranks) + len(gone),
            "ranks_count": len(ranks), "missing_ranks_count": len(gone),
            "ranks": [{"rank": rank, "host": "10.0.0.1", "pid": 1000 + rank, "cuda_dev": rank % 8,
                       "nvml_dev": rank % 8,
                       "status": {"init_state": 0, "async_error": 1 if rank in errors.get(comm_hash, []) else 0,
                                  "finalize_called": False, "destroy_flag": False, "abort_flag": False},
                       "collective_counts": {"Broadcast": 0, "Reduce": 0, "AllGather": 0, "ReduceScatter": 0,
                                             "AllReduce": count}} for rank, count in ranks.items()],
            "missing_ranks": [{"rank": rank, "host": "10.0.0.2", "pid": 2000 + rank, "cuda_dev": 0, "nvml_dev": 0,
                               "status": {"unresponsive": True, "considered_dead": dead}} for rank, dead in gone],
        })
    body["ras"] = {"collection_time_sec": 0.0, "timeouts_count": 0}
    text = json.dumps(body, indent=2)
    if missing_comma:
        text = text.replace('"nvml_dev": 0,\n          "status": {\n            "unresponsive"',
                            '"nvml_dev": 0\n          "status": {\n            "unresponsive"')
    return text


class FakeRas:
    """Answers one client at a time; `answer` is the STATUS report, `format_answer` the reply to SET FORMAT,
    `delay` how long the report takes (as the service waits out an unresponsive peer's leg)."""

    def __init__(self) -> None:
        self.answer = report({})
        self.format_answer = "OK"
        self.delay = 0.0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)  # closing the socket does not wake a blocked accept(); polling does
        self.address = ("127.0.0.1", self._server.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(10)
            with connection, connection.makefile("rwb") as stream:
                try:
                    if not stream.readline().startswith(b"CLIENT PROTOCOL "):
                        continue
                    stream.write(b"SERVER PROTOCOL 2\n")
                    stream.flush()
                    if stream.readline().strip().upper() != b"SET FORMAT JSON":
                        continue
                    stream.write(f"{self.format_answer}\n".encode())
                    stream.flush()
                    if stream.readline().strip().upper() == b"STATUS":
                        if self._stop.wait(self.delay):
                            return
                        stream.write(self.answer.encode())
                        stream.flush()
                except OSError:
                    continue
