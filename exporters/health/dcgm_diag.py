"""DCGM diagnostics: `dcgmi diag -r LEVEL -j` run and its JSON read into one result per test and GPU.

Two shapes of the JSON are read, as DCGM writes them:

- DCGM 3.x: {"DCGM GPU Diagnostic": {"test_categories": [{"category", "tests": [{"name", "results":
  [{"gpu_ids": "0,1,2" or 0, "status": "PASS", "warnings": [...], "info": [...]}]}]}], "version", "runtime_error"}}
  (NVIDIA/DCGM nvvs/src/tests/JsonResultTests.cpp, "JsonResult: Deserialize real output"; tests may be null there).
- DCGM 4.x: {"DCGM Diagnostic": {...}} with each result naming its entity ("entity_group": "GPU", "entity_id": 3,
  "status": "Pass", warnings as {"warning", "error_id", "error_category", "error_severity"}) and a "test_summary"
  per test (NVIDIA/DCGM issue #215 quotes a 4.x run).

dcgmi may print a line or two before the JSON and exits non-zero when a test fails: the document is read from its
first "{" to its last "}" whatever the exit status, and only a missing or malformed document is an error.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

ROOT_KEYS = ("DCGM Diagnostic", "DCGM GPU Diagnostic")  # 4.x, 3.x
LEVELS = (1, 2, 3)
# How long each level may take before it is given up on (DCGM's guide: r1 seconds, r2 about two minutes, r3 up to
# half an hour on eight GPUs).
TIMEOUTS = {1: 300.0, 2: 900.0, 3: 3600.0}
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


class DiagError(Exception):
    """dcgmi could not be run, or did not answer with a diagnostic document."""


@dataclass(frozen=True)
class TestResult:
    category: str
    test: str
    gpus: tuple[int, ...]  # () for a result of the node as a whole
    status: str  # pass, fail, warn, skip, or DCGM's own word lower-cased
    messages: tuple[str, ...] = ()


@dataclass
class Diagnostic:
    version: str = ""
    runtime_error: str = ""
    results: list[TestResult] = field(default_factory=list)


def run(dcgmi: str, level: int, timeout: float | None = None) -> Diagnostic:
    if level not in LEVELS:
        raise ValueError(f"level {level} is not one of {LEVELS}")
    command = [dcgmi, "diag", "-r", str(level), "-j"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout or TIMEOUTS[level], check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DiagError(f"`{' '.join(command)}` did not finish within {timeout or TIMEOUTS[level]:g}s") from None
    except OSError as error:
        raise DiagError(f"cannot run {dcgmi}: {error.strerror}") from None
    text = done.stdout[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
    try:
        return parse(text)
    except DiagError as error:
        stderr = done.stderr[:2000].decode("utf-8", errors="replace").strip()
        raise DiagError(f"`{' '.join(command)}` exited {done.returncode}: {error}"
                        + (f"; stderr: {stderr[:300]}" if stderr else "")) from None


def parse(text: str) -> Diagnostic:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise DiagError("no JSON document in the output")
    try:
        document = json.loads(text[start:end + 1])
    except ValueError as error:
        raise DiagError(f"the output is not JSON: {error}") from None
    root = next((document[key] for key in ROOT_KEYS if isinstance(document, dict) and key in document), None)
    if not isinstance(root, dict):
        raise DiagError(f"the document has none of {', '.join(repr(key) for key in ROOT_KEYS)}")
    diagnostic = Diagnostic(version=str(root.get("version", "")), runtime_error=_text(root.get("runtime_error")))
    for category in _list(root.get("test_categories")):
        if not isinstance(category, dict):
            continue
        for test in _list(category.get("tests")):
            if isinstance(test, dict):  # DCGM 3.x puts nulls between tests
                diagnostic.results += _test_results(str(category.get("category", "")), test)
    return diagnostic


def _test_results(category: str, test: dict[str, Any]) -> list[TestResult]:
    name = str(test.get("name", "")) or "unnamed test"
    results = []
    for result in _list(test.get("results")):
        if isinstance(result, dict) and "status" in result:
            results.append(TestResult(category, name, _gpus(result), str(result["status"]).strip().lower(),
                                      _messages(result)))
    summary = test.get("test_summary")
    if not results and isinstance(summary, dict) and "status" in summary:  # 4.x: a test judged as a whole
        results.append(TestResult(category, name, (), str(summary["status"]).strip().lower(), _messages(summary)))
    return results


def _gpus(result: dict[str, Any]) -> tuple[int, ...]:
    if "entity_id" in result:  # 4.x
        group = str(result.get("entity_group", "GPU")).upper()
        return (int(result["entity_id"]),) if group == "GPU" and _is_int(result["entity_id"]) else ()
    ids: Any = result.get("gpu_ids")
    if _is_int(ids):
        return (int(ids),)
    if isinstance(ids, str):
        return tuple(int(part) for part in ids.split(",") if part.strip().isdigit())
    return ()


def _messages(result: dict[str, Any]) -> tuple[str, ...]:
    messages = []
    for warning in _list(result.get("warnings")) + _list(result.get("errors")):
        if isinstance(warning, dict):
            text = _text(warning.get("warning") or warning.get("message") or warning.get("error"))
        else:
            text = _text(warning)
        if text:
            messages.append(text)
    return tuple(messages)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_text(item) for item in value if item)
    return "" if value is None else str(value).strip()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, str) and value.isdigit())
