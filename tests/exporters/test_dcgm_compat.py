"""--compat.dcgm: the GPU collector's readings under dcgm-exporter's names, labels and units."""

from __future__ import annotations

import functools
import time

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from fleetscope.exporters.catalog import dcgm
from fleetscope.exporters.catalog import gpu as m
from fleetscope.exporters.gpu.dcgm import DcgmRenderer
from fleetscope.exporters.server import encode
from fleetscope.exporters.verbatim import VerbatimFamily
from fleetscope.simulation.nvml import FakeMig
from tests.conftest import promtool_check_metrics
from tests.support import exposition

UUID0 = "GPU-5e1f0c3a-0000-4b7e-9a2c-0d3f6e8b0000"


def samples(page: str) -> exposition.Samples:
    """As Prometheus reads them: prometheus_client's parser renames every counter's samples NAME_total."""
    return [(name.removesuffix("_total") if name.startswith("DCGM_") else name, labels, v)
            for name, labels, v in exposition.samples(page)]


values = functools.partial(exposition.values, parse=samples)
value = functools.partial(exposition.value, parse=samples)


def test_off_by_default(fake, make_collector, page_of):
    assert not [name for name, _, _ in samples(page_of(make_collector(fake))) if name.startswith("DCGM_")]


def test_every_field_is_the_native_reading_in_dcgm_units(fake, make_collector, page_of):
    page = page_of(_second_read(fake, make_collector))
    parsed = samples(page)
    native = {(name, labels["uuid"]): v for name, labels, v in parsed if "uuid" in labels}
    checked = 0
    for field in dcgm.FIELDS:
        for name, labels, v in parsed:
            if name != field.name:
                continue
            source = [sv for sn, sl, sv in parsed if sn == field.source.name and sl["uuid"] == labels["UUID"]
                      and field.matches(sl)]
            assert source, f"{field.name} has no native reading behind it"
            assert v == pytest.approx(sum(source) * field.scale)
            checked += 1
    assert checked >= 8 * 25  # every field the recorded H100 supports, on each of its 8 GPUs
    # Spot checks in dcgm-exporter's units: MHz, MiB, percent, millijoules.
    assert value(page, "DCGM_FI_DEV_SM_CLOCK", UUID=UUID0) == native[(m.SM_CLOCK.name, UUID0)] / 1e6
    assert value(page, "DCGM_FI_DEV_FB_USED", UUID=UUID0) == native[(m.MEMORY_USED.name, UUID0)] / 2**20
    assert value(page, "DCGM_FI_DEV_GPU_UTIL", UUID=UUID0) == pytest.approx(
        native[(m.UTILIZATION.name, UUID0)] * 100)
    assert value(page, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", UUID=UUID0) == pytest.approx(
        native[(m.ENERGY.name, UUID0)] * 1000)


def test_violation_durations_are_nanoseconds_as_dcgm_exporter_4_4_2_4_7_1_documents(fake, make_collector, page_of):
    # etc/default-counters.csv says "(in ns)" from 4.4.2-4.7.1 on (dcgm-exporter #589); microseconds were 1000x small.
    fake.devices[0].fields["NVML_FI_DEV_CLOCKS_EVENT_REASON_SW_POWER_CAP"] = 3_000_000_000  # NVML's ns: 3 s
    fake.devices[0].fields["NVML_FI_DEV_CLOCKS_EVENT_REASON_SYNC_BOOST"] = 250_000  # 0.25 ms
    page = page_of(_second_read(fake, make_collector))
    assert value(page, "DCGM_FI_DEV_POWER_VIOLATION", UUID=UUID0) == pytest.approx(3e9)
    assert value(page, "DCGM_FI_DEV_SYNC_BOOST_VIOLATION", UUID=UUID0) == pytest.approx(250_000)
    assert "(in ns)" in dcgm.FIELDS[[f.name for f in dcgm.FIELDS].index("DCGM_FI_DEV_POWER_VIOLATION")].help


def test_every_field_is_served_where_the_gpu_has_it(fake, make_collector, page_of):
    # The recorded H100 remaps rows instead of retiring pages; an older GPU answers these.
    fake.devices[0].fields.update(
        {"NVML_FI_DEV_RETIRED_SBE": 2, "NVML_FI_DEV_RETIRED_DBE": 0, "NVML_FI_DEV_RETIRED_PENDING": 0})
    page = page_of(_second_read(fake, make_collector))  # GPM and NVLink rates need a previous reading
    served = {name for name, _, _ in samples(page)}
    assert {field.name for field in dcgm.ALL} - served == set()
    assert set(dcgm.NOT_SERVED).isdisjoint(served)


