"""The GPU collector against the fake NVML: values, units, absence, and every failure NVML produces."""

from __future__ import annotations

import time

import pynvml
import pytest

from fleetscope.exporters.gpu import nvml
from fleetscope.exporters.gpu.collector import NvmlUnavailable
from fleetscope.exporters.gpu.readings import CLOCK_EVENT_REASONS
from fleetscope.exporters.gpu.xid import MAX_CODES_PER_GPU
from fleetscope.simulation.nvml import FakeMig, FakeNvml
from tests.support.exposition import samples, series_of_gpu, value, values

MiB = 1024 * 1024
GPU0 = "GPU-5e1f0c3a-0000-4b7e-9a2c-0d3f6e8b0000"

# Errors after which the GPU is still usable: the value is absent and the error counted.
NON_FATAL = ["NVML_ERROR_UNKNOWN", "NVML_ERROR_NO_PERMISSION", "NVML_ERROR_TIMEOUT", "NVML_ERROR_NO_DATA",
             "NVML_ERROR_INSUFFICIENT_SIZE", "NVML_ERROR_CORRUPTED_INFOROM", "NVML_ERROR_IRQ_ISSUE",
             "NVML_ERROR_OPERATING_SYSTEM", "NVML_ERROR_MEMORY", "NVML_ERROR_INVALID_ARGUMENT",
             "NVML_ERROR_INSUFFICIENT_POWER", "NVML_ERROR_IN_USE", "NVML_ERROR_NOT_READY"]
DEVICE_FATAL = ["NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_RESET_REQUIRED", "NVML_ERROR_GPU_NOT_FOUND"]
LIBRARY_FATAL = ["NVML_ERROR_UNINITIALIZED", "NVML_ERROR_DRIVER_NOT_LOADED", "NVML_ERROR_LIB_RM_VERSION_MISMATCH"]


def test_serves_recorded_values_in_base_units(fake, make_collector, page_of):
    page = page_of(make_collector(fake))
    gpu = {"gpu": "0"}
    assert value(page, "fleetscope_gpu_up", **gpu) == 1
    assert value(page, "fleetscope_gpu_temperature_celsius", **gpu) == 52
    assert value(page, "fleetscope_gpu_memory_temperature_celsius", **gpu) == 61
    assert value(page, "fleetscope_gpu_power_watts", **gpu) == pytest.approx(512.34)
    assert value(page, "fleetscope_gpu_power_limit_watts", **gpu) == 700
    assert value(page, "fleetscope_gpu_energy_joules_total", **gpu) == pytest.approx(48213377.0)
    assert value(page, "fleetscope_gpu_sm_clock_hertz", **gpu) == 1980e6
    assert value(page, "fleetscope_gpu_memory_clock_hertz", **gpu) == 2619e6
    assert value(page, "fleetscope_gpu_utilization_ratio", **gpu) == pytest.approx(0.97)
    assert value(page, "fleetscope_gpu_memory_copy_utilization_ratio", **gpu) == pytest.approx(0.41)
    assert value(page, "fleetscope_gpu_memory_total_bytes", **gpu) == 81559 * MiB
    assert value(page, "fleetscope_gpu_memory_used_bytes", **gpu) == 61440 * MiB
    assert value(page, "fleetscope_gpu_memory_reserved_bytes", **gpu) == 579 * MiB
    assert value(page, "fleetscope_gpu_nvlink_transmit_bytes_total", link="3", **gpu) == (7340032000 + 3 * 1024) * 1024
    assert len(values(page, "fleetscope_gpu_nvlink_up", **gpu)) == 18
    assert value(page, "fleetscope_gpu_clock_event_duration_seconds_total", reason="sw_power_cap", **gpu) == 1523
    assert value(page, "fleetscope_gpu_pcie_receive_bytes_per_second", **gpu) == 9216 * 1024
    assert value(page, "fleetscope_gpu_slowdown_temperature_celsius", **gpu) == 89
    assert value(page, "fleetscope_gpu_remapped_rows_total", gpu="5", error="correctable") == 1
    info = [labels for n, labels, _ in samples(page) if n == "fleetscope_gpu_info" and labels["gpu"] == "0"][0]
    assert info == {"gpu": "0", "uuid": GPU0, "pci_bus_id": "00000000:18:00.0", "model_name": "NVIDIA H100 80GB HBM3",
                    "hostname": "node-a", "architecture": "hopper", "serial": "1650323004512"}
    driver = [labels for n, labels, _ in samples(page) if n == "fleetscope_gpu_driver_info"][0]
    assert driver["driver_version"] == "550.90.07" and driver["cuda_driver_version"] == "12.4"
    assert len(values(page, "fleetscope_gpu_up")) == 8


