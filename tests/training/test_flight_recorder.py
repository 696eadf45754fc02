"""The Flight Recorder reader (fleetscope.exporters.nccl.flight_recorder) on dumps of real two-rank gloo jobs
(tests/training/flight_recorder_job.py; torch 2.13 records gloo's collectives and writes no dump on a timeout, so the
job dumps itself), on a stored real dump (fixtures/flight_recorder_stall, from its stall mode: rank 1 stuck before
collective #7 of the group "trainer", rank 0 timed out in it; JSON from rank 0, pickle from rank 1; torch 2.13 writes
gloo's pg_config under an empty name) and on hostile and broken files. The reader never imports
torch."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleetscope.exporters.nccl import flight_recorder as fr
from fleetscope.localstack.process import free_port

HERE = Path(__file__).resolve().parent
STALL = HERE / "fixtures" / "flight_recorder_stall"
JOB = HERE / "flight_recorder_job.py"
REPO = HERE.parent.parent


def _stored(tmp_path: Path) -> tuple[dict, dict]:
    """The stored real dumps as plain documents: rank 0's JSON, rank 1's pickle."""
    rank0 = json.loads((STALL / "fr_rank_0.json").read_bytes())
    rank1 = pickle.loads((STALL / "fr_rank_1").read_bytes())  # noqa: S301 - our own fixture
    return rank0, rank1


def _write(directory: Path, documents: dict[int, dict]) -> Path:
    directory.mkdir(exist_ok=True)
    for rank, document in documents.items():
        (directory / f"fr_rank_{rank}.json").write_text(json.dumps(document))
    return directory


def test_the_stored_real_dump_names_the_rank_the_others_wait_on():
    dumps = fr.read_dir(STALL)
    assert [dump.rank for dump in dumps] == [0, 1]
    assert {dump.version for dump in dumps} == {"2.10"}
    assert [entry.sequence for entry in dumps[0].entries] == [1, 2, 3, 4, 5, 6, 7]
    assert [entry.sequence for entry in dumps[1].entries] == [1, 2, 3, 4, 5, 6]
    first = fr.first_divergences(dumps).first
    assert first is not None
    assert (first.process_group, first.description, first.sequence, first.reason, first.missing_ranks) == \
        ("1", "trainer", 7, "missing", (1,))
    assert first.by_rank == {0: "all_reduce in [[8]] out [[8]] (scheduled)", 1: "-"}


def test_ranks_that_agree_report_no_divergence(tmp_path):
    rank0, rank1 = _stored(tmp_path)
    rank0["entries"] = rank0["entries"][:6]
    report = fr.first_divergences(fr.read_dir(_write(tmp_path / "d", {0: rank0, 1: rank1})))
    assert report.first is None and report.divergences == ()


@pytest.mark.parametrize("change, reason", [
    (lambda entry: entry.update(profiling_name="gloo:broadcast"), "operation"),
    (lambda entry: entry.update(input_sizes=[[16]], output_sizes=[[16]]), "sizes"),
    (lambda entry: entry.update(input_dtypes=["Half"], output_dtypes=["Half"]), "dtypes"),
])
def test_the_first_collective_that_differs_is_named(tmp_path, change, reason):
    rank0, rank1 = _stored(tmp_path)
    change(rank1["entries"][3])  # collective #4
    change(rank1["entries"][4])  # and #5: the first is reported
    report = fr.first_divergences(fr.read_dir(_write(tmp_path / "d", {0: rank0, 1: rank1})))
    assert report.first is not None
    assert (report.first.sequence, report.first.reason, report.first.missing_ranks) == (4, reason, ())


def test_all_to_all_inputs_may_differ(tmp_path):
    rank0, rank1 = _stored(tmp_path)
    for document, size in ((rank0, 8), (rank1, 16)):
        document["entries"][2].update(profiling_name="gloo:all_to_all", input_sizes=[[size]])
    rank0["entries"] = rank0["entries"][:6]
    assert fr.first_divergences(fr.read_dir(_write(tmp_path / "d", {0: rank0, 1: rank1}))).first is None


def test_only_what_every_ring_buffer_still_holds_is_compared(tmp_path):
    rank0, rank1 = _stored(tmp_path)
    rank1["entries"] = rank1["entries"][3:]  # rank 1's buffer lost #1-#3; rank 0 lost nothing
    first = fr.first_divergences(fr.read_dir(_write(tmp_path / "d", {0: rank0, 1: rank1}))).first
    assert first is not None and (first.sequence, first.reason) == (7, "missing")


def test_point_to_point_operations_are_left_out(tmp_path):
    rank0, rank1 = _stored(tmp_path)
    rank0["entries"] = rank0["entries"][:6] + [dict(rank0["entries"][0], profiling_name="gloo:send 0->1",
                                                    is_p2p=True, collective_seq_id=0, p2p_seq_id=1)]
    assert fr.first_divergences(fr.read_dir(_write(tmp_path / "d", {0: rank0, 1: rank1}))).first is None


def test_a_missing_rank_dump_is_said(tmp_path):
    rank0, _ = _stored(tmp_path)
    rank0["pg_config"] = {"1": {"name": "1", "desc": "trainer", "ranks": "[0, 1, 2]"}}
    rank2 = json.loads(json.dumps(rank0))
    rank2["entries"] = rank2["entries"][:6]
    report = fr.first_divergences(fr.read_dir(_write(tmp_path / "d", {0: rank0, 2: rank2})))
    assert report.ranks_without_dump == (1,)
    assert report.first is not None and report.first.missing_ranks == (2,)
    assert "no dump from rank(s) 1" in "\n".join(fr.report_text(report))


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content, message", [
    (pickle.dumps({"version": "2.10", "entries": [_Boom()]}), "names posix.system"),
    (pickle.dumps({"version": "2.10", "entries": []})[:-5], "not a readable pickle"),
    (b"PK\x03\x04", "neither a pickle nor JSON"),
    (b'{"version": "2.10"', "not valid JSON"),
    (b'{"entries": []}', "no 'version'"),
    (b'{"version": "2.10", "entries": {}}', "entries is dict"),
    (b'{"version": "2.10", "entries": [{"process_group": ["0", "x"], "collective_seq_id": "7"}]}',
     r"entries\[0\]: collective_seq_id should be an integer"),
    (b'{"version": "2.10", "entries": [{"process_group": ["0", "x"], "collective_seq_id": 1, '
     b'"profiling_name": "gloo:all_reduce", "input_sizes": [["8"]]}]}', "input_sizes: expected a list of shapes"),
    (b'{"version": "2.10", "pg_config": {"0": {"ranks": "everyone"}}, "entries": []}', "ranks is not a list"),
], ids=["pickle-naming-a-function", "truncated-pickle", "zip", "truncated-json", "no-version", "entries-not-a-list",
        "sequence-not-an-integer", "sizes-not-integers", "ranks-not-a-list"])
def test_bad_dumps_get_a_clear_error(tmp_path, content, message):
    path = tmp_path / "fr_rank_0"
    path.write_bytes(content)
    with pytest.raises(fr.FlightRecorderError, match=message) as error:
        fr.read_dump(path)
    assert str(path) in str(error.value)


def test_names_sizes_and_duplicates_are_checked(tmp_path, monkeypatch):
    with pytest.raises(fr.FlightRecorderError, match="does not end with the rank"):
        fr.rank_of(tmp_path / "trace.json")
    assert fr.rank_of("/dumps/nccl_trace_rank_12") == 12 and fr.rank_of("fr_rank_3.json") == 3
    shutil.copy(STALL / "fr_rank_0.json", tmp_path / "fr_rank_0.json")
    shutil.copy(STALL / "fr_rank_0.json", tmp_path / "other_0.json")
    with pytest.raises(fr.FlightRecorderError, match="both rank 0's"):
        fr.read_dir(tmp_path)
    assert [dump.rank for dump in fr.read_dir(tmp_path, prefix="fr_rank_")] == [0]
    monkeypatch.setattr(fr, "MAX_DUMP_BYTES", 100)
    with pytest.raises(fr.FlightRecorderError, match="more than the 100"):
        fr.read_dump(tmp_path / "fr_rank_0.json")
    with pytest.raises(fr.FlightRecorderError, match="no dump files"):
        fr.read_dir(tmp_path, prefix="nothing")


def test_the_command_prints_and_exits_by_what_it_found(tmp_path, capsys):
    assert fr.main([str(STALL)]) == 1
    out = capsys.readouterr().out
    assert "first divergence: process group 1 (trainer): collective #7 was issued by some ranks but not by " \
           "rank(s) 1" in out
    assert fr.main([str(STALL), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["first"]["missing_ranks"] == [1]
    (tmp_path / "fr_rank_0").write_bytes(b"junk")
    assert fr.main([str(tmp_path)]) == 2
    assert "neither a pickle nor JSON" in capsys.readouterr().err


def test_the_reader_does_not_import_torch():
    code = ("import sys; import fleetscope.exporters.nccl.flight_recorder as fr; "
            f"fr.first_divergences(fr.read_dir({str(STALL)!r})); assert 'torch' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr


def _run_job(tmp_path: Path, mode: str) -> list[fr.Dump]:
    """Runs the two-rank gloo job with the Flight Recorder on and reads the dumps it left."""
    pytest.importorskip("torch.distributed")
    directory = tmp_path / mode
    directory.mkdir()
    master = free_port()
    processes = []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master), "RANK": str(rank),
               "WORLD_SIZE": "2", "TORCH_FR_BUFFER_SIZE": "64", "PYTHONPATH": str(REPO)}
        processes.append(subprocess.Popen([sys.executable, str(JOB), str(directory), mode], env=env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT))
    try:
        outputs = [process.communicate(timeout=90)[0].decode(errors="replace") for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert all(process.returncode == 0 for process in processes), outputs
    return fr.read_dir(directory)


@pytest.mark.integration
@pytest.mark.parametrize("mode, expected", [
    ("stall", (7, "missing", (1,))),
    ("mismatch", (7, "operation", ())),
    ("healthy", None),
])
def test_real_gloo_jobs(tmp_path, mode, expected):
    dumps = _run_job(tmp_path, mode)
    assert [dump.rank for dump in dumps] == [0, 1]
    first = fr.first_divergences(dumps).first
    assert (None if first is None else (first.sequence, first.reason, first.missing_ranks)) == expected