def _second_read(fake, make_collector):
    collector = make_collector(fake, compat_dcgm=True)
    collector.collect()
    return collector


def test_labels_are_dcgm_exporters(fake, make_collector, page_of):
    page = page_of(make_collector(fake, compat_dcgm=True))
    labels = next(lb for name, lb, _ in samples(page) if name == "DCGM_FI_DEV_GPU_TEMP" and lb["gpu"] == "3")
    assert labels == {
        "gpu": "3", "UUID": fake.devices[3].values["nvmlDeviceGetUUID"],
        "pci_bus_id": fake.devices[3].values["nvmlDeviceGetPciInfo"]["busId"], "device": "nvidia3",
        "modelName": "NVIDIA H100 80GB HBM3", "Hostname": "node-a", "DCGM_FI_DRIVER_VERSION": "550.90.07"}


def test_mig_instances_carry_gpu_i_id_and_profile_and_their_pod(fake, make_collector, page_of):
    mig_uuid = "MIG-1b2c3d4e-0000-5f6a-7b8c-9d0e1f2a3b4c"
    fake.enable_mig(1, [FakeMig(mig_uuid, 9, "1g.10gb", 10 << 30, 3 << 30)])
    pods = {mig_uuid: {"namespace": "serving", "pod": "vllm-0", "container": "engine"}}
    page = page_of(make_collector(fake, compat_dcgm=True, holders=lambda: pods))
    instance = [lb for name, lb, v in samples(page) if name == "DCGM_FI_DEV_FB_USED" and lb.get("GPU_I_ID") == "9"]
    assert instance == [{"gpu": "1", "UUID": fake.devices[1].values["nvmlDeviceGetUUID"],
                         "pci_bus_id": fake.devices[1].values["nvmlDeviceGetPciInfo"]["busId"], "device": "nvidia1",
                         "modelName": "NVIDIA H100 80GB HBM3", "GPU_I_PROFILE": "1g.10gb", "GPU_I_ID": "9",
                         "Hostname": "node-a", "DCGM_FI_DRIVER_VERSION": "550.90.07",
                         "namespace": "serving", "pod": "vllm-0", "container": "engine"}]
    assert value(page, "DCGM_FI_DEV_FB_USED", GPU_I_ID="9") == 3 * 1024


def test_a_whole_gpus_pod_labels_pass_through(fake, make_collector, page_of):
    pods = {UUID0: {"namespace": "ml", "pod": "train-0", "container": "main"}}
    page = page_of(make_collector(fake, compat_dcgm=True, holders=lambda: pods))
    assert values(page, "DCGM_FI_DEV_GPU_UTIL", pod="train-0", namespace="ml", container="main", gpu="0")


def test_xid_errors_is_the_last_code_with_err_code_and_err_msg(fake, make_collector, page_of):
    collector = make_collector(fake, compat_dcgm=True, xid_events=True)
    page = page_of(collector)
    assert value(page, "DCGM_FI_DEV_XID_ERRORS", gpu="2", err_code="0", err_msg="No Error") == 0
    for code, message in ((43, "GPU stopped processing"), (250, "Unknown Error")):
        fake.inject_xid(2, code)
        page = _page_when(lambda p, c=code: values(p, "DCGM_FI_DEV_XID_ERRORS", gpu="2", err_code=str(c)),
                          collector, page_of)
        assert value(page, "DCGM_FI_DEV_XID_ERRORS", gpu="2", err_code=str(code), err_msg=message) == code


