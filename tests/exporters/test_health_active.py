"""`fleetscope check --active`: DCGM's diagnostic JSON read from recorded documents (both shapes DCGM writes) and
from a stub `dcgmi`; PyTorch's GEMM, copy and all-reduce measurements on CPU (device "cpu", tiny sizes, gloo with
two processes), judged against the policy's figures; the record that keeps the last active run, and the exporter
serving it. Nothing here runs on a GPU: on a node the same code runs with cuda devices, bf16 and NCCL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from fleetscope import cli
from fleetscope.exporters.health import active, burn, dcgm_diag, policy, record
from fleetscope.exporters.health.collector import HealthCollector
from fleetscope.exporters.health.model import DEGRADED, OK, UNFIT, UNKNOWN, Result
from fleetscope.simulation.nvml import FakeNvml

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = burn.Sizes(gemm=64, gemm_iterations=3, copy_bytes=1 << 20, copy_iterations=3, allreduce_bytes=1 << 16,
                  allreduce_iterations=5)


def _by_gpu(results, check="active_dcgm_diag"):
    return {r.gpu: r for r in results if r.check == check}


# ---- DCGM ----------------------------------------------------------------------------------------------------

def test_dcgm_3_json_with_text_before_it_is_read_per_test_and_gpu():
    diagnostic = dcgm_diag.parse((FIXTURES / "dcgm-diag-3.1-r1.json").read_text())
    assert diagnostic.version == "3.1.0" and not diagnostic.runtime_error
    remap = [t for t in diagnostic.results if t.test == "Page Retirement/Row Remap"]
    assert [(t.gpus, t.status) for t in remap] == [((0, 1, 2, 3, 4, 6, 7), "pass"), ((5,), "fail")]
    assert "row remapping failed" in remap[1].messages[0]
    results = active.dcgm_results(diagnostic, 1)
    per_gpu = _by_gpu(results)
    assert sorted(per_gpu) == list(range(8))
    assert per_gpu[5].status == UNFIT and per_gpu[5].reason.startswith("Page Retirement/Row Remap: GPU 5 had")
    assert {per_gpu[gpu].status for gpu in range(8) if gpu != 5} == {OK}
    assert per_gpu[0].observed == "level 1: 10 passed, 0 failed, 0 warned, 0 skipped"
    suite = next(r for r in results if r.check == "active_suite")
    assert suite.status == OK and suite.gpu is None and "DCGM 3.1.0" in suite.observed


def test_dcgm_4_json_fails_warns_and_skips_by_entity():
    diagnostic = dcgm_diag.parse((FIXTURES / "dcgm-diag-4.1-r2.json").read_text())
    assert diagnostic.version == "4.1.1"
    eud = next(t for t in diagnostic.results if t.test == "eud")
    assert (eud.gpus, eud.status) == ((), "skip")  # judged only as a whole: it counts for every GPU
    per_gpu = _by_gpu(active.dcgm_results(diagnostic, 2))
    assert {gpu: r.status for gpu, r in per_gpu.items()} == {0: OK, 1: DEGRADED, 2: UNFIT, 3: OK}
    assert "memory: GPU 2 DBE error(s)" in per_gpu[2].reason and "drain the node" in per_gpu[2].recommendation
    assert per_gpu[1].reason.startswith("pcie: GPU 1 Host to GPU bandwidth 11.20 GB/s")
    assert per_gpu[3].observed == "level 2: 3 passed, 0 failed, 0 warned, 2 skipped"


@pytest.mark.parametrize(("text", "message"), [
    ("Error: unable to connect to host engine", "no JSON document"),
    ('{"something": {}}', "DCGM Diagnostic"),
    ("{not json}", "not JSON"),
])
def test_what_is_not_a_diagnostic_is_refused(text, message):
    with pytest.raises(dcgm_diag.DiagError, match=message):
        dcgm_diag.parse(text)


def test_a_runtime_error_is_the_suites_unknown():
    diagnostic = dcgm_diag.parse('{"DCGM GPU Diagnostic": {"runtime_error": "GPU 3 is in use by another process", '
                                 '"version": "3.3.5"}}')
    [suite] = active.dcgm_results(diagnostic, 3)
    assert (suite.check, suite.status, suite.reason) == ("active_suite", UNKNOWN, "GPU 3 is in use by another process")


def _stub(tmp_path: Path, body: str) -> Path:
    stub = tmp_path / "dcgmi"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'argv'}\n{body}\n")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return stub


def _check(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["check", "--simulate", "--simulate.gpus=8", "--path.sysfs=/nonexistent", *argv])
    return code, capsys.readouterr().out


def test_check_active_runs_dcgmi_at_the_level_asked_and_records_it(capsys, tmp_path):
    # dcgmi exits non-zero when a test fails and still prints its JSON.
    stub = _stub(tmp_path, f"cat {FIXTURES / 'dcgm-diag-3.1-r1.json'}\nexit 226")
    (tmp_path / "p.yaml").write_text("limits: {memlock: null, nofile: null}\nclock_sync: false\n")
    code, out = _check(capsys, f"--policy={tmp_path / 'p.yaml'}", "--active", f"--active.dcgmi={stub}",
                       "--active.level=2", "--output=json", f"--record={tmp_path / 'last.json'}")
    document = json.loads(out)
    assert (tmp_path / "argv").read_text().split() == ["diag", "-r", "2", "-j"]
    assert code == 1 and document["failed"] == ["gpu 5 active_dcgm_diag"]
    last = record.read(tmp_path / "last.json")
    assert last is not None and last.level == 2 and last.active is not None and last.active.level == 2
    assert ("active_dcgm_diag", 5, 2) in last.active.results and ("active_suite", None, 0) in last.active.results

    # A passive run afterwards keeps the last active run, and the exporter serves both.
    code, _ = _check(capsys, f"--policy={tmp_path / 'p.yaml'}", f"--record={tmp_path / 'last.json'}")
    again = record.read(tmp_path / "last.json")
    assert code == 0 and again is not None and again.level == 0 and again.active == last.active
    collector = HealthCollector(FakeNvml(), "node-1", policy.Policy(), check_record=tmp_path / "last.json")
    try:
        samples = {(s.name, s.labels.get("check"), s.labels.get("gpu")): s.value
                   for metric in collector.collect() for s in metric.samples}
    finally:
        collector.close()
    assert samples[("fleetscope_gpu_health_state", "active_dcgm_diag", "5")] == 2
    assert samples[("fleetscope_gpu_health_state", "active_dcgm_diag", "4")] == 0
    assert samples[("fleetscope_node_health_state", "active_suite", None)] == 0
    assert samples[("fleetscope_node_active_check_last_state", None, None)] == 2
    assert samples[("fleetscope_node_active_check_last_run_timestamp_seconds", None, None)] == last.active.time
    assert samples[("fleetscope_node_check_last_state", None, None)] == 0


def test_a_dcgmi_that_cannot_answer_leaves_the_suite_unknown(capsys, tmp_path):
    stub = _stub(tmp_path, "echo 'Error: unable to establish a connection to the specified host: localhost' >&2\n"
                           "exit 255")
    results = active.run(active.Options(engine="dcgm", dcgmi=str(stub)), policy.Policy())
    assert [(r.check, r.status) for r in results] == [("active_suite", UNKNOWN)]
    assert "exited 255" in results[0].reason and "unable to establish" in results[0].reason
    missing = active.run(active.Options(engine="dcgm", dcgmi=str(tmp_path / "absent")), policy.Policy())
    assert missing[0].status == UNKNOWN and "cannot run" in missing[0].reason


def test_without_dcgmi_auto_chooses_pytorch(tmp_path):
    results = active.run(active.Options(dcgmi=str(tmp_path / "absent"), devices=("cpu",), sizes=TINY),
                         policy.Policy())
    assert {r.check for r in results} == {"active_suite", "active_gemm", "active_h2d_bandwidth"}


# ---- PyTorch, on CPU -----------------------------------------------------------------------------------------

def test_gemm_and_copy_are_timed_on_the_device_given():
    assert burn.gemm_tflops("cpu", size=64, iterations=3) > 0
    assert burn.copy_gbps("cpu", 1 << 20, 3) > 0


def test_bus_bandwidth_is_nccl_tests_formula():
    assert burn.busbw_gbps(10 ** 9, 1.0, 8) == pytest.approx(1.75)  # algbw 1 GB/s * 2(8-1)/8
    assert burn.busbw_gbps(10 ** 9, 0.5, 2) == pytest.approx(2.0)


def test_measurements_are_judged_against_the_policys_figures():
    figures = policy.from_mapping({"active": {"gemm_tflops": 100, "h2d_gbps": 10}})
    assert figures.active.gemm_tflops == 100.0 and figures.active.unfit_ratio == 0.5
    judged = {value: active.measure("active_gemm", 0, lambda v=value: v, 100.0, 0.5, "TFLOPS", "active.gemm_tflops")
              for value in (120.0, 80.0, 30.0)}
    assert {value: r.status for value, r in judged.items()} == {120.0: OK, 80.0: DEGRADED, 30.0: UNFIT}
    assert judged[30.0].reason == "below the policy's active.gemm_tflops of 100 TFLOPS (under 0.5 of it)"
    assert "throttling" in judged[80.0].recommendation
    unjudged = active.measure("active_gemm", 0, lambda: 5.0, None, 0.5, "TFLOPS", "active.gemm_tflops")
    assert unjudged.status == OK and "not judged" in unjudged.observed


def test_a_device_error_is_unfit_and_out_of_memory_is_busy():
    def broken() -> float:
        raise RuntimeError("CUDA error: uncorrectable ECC error encountered")

    class OutOfMemoryError(RuntimeError):
        pass

    def busy() -> float:
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 128.00 MiB")

    assert active.measure("active_gemm", 1, broken, 100.0, 0.5, "TFLOPS", "k").status == UNFIT
    assert active.measure("active_gemm", 1, busy, 100.0, 0.5, "TFLOPS", "k").status == UNKNOWN


def test_pytorch_suite_on_cpu_with_gloo_all_reduce():
    the_policy = policy.from_mapping({"active": {"gemm_tflops": 1e6, "allreduce_busbw_gbps": 1e-6}})
    results = active.run(active.Options(engine="torch", devices=("cpu", "cpu"), allreduce_backend="gloo",
                                        sizes=TINY), the_policy)
    by = {(r.check, r.gpu): r for r in results}
    assert set(by) == {("active_suite", None), ("active_gemm", 0), ("active_gemm", 1), ("active_h2d_bandwidth", 0),
                       ("active_h2d_bandwidth", 1), ("active_allreduce", None)}
    assert by[("active_gemm", 0)].status == UNFIT  # a CPU is far below a million TFLOPS
    assert by[("active_h2d_bandwidth", 1)].status == OK  # no figure: reported, not judged
    allreduce = by[("active_allreduce", None)]
    assert allreduce.status == OK and allreduce.observed.endswith("GB/s bus bandwidth (expected 1e-06)")


def test_an_all_reduce_rank_that_fails_is_reported():
    with pytest.raises(burn.BurnError, match="rank 0 of the all-reduce failed"):
        burn.allreduce_busbw(2, backend="no-such-backend", device_type="cpu", size_bytes=1024, iterations=1,
                             timeout=120)


def test_without_a_cuda_device_pytorch_cannot_run_the_suite():
    [suite] = active.run(active.Options(engine="torch", devices=()), policy.Policy())
    assert suite.status == UNKNOWN and "no CUDA device" in suite.observed


# ---- the record ----------------------------------------------------------------------------------------------

def test_a_hostile_record_serves_only_known_active_checks(tmp_path):
    path = tmp_path / "last.json"
    path.write_text(json.dumps({"time": 1.0, "verdict": "healthy", "active": {"time": 2.0, "verdict": "degraded",
                    "results": [{"check": "active_gemm", "gpu": 1, "status": "degraded"},
                                {"check": "active_gemm", "gpu": 1, "status": "degraded"},
                                {"check": "rm -rf", "gpu": 0, "status": "unfit"},
                                {"check": "active_gemm", "gpu": 10 ** 9, "status": "unfit"},
                                {"check": "active_gemm", "gpu": None, "status": "unfit"},
                                {"check": "active_allreduce", "gpu": None, "status": "unknown"}]}}))
    last = record.read(path)
    assert last is not None and last.active is not None
    assert last.active.results == (("active_gemm", 1, 1),)
    path.write_text(json.dumps({"time": 1.0, "verdict": "unfit", "active": "yesterday"}))
    assert record.read(path) == record.LastCheck(1.0, 2)


def test_an_active_run_records_only_the_active_checks_verdict(tmp_path):
    results = [Result("nvlink", UNFIT, 1), Result("active_gemm", DEGRADED, 0), Result("active_suite", OK)]
    record.write(tmp_path / "r.json", 5.0, results, active=True)
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["verdict"] == UNFIT and document["active"]["verdict"] == DEGRADED
    assert document["active"]["failed"] == ["gpu 0 active_gemm"]


def test_a_bad_unfit_ratio_is_refused():
    with pytest.raises(policy.PolicyError, match="active.unfit_ratio"):
        policy.from_mapping({"active": {"unfit_ratio": 2}})
    with pytest.raises(policy.PolicyError, match="unknown key active.tflops"):
        policy.from_mapping({"active": {"tflops": 2}})