def test_clock_event_reasons_are_one_labelled_series_each(fake, make_collector, page_of):
    fake.devices[1].values["nvmlDeviceGetCurrentClocksEventReasons"] = (
        nvml.pynvml.nvmlClocksEventReasonSwPowerCap | nvml.pynvml.nvmlClocksEventReasonHwThermalSlowdown)
    page = page_of(make_collector(fake))
    active = {labels["reason"]: v for n, labels, v in samples(page)
              if n == "fleetscope_gpu_clock_event_active" and labels["gpu"] == "1"}
    assert set(active) == set(CLOCK_EVENT_REASONS)
    assert {r for r, v in active.items() if v == 1} == {"sw_power_cap", "hw_thermal_slowdown"}


def test_unsupported_values_are_absent_not_zero(fake, make_collector, page_of):
    page = page_of(make_collector(fake))
    # An H100 SXM has no fans and remaps rows instead of retiring pages.
    for name in ("fleetscope_gpu_fan_speed_ratio", "fleetscope_gpu_retired_pages_total",
                 "fleetscope_gpu_retired_pages_pending"):
        assert values(page, name) == []
    assert values(page, "fleetscope_gpu_nvml_errors_total") == []


def test_fans_are_reported_where_the_board_has_them(fake, make_collector, page_of):
    fake.devices[0].values.update({"nvmlDeviceGetNumFans": 2, "nvmlDeviceGetFanSpeed_v2/0": 40,
                                   "nvmlDeviceGetFanSpeed_v2/1": {"error": "NVML_ERROR_NOT_SUPPORTED"}})
    page = page_of(make_collector(fake))
    assert value(page, "fleetscope_gpu_fan_speed_ratio", gpu="0", fan="0") == pytest.approx(0.4)
    assert values(page, "fleetscope_gpu_fan_speed_ratio", fan="1") == []


def test_field_values_are_read_in_one_batched_call_per_gpu(fake, make_collector):
    collector = make_collector(fake)
    collector.collect()
    first = fake.calls["nvmlDeviceGetFieldValues"]
    collector.collect()
    assert fake.calls["nvmlDeviceGetFieldValues"] - first == 8
    # Identity is read once per session, not at every collection.
    assert fake.calls["nvmlDeviceGetUUID"] == 8


@pytest.mark.parametrize("error", NON_FATAL)
def test_a_failing_call_drops_only_its_value_and_is_counted(fake, make_collector, page_of, error):
    fake.fail("nvmlDeviceGetPowerUsage", error, gpu=2)
    page = page_of(make_collector(fake))
    assert value(page, "fleetscope_gpu_up", gpu="2") == 1
    assert values(page, "fleetscope_gpu_power_watts", gpu="2") == []
    assert value(page, "fleetscope_gpu_temperature_celsius", gpu="2") > 0
    assert len(values(page, "fleetscope_gpu_power_watts")) == 7
    assert value(page, "fleetscope_gpu_nvml_errors_total", function="nvmlDeviceGetPowerUsage", error=error) == 1


@pytest.mark.parametrize("error", NON_FATAL[:3])
def test_a_failing_field_drops_only_that_field(fake, make_collector, page_of, error):
    fake.devices[4].fields["NVML_FI_DEV_MEMORY_TEMP"] = {"error": error}
    page = page_of(make_collector(fake))
    assert values(page, "fleetscope_gpu_memory_temperature_celsius", gpu="4") == []
    assert value(page, "fleetscope_gpu_energy_joules_total", gpu="4") > 0
    assert value(page, "fleetscope_gpu_nvml_errors_total", function="nvmlDeviceGetFieldValues", error=error) == 1


@pytest.mark.parametrize("error", DEVICE_FATAL)
@pytest.mark.parametrize("function", ["nvmlDeviceGetTemperature", "nvmlDeviceGetFieldValues",
                                      "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetComputeRunningProcesses"])
