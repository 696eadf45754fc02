"""The benchmark keeps running (its figures are quoted in notes, never asserted here)."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(script: str, tmp_path: Path, *flags: str) -> list[dict]:
    """Runs benchmarks/<script> with `flags` and returns the rows it wrote with --json."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *flags, "--json", str(tmp_path / "out.json")],
                            capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "out.json").read_text())


def test_scrape_latency_benchmark_runs(tmp_path):
    rows = run_benchmark("scrape_latency.py", tmp_path, "--quick")
    assert {row["mode"] for row in rows} == {"baseline", "poll", "scrape"}
    # Every configuration served the whole page, GPM series included. The simulated NCCL job adds a few
    # series as it runs (a new operation's lateness per rank), so pages taken at different moments differ by those.
    series = [row["series"] for row in rows]
    assert all(row["gpm_series"] for row in rows) and min(series) > 1000 and max(series) - min(series) <= 20
    assert all(row["cpu_ms_per_poll"] is not None for row in rows if row["mode"] == "poll")


def test_inference_sdk_benchmark_runs(tmp_path):
    rows = run_benchmark("inference_sdk.py", tmp_path, "--calls", "8000")
    assert {row["threads"] for row in rows} == {1, 8} and all(row["mean_ns"] > 0 for row in rows)


def test_drift_compare_benchmark_runs_and_agrees_with_evidently(tmp_path):
    # Past 10,000 values a Wasserstein merge is summed in OpenBLAS's slices (drift/openblas_dot.py).
    rows = run_benchmark("drift_compare.py", tmp_path, "--rows", "6000", "--repeat", "1", "--memory-rows", "0")
    assert [row["same_bits"] for row in rows] == [True, True] and all(row["columns"] == 20 for row in rows)


def test_drift_ingest_benchmark_runs(tmp_path):
    rows = run_benchmark("drift_ingest.py", tmp_path, "--seconds", "1", "--clients", "2")
    assert [row["encoding"] for row in rows] == ["idle", "json", "arrow"]
    assert all(row["rows_accepted"] > 0 for row in rows[1:])


def test_drift_memory_benchmark_runs(tmp_path):
    rows = run_benchmark("drift_memory.py", tmp_path, "--models", "2", "--step", "1", "--rows", "500")
    assert [row["models"] for row in rows] == [0, 1, 2] and all(row["rss_mib"] > 0 for row in rows)


def test_storage_amplification_benchmark_runs(tmp_path):
    out = tmp_path / "out.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "storage_amplification.py"), "--copies", "2", "--rows",
                             "5000", "--only", "audit", "--json", str(out)],
                            capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [row["answers"] for row in rows["bodies"]] == [[202]] and rows["bodies"][0]["pages_ratio"] < 2
    assert rows["blob"]["compressed_bytes"] < rows["blob"]["plain_bytes"]


def test_drift_multivariate_benchmark_runs_and_agrees_with_nannyml(tmp_path):
    rows = run_benchmark("drift_multivariate.py", tmp_path, "--quick")
    fleetscope, nannyml = rows[::2], rows[1::2]
    assert len(rows) == 4 and all(abs(a["value"] - b["value"]) < 1e-9 for a, b in zip(fleetscope, nannyml, strict=True))
