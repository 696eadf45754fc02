"""PromQL label matchers, as the rules and the dashboards write them."""

from __future__ import annotations


def matchers(*parts: str) -> str:
    """Joins PromQL matchers, skipping empty ones: matchers('job="x"', '', 'reason="y"')."""
    return ",".join(part for part in parts if part)