def test_a_gpu_that_fails_is_marked_down_and_its_values_are_not_served(fake, make_collector, page_of, function, error):
    collector = make_collector(fake)
    page_of(collector)
    fake.fail(function, error, gpu=3)
    page = page_of(collector)
    assert value(page, "fleetscope_gpu_up", gpu="3") == 0
    assert series_of_gpu(page, "3") <= {"fleetscope_gpu_up", "fleetscope_gpu_last_update_timestamp_seconds",
                                        "fleetscope_gpu_xid_events_total"}
    # The down GPU keeps its identity labels so alerts can name it.
    (lost,) = [labels for n, labels, _ in samples(page) if n == "fleetscope_gpu_up" and labels["gpu"] == "3"]
    assert lost["uuid"].startswith("GPU-")
    assert len(values(page, "fleetscope_gpu_temperature_celsius")) == 7
    fake.clear_failures()
    page = page_of(collector)
    assert value(page, "fleetscope_gpu_up", gpu="3") == 1
    recorded = fake.devices[3].values["nvmlDeviceGetTemperature/NVML_TEMPERATURE_GPU"]
    assert value(page, "fleetscope_gpu_temperature_celsius", gpu="3") == recorded


def test_a_field_reporting_gpu_lost_marks_the_gpu_down(fake, make_collector, page_of):
    fake.devices[6].fields["NVML_FI_DEV_PCIE_REPLAY_COUNTER"] = {"error": "NVML_ERROR_GPU_IS_LOST"}
    page = page_of(make_collector(fake))
    assert value(page, "fleetscope_gpu_up", gpu="6") == 0


def test_gpu_fallen_off_the_bus_is_down_with_its_last_update_frozen(fake, make_collector, page_of):
    collector = make_collector(fake)
    before = value(page_of(collector), "fleetscope_gpu_last_update_timestamp_seconds", gpu="7")
    fake.lose_gpu(7)
    time.sleep(0.01)
    page = page_of(collector)
    assert value(page, "fleetscope_gpu_up", gpu="7") == 0
    assert value(page, "fleetscope_gpu_last_update_timestamp_seconds", gpu="7") == before
    assert values(page, "fleetscope_gpu_power_watts", gpu="7") == []
    assert sum(values(page, "fleetscope_gpu_up")) == 7
    fake.restore_gpu(7)
    assert value(page_of(collector), "fleetscope_gpu_up", gpu="7") == 1


def test_a_gpu_that_cannot_be_opened_at_start_is_reported_down_by_index(fake, make_collector, page_of):
    fake.fail("nvmlDeviceGetHandleByIndex", "NVML_ERROR_GPU_IS_LOST", gpu=1)
    page = page_of(make_collector(fake))
    down = [labels for n, labels, v in samples(page) if n == "fleetscope_gpu_up" and v == 0]
    assert down == [{"gpu": "1", "hostname": "node-a"}]


def test_a_gpu_whose_identity_call_fails_is_down(fake, make_collector, page_of):
    fake.fail("nvmlDeviceGetUUID", "NVML_ERROR_UNKNOWN", gpu=2)
    page = page_of(make_collector(fake))
    assert value(page, "fleetscope_gpu_up", gpu="2") == 0


@pytest.mark.parametrize("error", ["NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_DRIVER_NOT_LOADED",
                                   "NVML_ERROR_NO_PERMISSION", "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
                                   "NVML_ERROR_UNKNOWN"])
def test_without_nvml_the_collector_fails_saying_why_and_recovers(fake, make_collector, error):
    fake.remove_library(error)
    collector = make_collector(fake)
    with pytest.raises(NvmlUnavailable) as failure:
        collector.collect()
    assert str(failure.value)
    if error == "NVML_ERROR_LIBRARY_NOT_FOUND":
        assert "--simulate" in str(failure.value)
    fake.clear_failures()
    assert collector.collect()


@pytest.mark.parametrize("error", LIBRARY_FATAL)
def test_nvml_breaking_mid_run_restarts_the_session(fake, make_collector, page_of, error):
    collector = make_collector(fake)
    page_of(collector)
    fake.fail("nvmlDeviceGetTemperature", error)
    with pytest.raises(nvml.LibraryFailed):
        collector.collect()
    fake.clear_failures()
    page = page_of(collector)
    assert sum(values(page, "fleetscope_gpu_up")) == 8
    assert fake.calls["nvmlInit"] == 2 and fake.calls["nvmlShutdown"] == 1


