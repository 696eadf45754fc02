"""`fleetscope check` and the exporter's health verdicts: every check against the fake NVML put in each failing
state, the policy file's errors, the kernel log's XIDs, the output formats and exit codes, and the metrics."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter

import pytest

from fleetscope import cli, log
from fleetscope.exporters.health import checks, kernel_log, policy, record, report
from fleetscope.exporters.health.collector import HealthCollector
from fleetscope.exporters.health.gpu_facts import GpuReader
from fleetscope.exporters.health.host_facts import ClockSync, HostFacts, RdmaPort
from fleetscope.exporters.health.model import DEGRADED, OK, UNFIT, UNKNOWN, verdict
from fleetscope.simulation.nvml import FAULTS, FakeNvml
from fleetscope.simulation.nvml import load_recording as _load

BUS_0 = _load()["devices"][0]["values"]["nvmlDeviceGetPciInfo"]["busId"]  # 00000000:18:00.0


def _gpu_results(fake: FakeNvml, the_policy: policy.Policy | None = None, xids=None):
    reader = GpuReader(fake, "node-1")
    try:
        facts = reader.read()
    finally:
        reader.close()
    results = []
    for gpu in facts.gpus:
        results += checks.gpu_results(gpu, the_policy or policy.Policy(), xids)
    return facts, results


def _status(results, check, gpu):
    return next(r.status for r in results if r.check == check and r.gpu == gpu)


def test_a_recorded_node_passes_every_gpu_check():
    facts, results = _gpu_results(FakeNvml())
    assert len(facts.gpus) == 8 and not facts.error
    # Not judged without a policy that names them: model, MIG, XIDs (no kernel log given); an H100 retires no pages.
    assert {r.check for r in results} == set(checks.GPU_CHECKS) - {"model", "mig", "xid", "retired_pages"}
    assert {r.status for r in results} == {OK}


# Each fault the fake learns, and the check that must catch it with the verdict it deserves.
FAULT_CHECKS = {
    "pcie-degraded": ("pcie_link", DEGRADED),
    "nvlink-down": ("nvlink", UNFIT),
    "thermal-throttle": ("throttling", DEGRADED),
    "hw-slowdown": ("throttling", DEGRADED),
    "retired-pages": ("retired_pages", UNFIT),
    "row-remap-pending": ("row_remap", UNFIT),
    "row-remap-failed": ("row_remap", UNFIT),
    "ecc-uncorrectable": ("ecc_uncorrectable", UNFIT),
    "ecc-disabled": ("ecc_mode", UNFIT),
    "fabric-not-ready": ("fabric", UNFIT),
    "persistence-off": ("persistence_mode", DEGRADED),
    "power-capped": ("power_limit", DEGRADED),
    "gpu-lost": ("nvml", UNFIT),
}


def test_every_fault_has_a_check():
    assert set(FAULT_CHECKS) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULT_CHECKS))
def test_each_fault_fails_its_check_on_its_gpu_only(fault):
    fake = FakeNvml()
    fake.inject_fault(fault, 3)
    _, results = _gpu_results(fake)
    check, status = FAULT_CHECKS[fault]
    assert _status(results, check, 3) == status
    also = {"thermal-throttle": {"temperature"}}.get(fault, set())  # it runs hot too
    assert {(r.gpu, r.check) for r in results if r.status != OK} == {(3, name) for name in {check} | also}
    fake.clear_fault(3)
    if fault == "gpu-lost":
        _, results = _gpu_results(fake)
        assert _status(results, "nvml", 3) == OK


def test_an_idle_gpu_may_lower_its_link_generation_but_not_its_width():
    fake = FakeNvml()
    values = fake.devices[0].values
    values["nvmlDeviceGetCurrPcieLinkGeneration"] = 1
    values["nvmlDeviceGetCurrentClocksEventReasons"] = 1  # nvmlClocksEventReasonGpuIdle
    _, results = _gpu_results(fake)
    assert _status(results, "pcie_link", 0) == OK
    values["nvmlDeviceGetCurrentClocksEventReasons"] = 0
    _, results = _gpu_results(fake)
    assert _status(results, "pcie_link", 0) == DEGRADED


def test_policy_expectations_are_checked():
    the_policy = policy.from_mapping({"gpus": {"count": 9, "model": "NVIDIA A100-SXM4-80GB", "nvlink_links": 18,
                                               "mig": "enabled"},
                                      "driver": {"version": "550", "cuda": "12.2"}})
    fake = FakeNvml()
    facts, results = _gpu_results(fake, the_policy)
    node = {r.check: r.status for r in checks.node_results(facts, None, the_policy)}
    assert node == {"nvml_library": OK, "gpu_count": UNFIT, "driver_version": OK, "cuda_version": UNFIT}
    assert _status(results, "model", 0) == UNFIT and _status(results, "mig", 0) == UNFIT
    assert _status(results, "nvlink", 0) == OK


def test_nvml_missing_makes_the_node_unfit():
    fake = FakeNvml()
    fake.remove_library()
    facts, results = _gpu_results(fake)
    assert results == [] and "NVML_ERROR_LIBRARY_NOT_FOUND" in facts.error
    assert verdict(checks.node_results(facts, None, policy.Policy())) == UNFIT


# ---- XIDs from the kernel log ------------------------------------------------------------------------------------

KERNEL_LOG = """\
[  101.2] NVRM: Xid (PCI:0000:18:00): 13, pid=4123, name=python, Graphics Exception: ESR 0x405
6,2345,987654321,-;NVRM: Xid (PCI:0000:18:00): 31, pid=4123, name=python, Ch 00000008, intr 10000000
[  203.9] NVRM: Xid (PCI:0000:2a:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.
[  204.0] NVRM: Xid (PCI:0000:3a:00): 94, pid=77, name=python, Contained: SM (0x1).
"""


def test_kernel_log_xids_are_parsed_per_gpu_in_every_format():
    xids = kernel_log.parse(KERNEL_LOG, "test")
    assert xids.of(BUS_0) == Counter({13: 1, 31: 1})
    assert xids.of("00000000:2A:00.0") == Counter({79: 1})
    assert xids.of("00000000:5D:00.0") == Counter()


def test_application_xids_never_make_a_gpu_unfit_but_hardware_ones_do():
    _, results = _gpu_results(FakeNvml(), xids=kernel_log.parse(KERNEL_LOG, "test"))
    assert _status(results, "xid", 0) == OK  # 13 and 31: the job's fault
    assert _status(results, "xid", 1) == UNFIT  # 79
    assert _status(results, "xid", 2) == DEGRADED  # 94, contained
    every_application_xid = "".join(f"NVRM: Xid (PCI:0000:18:00): {code}, x\n" for code in policy.APPLICATION_XIDS)
    _, results = _gpu_results(FakeNvml(), xids=kernel_log.parse(every_application_xid, "test"))
    assert _status(results, "xid", 0) == OK


@pytest.mark.parametrize("key", ["unfit", "degraded"])
def test_a_policy_may_not_class_an_application_xid_as_the_gpus_fault(key):
    with pytest.raises(policy.PolicyError, match=f"xid.{key}: XID 13"):
        policy.from_mapping({"xid": {key: [79, 13]}})


def test_an_unreadable_kernel_log_leaves_xids_unknown(tmp_path):
    xids = kernel_log.read(tmp_path / "missing")
    assert xids.error
    _, results = _gpu_results(FakeNvml(), xids=xids)
    assert _status(results, "xid", 0) == UNKNOWN and verdict(results) == "healthy"


# ---- the node ---------------------------------------------------------------------------------------------------

def _host(**changes) -> HostFacts:
    ports = [RdmaPort(f"mlx5_{i}", "1", 4, "4: ACTIVE", 400.0, "InfiniBand") for i in range(4)]
    facts = HostFacts(rdma_ports=ports, net_interfaces={"lo", "eth0", "ib0"}, memlock=-1, nofile=1 << 20,
                      hugepages=0, clock=ClockSync(True, "synchronized"))
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def _node(host: HostFacts, mapping: dict | None = None) -> dict[str, str]:
    from fleetscope.exporters.health.gpu_facts import NodeGpuFacts

    results = checks.node_results(NodeGpuFacts(driver_version="550.90.07"), host, policy.from_mapping(mapping or {}))
    return {r.check: r.status for r in results}


def test_a_well_set_up_node_passes():
    assert set(_node(_host()).values()) == {OK}


@pytest.mark.parametrize("changes, mapping, check, status", [
    ({"rdma_ports": [RdmaPort("mlx5_0", "1", 1, "1: DOWN", None, "InfiniBand")]}, {}, "infiniband", DEGRADED),
    ({}, {"infiniband": {"ports": 8}}, "infiniband", UNFIT),
    ({}, {"infiniband": {"rate_gbps": 800}}, "infiniband", UNFIT),
    ({"nccl_env": {"NCCL_IB_HCA": "=mlx5_0,mlx5_9"}}, {}, "nccl_env", UNFIT),
    ({"nccl_env": {"NCCL_IB_HCA": "mlx5"}}, {}, "nccl_env", OK),  # a prefix
    ({"nccl_env": {"NCCL_SOCKET_IFNAME": "bond0"}}, {}, "nccl_env", UNFIT),
    ({"nccl_env": {"NCCL_SOCKET_IFNAME": "^docker,lo"}}, {}, "nccl_env", OK),
    ({"memlock": 64 * 1024}, {}, "memlock", DEGRADED),
    ({"nofile": 1024}, {}, "nofile", DEGRADED),
    ({}, {"limits": {"hugepages": 512}}, "hugepages", DEGRADED),
    ({"clock": ClockSync(False, "TIME_ERROR")}, {}, "clock_sync", DEGRADED),
    ({"clock": ClockSync(None, "no adjtimex")}, {}, "clock_sync", UNKNOWN),
])
def test_node_checks(changes, mapping, check, status):
    assert _node(_host(**changes), mapping)[check] == status


@pytest.mark.parametrize("document, message", [
    ({"gpus": {"cuont": 8}}, "unknown key gpus.cuont"),
    ({"gpus": {"count": "eight"}}, "gpus.count: expected a number"),
    ({"gpus": {"count": 7.5}}, "gpus.count: expected a whole number"),
    ({"gpus": {"mig": "sometimes"}}, "gpus.mig"),
    ({"limits": {"memlock": -5}}, "limits.memlock: must not be negative"),
    ({"xid": {"unfit": ["79"]}}, "xid.unfit: '79' is not an XID code"),
    ({"xid": {"unfit": [79], "degraded": [79]}}, "79 listed both"),
    ([1, 2], "must be a mapping"),
])
def test_bad_policies_are_refused_naming_the_key(document, message):
    with pytest.raises(policy.PolicyError, match=message):
        policy.from_mapping(document)


def test_a_policy_file_is_read(tmp_path):
    (tmp_path / "policy.yaml").write_text("gpus: {count: 8}\nlimits: {memlock: unlimited}\n")
    loaded = policy.load(tmp_path / "policy.yaml")
    assert loaded.gpus.count == 8 and loaded.limits.memlock == policy.UNLIMITED
    with pytest.raises(log.UserError, match="cannot read policy file"):
        policy.load(tmp_path / "absent.yaml")


# ---- output ------------------------------------------------------------------------------------------------------

def test_npd_message_is_one_bounded_line():
    from fleetscope.exporters.health.model import Result

    results = [Result("nvlink", UNFIT, gpu) for gpu in range(8)] + [Result("pcie_link", DEGRADED, 2)]
    line = report.npd(results)
    assert line.endswith("\n") and line.count("\n") == 1 and len(line) - 1 <= report.NPD_MESSAGE_LENGTH
    assert line.startswith("unfit: gpu 0 nvlink") and "more" in line
    assert report.exit_code(results) == report.EXIT_UNFIT
    degraded = [Result("pcie_link", DEGRADED, 2)]
    assert report.exit_code(degraded) == report.EXIT_OK and report.exit_code(degraded, DEGRADED) == report.EXIT_UNFIT


def _check(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["check", "--simulate", "--simulate.gpus=4", "--path.sysfs=/nonexistent", *argv])
    return code, capsys.readouterr().out


def test_check_on_the_simulated_node_is_healthy_without_faults(capsys, tmp_path):
    # The host's own limits and clock vary by machine: judged here by a policy that leaves them out.
    (tmp_path / "p.yaml").write_text("limits: {memlock: null, nofile: null}\nclock_sync: false\n")
    code, out = _check(capsys, f"--policy={tmp_path / 'p.yaml'}")
    assert code == 0 and out.startswith(f"{cli.build_parser(['check']).parse_args(['check']).hostname}: healthy")


def test_check_reports_injected_faults_with_reasons_and_exits_unfit(capsys, tmp_path):
    (tmp_path / "p.yaml").write_text("limits: {memlock: null, nofile: null}\nclock_sync: false\n")
    code, out = _check(capsys, f"--policy={tmp_path / 'p.yaml'}", "--simulate.fault=pcie-degraded:2",
                       "--simulate.fault=nvlink-down:1", "--simulate.fault=xid-13:0", "--output=json")
    document = json.loads(out)
    assert code == 1 and document["verdict"] == UNFIT and document["exit_code"] == 1
    assert document["failed"] == ["gpu 1 nvlink", "gpu 2 pcie_link"]
    xid = next(r for r in document["results"] if r["check"] == "xid" and r["gpu"] == 0)
    assert xid["status"] == OK and "13" in xid["observed"]


def test_check_xid_fault_and_ib_port_down(capsys):
    code, out = _check(capsys, "--simulate.fault=xid-79:3", "--simulate.fault=ib-port-down:4", "--output=npd")
    assert code == 1 and out.startswith("unfit: gpu 3 xid") and len(out) <= report.NPD_MESSAGE_LENGTH + 1


def test_bad_fault_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        cli.main(["check", "--simulate", "--simulate.fault=melted:1"])
    assert "unknown fault 'melted'" in capsys.readouterr().err
    assert cli.main(["check", "--simulate", "--simulate.gpus=2", "--simulate.fault=nvlink-down:5"]) == 2


def test_slurm_drain_runs_scontrol_with_the_reasons(capsys, tmp_path):
    stub = tmp_path / "scontrol"
    argv_file = tmp_path / "argv"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {argv_file}\n")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    code, _ = _check(capsys, "--simulate.fault=row-remap-failed:1", "--slurm-drain",
                     f"--slurm-drain.scontrol={stub}", "--hostname=gpu-17")
    assert code == 1
    assert argv_file.read_text().splitlines() == ["update", "nodename=gpu-17", "state=drain",
                                                  "reason=fleetscope: unfit: gpu 1 row_remap"]


def test_a_healthy_node_is_not_drained(capsys, tmp_path):
    stub = tmp_path / "scontrol"
    stub.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n")
    stub.chmod(0o755)
    (tmp_path / "p.yaml").write_text("limits: {memlock: null, nofile: null}\nclock_sync: false\n")
    code, _ = _check(capsys, f"--policy={tmp_path / 'p.yaml'}", "--slurm-drain", f"--slurm-drain.scontrol={stub}")
    assert code == 0 and not (tmp_path / "ran").exists()


def test_a_bad_policy_is_a_user_error(capsys, tmp_path):
    (tmp_path / "p.yaml").write_text("gpus: {count: many}\n")
    assert cli.main(["check", "--simulate", f"--policy={tmp_path / 'p.yaml'}"]) == 2
    assert "gpus.count" in capsys.readouterr().err


# ---- the exporter's verdicts -------------------------------------------------------------------------------------

def _samples(collector: HealthCollector) -> dict[tuple[str, tuple], float]:
    out = {}
    for metric in collector.collect():
        for sample in metric.samples:
            labels = sample.labels
            key = tuple(sorted((k, v) for k, v in labels.items() if k in ("gpu", "check")))
            out[(sample.name, key)] = sample.value
    return out


def test_the_collector_serves_a_verdict_per_check_and_the_last_check(tmp_path):
    fake = FakeNvml()
    fake.inject_fault("nvlink-down", 5)
    fake.inject_fault("pcie-degraded", 6)
    from fleetscope.exporters.health.model import Result

    record.write(tmp_path / "last.json", 1700000000.0, [Result("nvlink", UNFIT, 5)])
    collector = HealthCollector(fake, "node-1", policy.Policy(), host=lambda: _host(nofile=10),
                                check_record=tmp_path / "last.json")
    try:
        samples = _samples(collector)
    finally:
        collector.close()
    gpu = "fleetscope_gpu_health_state"
    assert samples[(gpu, (("check", "nvlink"), ("gpu", "5")))] == 2
    assert samples[(gpu, (("check", "pcie_link"), ("gpu", "6")))] == 1
    assert samples[(gpu, (("check", "nvlink"), ("gpu", "4")))] == 0
    assert samples[("fleetscope_node_health_state", (("check", "nofile"),))] == 1
    assert not any(key[1] == (("check", "xid"),) for key in samples)  # XIDs are the rules' to judge
    assert samples[("fleetscope_node_check_last_run_timestamp_seconds", ())] == 1700000000.0
    assert samples[("fleetscope_node_check_last_state", ())] == 2


def test_check_record_is_written_and_unreadable_ones_ignored(capsys, tmp_path):
    code, _ = _check(capsys, "--simulate.fault=ecc-disabled:0", f"--record={tmp_path / 'r.json'}")
    last = record.read(tmp_path / "r.json")
    assert code == 1 and last is not None and last.level == 2
    (tmp_path / "bad.json").write_text("{")
    assert record.read(tmp_path / "bad.json") is None and record.read(tmp_path / "none.json") is None


def test_the_exporter_serves_health_with_faults(tmp_path):
    from fleetscope.simulation import node

    parser = cli.build_parser(["exporter"])
    args = parser.parse_args(["exporter", "--simulate", "--simulate.gpus=2", "--simulate.fault=fabric-not-ready:1",
                              "--web.listen-address=127.0.0.1:0", "--collector.health.poll-interval=0s",
                              "--no-collector.nccl", "--no-collector.fabric", "--no-collector.gpu"])
    registry, server = node.build(args)
    try:
        text = "".join(str(s) for m in registry.collect() for s in m.samples)
    finally:
        registry.close()
    assert "fleetscope_gpu_health_state" in text and "'check': 'fabric'" in text
    assert os.environ.get("NEVER_SET_HERE") is None
