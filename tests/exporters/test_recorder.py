"""A recording made through RecordingNvml replays to the same page: the recorder and the fake agree."""

from __future__ import annotations

import json
import re

from fleetscope.exporters.gpu.recorder import _plain, record
from fleetscope.simulation.nvml import FakeMig, FakeNvml
from tests.support.exposition import render

_TIMESTAMPS = re.compile(r"^fleetscope_gpu_(last_update|last_xid)_timestamp_seconds.*$", re.M)


def _page(library, make_collector) -> str:
    collector = make_collector(library)
    collector.collect()
    # Sample order within a family follows read order, which carries no meaning.
    return "\n".join(sorted(_TIMESTAMPS.sub("", render(collector.collect())).splitlines()))


def test_recording_the_fake_and_replaying_it_serves_the_same_page(recording, make_collector):
    recorded = record(FakeNvml(recording), interval=0)
    recorded = json.loads(json.dumps(recorded))  # it must survive being written as JSON
    assert len(recorded["devices"]) == 8
    assert recorded["devices"][0]["values"]["nvmlDeviceGetNumFans"] == {"error": "NVML_ERROR_NOT_SUPPORTED"}
    assert recorded["devices"][0]["fields"]["NVML_FI_DEV_RETIRED_SBE"] == {"error": "NVML_ERROR_NOT_SUPPORTED"}
    assert _page(FakeNvml(recorded), make_collector) == _page(FakeNvml(recording), make_collector)


def test_errors_and_mig_devices_are_recorded(recording, make_collector):
    fake = FakeNvml(recording)
    fake.enable_mig(1, [FakeMig("MIG-1", 3, "2g.20gb", 20 << 30, 1 << 30, activity=0.5)])
    fake.fail("nvmlDeviceGetPowerUsage", "NVML_ERROR_UNKNOWN", gpu=2)
    recorded = record(fake, interval=0)
    assert recorded["devices"][2]["values"]["nvmlDeviceGetPowerUsage"] == {"error": "NVML_ERROR_UNKNOWN"}
    instance = recorded["devices"][1]["mig"][0]["values"]
    assert instance["nvmlDeviceGetUUID"] == "MIG-1"
    assert instance["nvmlGpmMetricsGet/NVML_GPM_METRIC_GRAPHICS_UTIL"] == 50
    assert _page(FakeNvml(recorded), make_collector) == _page(fake, make_collector)


def test_plain_turns_pynvml_structs_into_mappings():
    import pynvml

    memory = pynvml.c_nvmlMemory_v2_t()
    memory.total, memory.used = 10, 4
    assert _plain(memory)["total"] == 10 and _plain(memory)["used"] == 4
    assert _plain(b"00000000:18:00.0") == "00000000:18:00.0"