def test_every_nvml_error_is_classified(fake):
    for name in nvml.ERROR_CODES:
        code = nvml.error_code(name)
        assert sum(code in group for group in (nvml.DEVICE_FATAL, nvml.LIBRARY_FATAL, nvml.ABSENT)) <= 1


def test_xids_are_counted_per_gpu_and_code(fake, make_collector, page_of):
    collector = make_collector(fake, xid_events=True)
    page = page_of(collector)
    assert values(page, "fleetscope_gpu_xid_events_total") == [0] * 8
    assert values(page, "fleetscope_gpu_last_xid") == []
    for code in (79, 48, 79):
        fake.inject_xid(2, code)
    fake.inject_xid(5, 13)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        page = page_of(collector)
        # the events arrive on a background thread, GPU by GPU: wait for both GPUs' events
        if (value(page, "fleetscope_gpu_xid_events_total", gpu="2") == 3
                and value(page, "fleetscope_gpu_xid_events_total", gpu="5") == 1):
            break
        time.sleep(0.05)
    assert value(page, "fleetscope_gpu_xid_errors_total", gpu="2", xid="79") == 2
    assert value(page, "fleetscope_gpu_xid_errors_total", gpu="2", xid="48") == 1
    assert value(page, "fleetscope_gpu_last_xid", gpu="2") == 79
    assert value(page, "fleetscope_gpu_last_xid_timestamp_seconds", gpu="2") == pytest.approx(time.time(), abs=30)
    assert value(page, "fleetscope_gpu_xid_errors_total", gpu="5", xid="13") == 1


def test_a_gpu_that_returns_after_being_lost_is_watched_for_xids_again(fake, make_collector, page_of):
    collector = make_collector(fake, xid_events=True)
    page_of(collector)
    fake.lose_gpu(3)  # the driver drops the lost GPU's event registration with it
    assert value(page_of(collector), "fleetscope_gpu_up", gpu="3") == 0
    fake.restore_gpu(3)
    assert value(page_of(collector), "fleetscope_gpu_up", gpu="3") == 1
    fake.inject_xid(3, 48)
    deadline = time.monotonic() + 10
    page = page_of(collector)
    while not values(page, "fleetscope_gpu_xid_errors_total", gpu="3", xid="48") and time.monotonic() < deadline:
        time.sleep(0.05)
        page = page_of(collector)
    assert value(page, "fleetscope_gpu_xid_errors_total", gpu="3", xid="48") == 1


def test_xid_codes_per_gpu_are_bounded():
    from fleetscope.catalog import FamilySet
    from fleetscope.exporters.gpu.xid import XidCounts
    from tests.support.exposition import render

    counts = XidCounts()
    for code in range(MAX_CODES_PER_GPU + 10):
        counts.record("GPU-x", code, 0.0)
    out = FamilySet()
    counts.emit("GPU-x", {"uuid": "GPU-x"}, out)
    page = render(out.metrics())
    assert len(values(page, "fleetscope_gpu_xid_errors_total")) == MAX_CODES_PER_GPU + 1
    assert value(page, "fleetscope_gpu_xid_errors_total", xid="other") == 10
    assert value(page, "fleetscope_gpu_xid_events_total") == MAX_CODES_PER_GPU + 10


def test_xid_events_unsupported_still_serves_the_gpu(fake, make_collector, page_of):
    for device in fake.devices:
        device.values["nvmlDeviceRegisterEvents"] = {"error": "NVML_ERROR_NOT_SUPPORTED"}
    page = page_of(make_collector(fake, xid_events=True))
    assert sum(values(page, "fleetscope_gpu_up")) == 8


def test_gpm_metrics_appear_from_the_second_poll(fake, make_collector, page_of):
    collector = make_collector(fake)
    assert values(page_of(collector), "fleetscope_gpu_sm_active_ratio") == []
    page = page_of(collector)
    assert value(page, "fleetscope_gpu_sm_active_ratio", gpu="0") == pytest.approx(0.884)
    assert value(page, "fleetscope_gpu_tensor_active_ratio", gpu="0") == pytest.approx(0.569)
    assert value(page, "fleetscope_gpu_fp64_active_ratio", gpu="0") == 0
    # Each poll frees the sample it no longer needs.
    assert fake.calls["nvmlGpmSampleAlloc"] - fake.calls["nvmlGpmSampleFree"] == 8


