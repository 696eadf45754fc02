"""The demo's remediator: `fleetscope remediate` in dry-run, on the Slurm backend with stand-ins for sinfo and
scontrol, receiving FleetscopeNodeUnfit from the demo's Alertmanager, its decisions printed as they are audited.

sinfo answers with the demo's nodes in one partition; scontrol, which a dry run never calls, writes down that it was
called and fails, so the demo would show it if it were."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

RECEIVER = "fleetscope-remediate"
ALERT = "FleetscopeNodeUnfit"
AUDIT = "remediation-audit.jsonl"
SCONTROL_CALLS = "scontrol-calls.log"


def write_config(workdir: Path, nodes: list[str]) -> Path:
    """remediate.yaml, its token, and the sinfo and scontrol stand-ins, under workdir/remediation."""
    root = workdir / "remediation"
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (root / "token").write_text(token)
    sinfo = root / "sinfo"
    sinfo.write_text("#!/bin/sh\n" + "".join(f"echo '{node}|gpu|idle|none'\n" for node in nodes))
    scontrol = root / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {workdir / SCONTROL_CALLS}\n"
                        "echo 'the demo never drains a node' >&2\nexit 1\n")
    for stub in (sinfo, scontrol):
        stub.chmod(0o755)
    config = {
        "dry_run": True,
        "backend": "slurm",
        "slurm": {"sinfo": str(sinfo), "scontrol": str(scontrol)},
        # Half the demo's partition: one node of two or three may be drained.
        "limits": {"max_actions_per_hour": 5, "max_drained_ratio": 0.5},
        "audit": {"path": str(workdir / AUDIT)},
        "auth": {"tokens_file": str(root / "token")},
        "rules": [{"alertname": ALERT, "matchers": ['severity="critical"'], "node_label": "hostname",
                   "reason": "failed health checks", "resume_on_resolve": True}],
    }
    path = root / "remediate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def route_to(alertmanager: dict, address: str, config_path: Path) -> dict:
    """The demo's Alertmanager configuration with FleetscopeNodeUnfit also sent to the remediator at `address`."""
    receiver = {"name": RECEIVER, "webhook_configs": [{
        "url": f"http://{address}/webhook", "send_resolved": True, "max_alerts": 100,
        "http_config": {"authorization": {"type": "Bearer",
                                          "credentials_file": str(config_path.parent / "token")}}}]}
    route = {"receiver": RECEIVER, "matchers": [f'alertname="{ALERT}"'], "continue": True}
    routes = alertmanager["route"]["routes"]
    return alertmanager | {"route": alertmanager["route"] | {"routes": [route, *routes]},
                           "receivers": [*alertmanager["receivers"], receiver]}


def describe(decision: dict) -> str:
    """One audit record in a line."""
    node, alert = decision.get("node", "?"), decision.get("alertname", "?")
    if decision.get("decision") == "dry_run":
        command = (f'scontrol update nodename={node} state=drain reason="{decision.get("reason", "")}"'
                   if decision.get("action") == "drain" else f"scontrol update nodename={node} state=resume")
        return f"REMEDIATE dry-run {decision.get('action')} of {node} for {alert}: would run {command}"
    detail = decision.get("refusal") or decision.get("detail", "")
    return f"REMEDIATE {decision.get('decision')} {decision.get('action')} of {node} for {alert}: {detail}"


class AuditPrinter:
    """Follows the remediator's audit log and says each decision as it is written."""

    def __init__(self, path: Path, say: Callable[[str], None], interval: float = 1.0):
        self._path, self._say, self._interval = path, say, interval
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="remediation-audit", daemon=True)

    def start(self) -> AuditPrinter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._read()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._read()

    def _read(self) -> None:
        try:
            with self._path.open("rb") as audit:
                audit.seek(self._offset)
                data = audit.read()
        except OSError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                decision = json.loads(line)
            except ValueError:
                continue
            if isinstance(decision, dict) and decision.get("decision") != "ignored":
                self._say(describe(decision))
