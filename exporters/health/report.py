"""How a check's results are said: a table for people, JSON for programs, a line and an exit code for Slurm's
HealthCheckProgram, LBNL NHC and Kubernetes node-problem-detector, and the reason `scontrol` drains a node with."""

from __future__ import annotations

import json
from collections.abc import Sequence

from fleetscope.exporters.health.model import DEGRADED, HEALTHY, UNFIT, UNKNOWN, Result, failing, verdict

# Exit codes. Slurm's HealthCheckProgram and NHC read any non-zero as unfit; node-problem-detector's custom plugins
# answer 0 OK, 1 NonOK, 2 Unknown (k8s.io/node-problem-detector pkg/custompluginmonitor/types: OK, NonOK, Unknown).
EXIT_OK, EXIT_UNFIT, EXIT_UNKNOWN = 0, 1, 2
# node-problem-detector keeps the first max_output_length characters of a plugin's stdout (80 by default).
NPD_MESSAGE_LENGTH = 80
DRAIN_REASON_LENGTH = 200


def exit_code(results: Sequence[Result], fail_on: str = UNFIT) -> int:
    """0 for a node fit for work; 1 for one that is unfit (or degraded, with fail_on=degraded)."""
    outcome = verdict(results)
    return EXIT_UNFIT if outcome == UNFIT or (fail_on == DEGRADED and outcome == DEGRADED) else EXIT_OK


def summary(results: Sequence[Result], limit: int, only_unfit: bool = False) -> str:
    """'unfit: gpu 2 nvlink, gpu 3 pcie_link' within `limit` characters, '+N more' when cut."""
    outcome = verdict(results)
    bad = [result for result in failing(results) if result.status == UNFIT or not only_unfit]
    if not bad:
        return f"{outcome}: {len(results)} checks passed"[:limit]
    head, parts = f"{outcome}: ", [f"{result.subject} {result.check}" for result in bad]
    for count in range(len(parts), 0, -1):
        rest = len(parts) - count
        text = head + ", ".join(parts[:count]) + (f" +{rest} more" if rest else "")
        if len(text) <= limit:
            return text
    return (head + f"{len(parts)} checks failed")[:limit]


def drain_reason(results: Sequence[Result]) -> str:
    """The unfit checks only: what the node is drained for."""
    return "fleetscope: " + summary(results, DRAIN_REASON_LENGTH - len("fleetscope: "), only_unfit=True)


def npd(results: Sequence[Result]) -> str:
    return summary(results, NPD_MESSAGE_LENGTH) + "\n"


def as_json(hostname: str, checked_at: float, results: Sequence[Result], fail_on: str = UNFIT) -> str:
    return json.dumps({"hostname": hostname, "time": checked_at, "verdict": verdict(results),
                       "exit_code": exit_code(results, fail_on),
                       "failed": [f"{result.subject} {result.check}" for result in failing(results)],
                       "results": [result.as_dict() for result in results]}, indent=2) + "\n"


def table(hostname: str, results: Sequence[Result], everything: bool = False) -> str:
    """The results that need attention (all with everything), each failed one with its reason and what to do."""
    outcome = verdict(results)
    shown = list(results) if everything else [r for r in results if r.status in (DEGRADED, UNFIT, UNKNOWN)]
    passed = sum(1 for result in results if result.status not in (DEGRADED, UNFIT, UNKNOWN))
    lines = [f"{hostname}: {outcome.upper() if outcome != HEALTHY else 'healthy'} "
             f"({passed} of {len(results)} checks ok)"]
    if shown:
        rows = [("SUBJECT", "CHECK", "STATUS", "OBSERVED")] + [
            (result.subject, result.check, result.status, result.observed) for result in shown]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        lines.append("")
        lines += ["  ".join([*(row[c].ljust(widths[c]) for c in range(3)), row[3]]).rstrip() for row in rows]
    bad = failing(results) + [result for result in results if result.status == UNKNOWN and result.reason]
    if bad:
        lines.append("")
        for result in bad:
            lines.append(f"{result.subject} {result.check} ({result.status}): {result.reason}")
            if result.recommendation:
                lines.append(f"    what to do: {result.recommendation}")
    return "\n".join(lines) + "\n"
