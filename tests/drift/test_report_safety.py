"""The drift report as a person opens it: a real headless Chromium loads a report whose data
carries script payloads and runs none of them, while the report's own scripts still draw it;
and a crowd asking for the same report gets it, built once."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

import pytest

from tests.drift.support import MODEL_CONFIG, call, outputs

# Each would set data-pwned on the page if it ran: no quotes, which JSON would escape anyway.
PAYLOADS = [
    "</script><script>document.documentElement.dataset.pwned=1</script>",
    "<img src=x onerror=document.documentElement.dataset.pwned=2>",
    "</script><svg onload=document.documentElement.dataset.pwned=3>",
    "\u2028</script><script>document.documentElement.dataset.pwned=4</script>",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is not installed: run scripts/setup.sh"
    return path


def rendered_dom(url: str) -> str:
    """The page's DOM after its scripts ran, as headless Chromium sees it."""
    result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--virtual-time-budget=10000", "--dump-dom", url],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def poisoned_rows(count: int, seed: int) -> list[dict]:
    rows = outputs(count, seed=seed)
    for index, row in enumerate(rows):
        if index % 3 == 0:
            row["label"] = PAYLOADS[index % len(PAYLOADS)]
    return rows


def test_script_payloads_in_the_data_never_run_in_the_report(drift_service):
    address = drift_service()
    assert call(address, "PUT", "/v1/models/iris/reference", poisoned_rows(400, seed=1))[0] == 200
    assert call(address, "POST", "/v1/models/iris/outputs", poisoned_rows(300, seed=2))[0] == 202
    assert call(address, "POST", "/v1/models/iris/evaluate")[1]["outcome"] == "success"
    status, html, headers = call(address, "GET", "/v1/models/iris/report")
    headers = {key.lower(): item for key, item in headers.items()}
    assert status == 200 and headers["x-content-type-options"] == "nosniff"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    for payload in PAYLOADS:
        assert payload not in html

    dom = rendered_dom(f"http://{address}/v1/models/iris/report")
    assert "data-pwned" not in dom
    # The report's own scripts did run: Evidently drew its widgets and the column names.
    assert dom.count("MuiPaper") > 10 and "score" in dom
    # No element of theirs made it into the page.
    assert not re.search(r"<img[^>]*onerror|<svg[^>]*onload", dom)


def test_a_crowd_asking_for_one_report_gets_it(drift_service):
    address = drift_service(MODEL_CONFIG)
    assert call(address, "PUT", "/v1/models/iris/reference", outputs(400, seed=1))[0] == 200
    assert call(address, "POST", "/v1/models/iris/outputs", outputs(300, seed=2))[0] == 202
    assert call(address, "POST", "/v1/models/iris/evaluate")[0] == 200
    answers: list[int] = []

    def read() -> None:
        answers.append(call(address, "GET", "/v1/models/iris/report")[0])

    readers = [threading.Thread(target=read) for _ in range(45)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(120)
    assert answers == [200] * 45
    # the service's own metrics page kept answering meanwhile, and the evaluation can run again
    assert call(address, "GET", "/metrics")[0] == 200
    assert call(address, "POST", "/v1/models/iris/evaluate")[0] == 200


@pytest.fixture(autouse=True)
def _chromium_present():
    chromium()