def test_gpm_is_skipped_on_gpus_without_it(fake, make_collector, page_of):
    fake.devices[0].values["nvmlGpmQueryDeviceSupport"] = {"isSupportedDevice": 0}
    collector = make_collector(fake)
    page_of(collector)
    page = page_of(collector)
    assert values(page, "fleetscope_gpu_sm_active_ratio", gpu="0") == []
    assert len(values(page, "fleetscope_gpu_sm_active_ratio")) == 7


def _mig_gpu(fake: FakeNvml) -> None:
    """GPU 0 in MIG mode with two instances, one running a process."""
    fake.enable_mig(0, [FakeMig("MIG-aaaa", 9, "3g.40gb", 40000 * MiB, 4100 * MiB),
                        FakeMig("MIG-bbbb", 13, "1g.10gb", 9856 * MiB, 4100 * MiB)])
    fake.devices[0].values["nvmlDeviceGetComputeRunningProcesses"] = [
        {"pid": 7001, "usedGpuMemory": 4096 * MiB, "gpuInstanceId": 9, "computeInstanceId": 0}]


def test_mig_instances_are_reported_with_their_own_labels(fake, make_collector, page_of):
    _mig_gpu(fake)
    pods = {"MIG-bbbb": {"namespace": "ml", "pod": "trainer-0", "container": "main"}}
    page = page_of(make_collector(fake, holders=lambda: pods))
    assert value(page, "fleetscope_gpu_mig_mode_enabled", gpu="0") == 1
    assert value(page, "fleetscope_gpu_mig_mode_enabled", gpu="1") == 0
    used = {labels["mig_profile"]: labels for n, labels, _ in samples(page)
            if n == "fleetscope_gpu_memory_used_bytes" and "mig_profile" in labels}
    assert set(used) == {"3g.40gb", "1g.10gb"}
    assert used["3g.40gb"]["gpu_instance_id"] == "9" and used["3g.40gb"]["compute_instance_id"] == "0"
    assert used["1g.10gb"]["pod"] == "trainer-0" and "pod" not in used["3g.40gb"]
    process = [labels for n, labels, _ in samples(page)
               if n == "fleetscope_gpu_process_memory_used_bytes" and labels["gpu"] == "0"]
    assert process[0]["pid"] == "7001" and process[0]["mig_profile"] == "3g.40gb"
    # The whole GPU is still reported once, without instance labels, and without GPM.
    assert len(values(page, "fleetscope_gpu_temperature_celsius", gpu="0")) == 1


def test_each_mig_instance_has_its_own_activity_with_its_pod(fake, make_collector, page_of):
    fake.enable_mig(0, [FakeMig("MIG-busy", 9, "3g.40gb", 40000 * MiB, 4100 * MiB, activity=0.8),
                        FakeMig("MIG-idle", 13, "1g.10gb", 9856 * MiB, 512 * MiB, activity=0.01)])
    pods = {"MIG-idle": {"namespace": "ml", "pod": "notebook-0", "container": "main"}}
    collector = make_collector(fake, holders=lambda: pods)
    page_of(collector)  # GPM reports between two samples
    page = page_of(collector)
    active = {labels["gpu_instance_id"]: (labels, v) for n, labels, v in samples(page)
              if n == "fleetscope_gpu_graphics_engine_active_ratio" and labels["gpu"] == "0"}
    assert set(active) == {"9", "13"}
    assert active["9"][1] == pytest.approx(0.8) and active["13"][1] == pytest.approx(0.01)
    assert active["13"][0]["pod"] == "notebook-0" and active["13"][0]["mig_profile"] == "1g.10gb"
    assert "pod" not in active["9"][0]
    assert values(page, "fleetscope_gpu_tensor_active_ratio", gpu="0", gpu_instance_id="9") == [pytest.approx(0.48)]
    # An instance destroyed releases its GPM sample; MIG turned off releases them all.
    del fake.devices[0].mig[1]
    page = page_of(collector)
    assert {labels["gpu_instance_id"] for n, labels, _ in samples(page)
            if n == "fleetscope_gpu_graphics_engine_active_ratio" and labels["gpu"] == "0"} == {"9"}
    fake.devices[0].values["nvmlDeviceGetMigMode"] = [pynvml.NVML_DEVICE_MIG_DISABLE] * 2
    page_of(collector)
    assert fake.calls["nvmlGpmSampleAlloc"] - fake.calls["nvmlGpmSampleFree"] == 8, "one live sample per GPU"


