"""localstack's Prometheus.reload on a real Prometheus: the fleet benchmark stops a store's scrapes and rules
with it before its quiet queries, so a reload that did not take, or took only in part, would skew them."""

from __future__ import annotations

import pytest

from fleetscope.localstack.prometheus import Prometheus

pytestmark = pytest.mark.integration

RULES = """groups:
- name: reload-test
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
"""


def test_reload_stops_scrapes_and_rules_and_keeps_what_was_stored(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    self_scrape = Prometheus.targets("self", ["127.0.0.1:1"])  # the real address is known only once started
    with Prometheus(tmp_path / "prometheus", [self_scrape], rule_files=[rules]) as server:
        server.reload(scrape_configs=[Prometheus.targets("self", [f"127.0.0.1:{server.port}"])])
        server.wait_for('job:up:sum{job="self"} == 1', timeout=30)
        assert [target["labels"]["job"] for target in server.active_targets()] == ["self"]

        server.reload(scrape_configs=[], rule_files=None)
        assert server.active_targets() == []
        assert server.api("rules")["groups"] == []
        assert server.query('count_over_time(up{job="self"}[10m])')  # the samples scraped before stay

        with pytest.raises(TimeoutError, match="did not load"):  # a refused configuration: the old one stays
            server.reload(timeout=3, **{"global": {"scrape_interval": "not a duration"}})
        assert server.api("rules")["groups"] == []