def _page_when(ready, collector, page_of, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    page = page_of(collector)
    while not ready(page) and time.monotonic() < deadline:
        time.sleep(0.05)
        page = page_of(collector)
    return page


def test_nvlink_bandwidth_is_dcgms_kib_per_second_over_1000_between_readings(fake, make_collector):
    now = [100.0]
    renderer = DcgmRenderer(clock=lambda: now[0])
    collector = make_collector(fake)
    first = renderer.render(collector.collect())
    assert dcgm.NVLINK_BANDWIDTH.name not in {f.name for f in first}, "no rate from one reading"
    links = [key for key in fake.devices[0].fields if key.startswith("NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_")]
    for key in links:
        fake.devices[0].fields[key] += 1000  # KiB, on every link, both ways
    now[0] += 2.0
    second = {f.name: f for f in renderer.render(collector.collect())}
    rate = [s.value for s in second[dcgm.NVLINK_BANDWIDTH.name].samples if s.labels["gpu"] == "0"]
    # DCGM (DcgmCacheManager::ReadAndCacheNvLinkBandwidth, v4.6.0): KiB of every link both ways, per second,
    # over 1000, truncated to an integer; not bytes over 10^6, which is 2.4% more.
    assert rate == [float(int(len(links) * 1000 / 2.0 / 1000))]
    for key in links:
        fake.devices[0].fields[key] += 3  # 3 KiB a link over 2 s: well under 1 unit, truncated to 0 as DCGM does
    now[0] += 2.0
    third = {f.name: f for f in renderer.render(collector.collect())}
    assert [s.value for s in third[dcgm.NVLINK_BANDWIDTH.name].samples if s.labels["gpu"] == "0"] == [
        float(int(len(links) * 3 / 2.0 / 1000))]


def test_a_gpu_that_is_down_serves_no_dcgm_values(fake, make_collector, page_of):
    collector = make_collector(fake, compat_dcgm=True)
    collector.collect()
    fake.lose_gpu(5)
    page = page_of(collector)
    assert not values(page, "DCGM_FI_DEV_GPU_UTIL", gpu="5")
    assert len(values(page, "DCGM_FI_DEV_GPU_UTIL")) == 7


def test_compat_reads_nvml_no_more_than_without_it(recording, make_collector):
    from fleetscope.simulation.nvml import FakeNvml

    plain, compat = FakeNvml(recording), FakeNvml(recording)
    for library, options in ((plain, {}), (compat, {"compat_dcgm": True})):
        collector = make_collector(library, **options)
        for _ in range(3):
            collector.collect()
    assert compat.calls == plain.calls


def test_counters_keep_their_names_in_both_formats():
    family = VerbatimFamily("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy (in mJ).", "counter")
    family.add({"gpu": "0", "modelName": 'A "quoted" \\ name'}, 12.5)
    text = encode([family]).decode()
    assert text.startswith("# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy (in mJ).\n"
                           "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
                           "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{")
    parsed = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert [(s.labels["modelName"], s.value) for s in parsed] == [('A "quoted" \\ name', 12.5)]
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    page = encode([family], openmetrics).decode()
    assert page.endswith("# EOF\n") and page.count("# EOF") == 1
    parsed_om = [(f.type, s.name) for f in openmetrics_families(page) for s in f.samples]
    assert parsed_om == [("unknown", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")]


DCGM_EXPORTERS_OWN_LINTS = ("'camelCase'", '"_total" suffix', "should not include type 'counter'")


def test_promtool_flags_only_dcgm_exporters_own_naming(fake, make_collector, page_of):
    """promtool's lints on the compat page are the ones dcgm-exporter's page gets: camelCase labels
    (modelName), counters without _total, and PCIE_REPLAY_COUNTER's name. Every native series stays clean."""
    page = page_of(make_collector(fake, compat_dcgm=True))
    result = promtool_check_metrics(page)
    problems = [line for line in result.stdout.decode().splitlines() + result.stderr.decode().splitlines() if line]
    assert problems, "promtool should see dcgm-exporter's camelCase labels"
    for line in problems:
        assert line.startswith("DCGM_"), line
        assert any(lint in line for lint in DCGM_EXPORTERS_OWN_LINTS), line


def test_the_readmes_migration_table_lists_every_field_with_its_native_source():
    from pathlib import Path

    # The migration guide moved from the README to the documentation site.
    readme = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "dcgm-exporter.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
            if line.startswith("| `DCGM_FI_")}
    assert set(rows) == {field.name for field in dcgm.ALL} | set(dcgm.NOT_SERVED)
    for field in dcgm.FIELDS:
        assert f"`{field.source.name}" in rows[field.name], field.name
        assert ("| yes |" if field.default else "| option |") in rows[field.name], field.name
        assert f"| {field.type}," in rows[field.name], field.name
