"""fleetscope.drift.client against a loopback server that answers as told."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleetscope.drift.client import MAX_REFUSAL_REASONS, DriftClient
from fleetscope.localstack.process import free_port


class Answers:
    """A drift-service stand-in: answers each POST with the next scripted status."""

    def __init__(self, statuses: list[int], default: int = 202) -> None:
        self.statuses, self.default = list(statuses), default
        self.received: list[dict] = []
        self.keys: list[str] = []  # each post's Idempotency-Key
        self.lock = threading.Lock()
        answers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with answers.lock:
                    answers.keys.append(self.headers["Idempotency-Key"])
                    status = answers.statuses.pop(0) if answers.statuses else answers.default
                    status, answer = status if isinstance(status, tuple) else (status, b"")
                    if status == 202:
                        answers.received.append(json.loads(body))
                self.send_response(status)
                if status in (408, 429):
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rows(self) -> list:
        return [value for batch in self.received for value in batch["columns"]["score"]]


@pytest.fixture
def answers():
    made = []

    def make(statuses=(), default=202) -> Answers:
        made.append(Answers(list(statuses), default))
        return made[-1]

    yield make
    for server in made:
        server.server.shutdown()


def test_rows_arrive_in_order_in_batches(answers):
    server = answers()
    client = DriftClient(server.url, "iris", batch_rows=100, flush_interval=0.05)
    for index in range(250):
        assert client.send({"score": float(index), "label": "a"})
    client.close()
    assert server.rows() == [float(index) for index in range(250)]
    assert client.sent == 250 and not client.dropped
    assert max(len(batch["columns"]["score"]) for batch in server.received) <= 100


def test_overload_and_server_errors_are_retried_with_backoff(answers):
    server = answers([429, 503, 500])
    client = DriftClient(server.url, "iris", flush_interval=0.05, backoff=0.01)
    client.send_many({"score": 1.0} for _ in range(5))
    client.close()
    assert client.sent == 5 and server.rows() == [1.0] * 5


def test_a_refused_batch_is_dropped_and_counted_not_retried(answers):
    server = answers([400])
    client = DriftClient(server.url, "iris", flush_interval=0.05)
    client.send_many({"score": "bad"} for _ in range(3))
    time.sleep(0.3)
    client.send({"score": 2.0})
    client.close()
    assert client.dropped == {"rejected": 3} and server.rows() == [2.0]


def test_an_unreachable_service_never_blocks_the_caller_and_memory_stays_bounded():
    client = DriftClient(f"http://127.0.0.1:{free_port()}", "iris", max_queue_rows=1000, flush_interval=0.05,
                         backoff=0.01, max_retries=2, batch_rows=100)
    started = time.perf_counter()
    for index in range(20_000):
        client.send({"score": float(index)})
    assert time.perf_counter() - started < 5  # no network wait on the caller's thread
    assert client.queued <= 1000
    client.close(timeout=2)
    assert client.sent == 0
    assert sum(client.dropped.values()) == 20_000
    assert client.dropped["queue_full"] > 10_000


def test_rows_that_cannot_be_sent_are_counted_not_raised(answers):
    server = answers()
    client = DriftClient(server.url, "iris", flush_interval=0.05)
    assert client.send({"score": float("nan")})  # JSON has no NaN: the batch is dropped, the caller unharmed
    time.sleep(0.3)
    client.close()
    client.send({"score": 1.0})
    assert client.dropped == {"invalid": 1, "closed": 1}


def test_every_post_of_a_batch_carries_one_idempotency_key(answers):
    server = answers([503, 500, 429])
    client = DriftClient(server.url, "iris", flush_interval=0.05, backoff=0.01)
    client.send_many({"score": 1.0} for _ in range(3))
    client.close()
    client_two = DriftClient(server.url, "iris", flush_interval=0.05)
    client_two.send({"score": 2.0})
    client_two.close()
    first_batch, second_batch = server.keys[:4], server.keys[4:]
    assert len(set(first_batch)) == 1 and len(first_batch) == 4  # three failures and the success
    assert len(second_batch) == 1 and second_batch[0] != first_batch[0]


@pytest.mark.parametrize("status", [400, 404, 409, 413, 415])
def test_no_client_error_is_retried_but_a_slow_body(answers, status):
    server = answers([status, 408])
    client = DriftClient(server.url, "iris", flush_interval=0.05, backoff=0.01)
    client.send({"score": 1.0})
    time.sleep(0.3)
    client.send({"score": 2.0})
    client.close()
    assert len(server.keys) == 3 and client.dropped == {"rejected": 1} and server.rows() == [2.0]


def test_a_full_store_pauses_posting_and_keeps_the_batch_for_after(answers):
    server = answers([507])  # the service's store is full (storage.max_bytes): no Retry-After, so max_backoff
    client = DriftClient(server.url, "iris", flush_interval=0.05, backoff=0.01, max_backoff=0.6)
    client.send_many({"score": 1.0} for _ in range(3))
    time.sleep(0.3)
    assert len(server.keys) == 1 and client.queued == 3  # not retried at once: kept, waiting out the pause
    client.send({"score": 2.0})
    time.sleep(0.8)
    client.close()
    assert server.rows() == [1.0, 1.0, 1.0, 2.0] and client.sent == 4 and not client.dropped
    assert len(server.keys) == 2


def _refusal(reason: object, message: str = "refused") -> tuple[int, bytes]:
    return 404, json.dumps({"error": message, "reason": reason}).encode()


def test_a_refusal_is_counted_by_the_services_reason_and_logged_once_with_what_it_said(answers, caplog):
    said = "model 'iris' has no schema: declare it in the config or PUT a reference"
    server = answers([_refusal("unknown_model", said)] * 3 + [(400, b"not json")])
    client = DriftClient(server.url, "iris", flush_interval=0.05, batch_rows=1)
    with caplog.at_level("WARNING", logger="fleetscope.drift.client"):
        for index in range(4):
            client.send({"score": float(index)})
            time.sleep(0.15)
        client.close()
    assert client.dropped == {"unknown_model": 3, "rejected": 1}
    logged = [record for record in caplog.records if "refused" in record.getMessage()]
    assert [record.reason for record in logged] == ["unknown_model", "rejected"]
    assert "PUT a reference" in logged[0].service_said
    assert any(sample.labels.get("reason") == "unknown_model" and sample.value == 3
               for family in client.collect() for sample in family.samples)


def test_a_services_reasons_count_by_name_only_while_they_look_like_reasons_and_are_few(answers):
    hostile = ["x" * 10_000, "DROP TABLE", 7, None, "Unknown"]
    many = [f"reason_{index}" for index in range(MAX_REFUSAL_REASONS + 5)]
    server = answers([_refusal(reason) for reason in hostile + many])
    client = DriftClient(server.url, "iris", flush_interval=0.02, batch_rows=1)
    for index in range(len(hostile) + len(many)):
        client.send({"score": float(index)})
        time.sleep(0.03)
    client.close(timeout=10)
    assert client.dropped["rejected"] == len(hostile) + 5, client.dropped
    assert len(set(client.dropped) - {"rejected"}) == MAX_REFUSAL_REASONS