def test_pod_labels_follow_the_gpu_they_are_allocated_to(fake, make_collector, page_of):
    pods = {GPU0: {"namespace": "ml", "pod": "llm-0", "container": "server"},
            "3": {"namespace": "ml", "pod": "by-index", "container": "c"}}
    page = page_of(make_collector(fake, holders=lambda: pods))
    power = {labels["gpu"]: labels for n, labels, _ in samples(page) if n == "fleetscope_gpu_power_watts"}
    assert power["0"]["pod"] == "llm-0" and power["0"]["namespace"] == "ml"
    assert power["3"]["pod"] == "by-index"
    assert "pod" not in power["1"]


def test_processes_are_largest_first_and_bounded(fake, make_collector, page_of):
    from fleetscope.exporters.gpu.processes import MAX_PROCESSES_PER_GPU

    fake.devices[0].values["nvmlDeviceGetComputeRunningProcesses"] = [
        {"pid": 100 + i, "usedGpuMemory": i * MiB, "gpuInstanceId": 0, "computeInstanceId": 0} for i in range(100)]
    fake.devices[0].values["nvmlDeviceGetGraphicsRunningProcesses"] = [
        {"pid": 5, "usedGpuMemory": None, "gpuInstanceId": 0, "computeInstanceId": 0}]
    page = page_of(make_collector(fake))
    pids = {labels["pid"] for n, labels, _ in samples(page)
            if n == "fleetscope_gpu_process_memory_used_bytes" and labels["gpu"] == "0"}
    assert len(pids) == MAX_PROCESSES_PER_GPU
    assert "199" in pids and "100" not in pids and "5" not in pids


def test_process_names_come_from_proc(tmp_path):
    from fleetscope.exporters.gpu.processes import process_name

    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "comm").write_text("python3\n")
    assert process_name(42, tmp_path) == "python3"
    assert process_name(43, tmp_path) == ""


def test_nvml_breaking_while_starting_leaves_no_half_started_session(fake, make_collector, page_of):
    fake.fail("nvmlDeviceGetHandleByIndex", "NVML_ERROR_DRIVER_NOT_LOADED")
    collector = make_collector(fake)
    with pytest.raises(nvml.LibraryFailed):
        collector.collect()
    assert fake.calls["nvmlShutdown"] == 1
    fake.clear_failures()
    assert sum(values(page_of(collector), "fleetscope_gpu_up")) == 8


def test_a_lost_gpu_releases_its_gpm_sample(fake, make_collector, page_of):
    collector = make_collector(fake)
    page_of(collector)
    fake.lose_gpu(0)
    page_of(collector)
    assert fake.calls["nvmlGpmSampleAlloc"] - fake.calls["nvmlGpmSampleFree"] == 7


def test_the_drivers_recovery_action_is_one_series_per_action(fake, make_collector, page_of):
    fake.devices[2].fields["NVML_FI_DEV_GET_GPU_RECOVERY_ACTION"] = pynvml.NVML_GPU_RECOVERY_ACTION_NODE_REBOOT
    fake.devices[3].fields["NVML_FI_DEV_GET_GPU_RECOVERY_ACTION"] = pynvml.NVML_GPU_RECOVERY_ACTION_NONE
    page = page_of(make_collector(fake))
    actions = {labels["action"]: v for n, labels, v in samples(page)
               if n == "fleetscope_gpu_recovery_action_state" and labels["gpu"] == "2"}
    assert actions["node_reboot"] == 1 and sum(actions.values()) == 1 and len(actions) == 8
    assert value(page, "fleetscope_gpu_recovery_action_state", gpu="3", action="none") == 1
    assert values(page, "fleetscope_gpu_recovery_action_state", gpu="0") == [], "absent where the driver lacks it"
