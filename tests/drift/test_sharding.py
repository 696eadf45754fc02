"""Models spread over drift service instances: the shard function, and two real instances holding and evaluating
each model once, reached by the client through one URL template."""

from __future__ import annotations

import sys
import time
from collections import Counter

import pytest

from fleetscope.drift.client import DriftClient
from fleetscope.drift.service import config as service_config
from fleetscope.drift.sharding import index_from_hostname, shard_of, shard_url
from fleetscope.localstack.process import ManagedProcess, free_port, http_ok
from tests.drift.support import call, outputs
from tests.support.exposition import values

MODELS = [f"model-{number:02d}" for number in range(12)]


def test_the_shard_of_a_model_never_changes():
    # Pinned: a change here moves every deployed fleet's models to other instances.
    assert [shard_of(model, 3) for model in ("iris", "chat", "fraud", "ranker")] == [1, 0, 2, 0]
    assert all(shard_of(model, 1) == 0 for model in MODELS)


def test_models_spread_evenly_and_few_move_when_a_shard_is_added():
    models = [f"m{number}" for number in range(4000)]
    counts = Counter(shard_of(model, 4) for model in models)
    assert all(800 <= count <= 1200 for count in counts.values()), counts
    moved = [model for model in models if shard_of(model, 4) != shard_of(model, 5)]
    assert all(shard_of(model, 5) == 4 for model in moved)  # only onto the new shard
    assert 0.15 <= len(moved) / len(models) <= 0.25  # about 1/5


def test_urls_and_indexes():
    assert shard_url("http://drift-{shard}.drift:9840", "iris", 3) == "http://drift-1.drift:9840"
    assert shard_url("http://drift:9840", "iris", 1) == "http://drift:9840"
    with pytest.raises(ValueError, match=r"must hold \{shard\}"):
        shard_url("http://drift:9840", "iris", 2)
    assert index_from_hostname("fleetscope-drift-11") == 11
    with pytest.raises(ValueError, match="does not end in -N"):
        index_from_hostname("drift")
    with pytest.raises(service_config.ConfigError, match="shard.index must be from 0 to shard.count - 1"):
        service_config.parse({"shard": {"index": 2, "count": 2}})


def _instance(tmp_path, shard: int, port: int) -> tuple[ManagedProcess, str]:
    models = "\n".join(f"  {model}:\n    columns: {{score: numerical, label: categorical}}" for model in MODELS)
    config = tmp_path / "drift.yaml"
    config.write_text(f"evaluation_interval: 1s\ndefaults:\n  window: {{type: sliding, duration: 1h}}\n"
                      f"models:\n{models}\n")
    address = f"127.0.1.1{shard}:{port}"  # the two instances on one port, at two loopback addresses
    argv = [sys.executable, "-m", "fleetscope", "drift", "serve", f"--config.file={config}",
            f"--storage.path={tmp_path / f'shard-{shard}.sqlite'}", "--shard.count=2", f"--shard.index={shard}",
            f"--web.listen-address={address}"]
    return ManagedProcess(argv, tmp_path / f"shard-{shard}.log", lambda: http_ok(f"http://{address}/-/ready")), address


def test_two_instances_hold_and_evaluate_every_model_once(tmp_path):
    port = free_port()
    instances = [_instance(tmp_path, shard, port) for shard in (0, 1)]
    try:
        for process, _ in instances:
            process.start(timeout=60)
        addresses = [address for _, address in instances]
        template = f"http://127.0.1.1{{shard}}:{port}"
        held = [set(call(address, "GET", "/v1/models")[1]) for address in addresses]
        assert held[0] | held[1] == set(MODELS) and not held[0] & held[1]
        assert held[1] == {model for model in MODELS if shard_of(model, 2) == 1}

        rows = outputs(300, seed=1)
        for model in MODELS:
            owner = shard_url(template, model, 2).removeprefix("http://")
            reference = {"columns": {"score": [r["score"] for r in rows], "label": [r["label"] for r in rows]}}
            assert call(owner, "PUT", f"/v1/models/{model}/reference", reference)[0] == 200
            client = DriftClient(template, model, shards=2, flush_interval=0.05)
            client.send_many({"score": r["score"], "label": r["label"]} for r in outputs(100, seed=2))
            client.close()
            assert client.sent == 100, (model, client.dropped)

        # The other instance refuses the model, naming its shard.
        model = MODELS[0]
        other = addresses[1 - shard_of(model, 2)]
        status, body, headers = call(other, "POST", f"/v1/models/{model}/outputs", rows[:3])
        assert status == 421 and body["reason"] == "wrong_shard" and headers["fleetscope-shard"] == \
            str(shard_of(model, 2))
        assert call(other, "GET", f"/v1/models/{model}/drift")[0] == 421

        # Every model is evaluated by its scheduler, on its own instance only.
        deadline = time.monotonic() + 60
        while True:
            pages = [call(address, "GET", "/metrics")[1] for address in addresses]
            evaluated = {model: [values(page, "fleetscope_drift_evaluations_total", model=model, outcome="success")
                                 for page in pages] for model in MODELS}
            if all(any(found) for found in evaluated.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for model, found in evaluated.items():
            owner = shard_of(model, 2)
            assert found[owner] and found[owner][0] >= 1, model
            assert found[1 - owner] == [], model  # never evaluated on the other
    finally:
        for process, _ in instances:
            process.stop()
