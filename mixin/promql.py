"""PromQL written the same way by the rules and the dashboards."""

from __future__ import annotations


def bottom(k: int, expr: str, by: str = "") -> str:
    """bottomk, written -topk(k, -expr). VictoriaMetrics 1.79 (Debian's) sorts a missing point after every value
    in bottomk, so over a range of series that come and go, as an extremes record's do, it keeps the gaps and
    drops the values, answering nothing (VictoriaMetrics#5506, fixed in 2024); its topk, and Prometheus, are right."""
    grouping = f" by ({by})" if by else ""
    return f"-topk{grouping} ({k}, -({expr}))"
