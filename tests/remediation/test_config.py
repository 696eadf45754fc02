"""The config file and the webhook body: what is wrong is said, naming the key or the field."""

from __future__ import annotations

import pytest

from fleetscope.remediation import catalog
from fleetscope.remediation.config import ConfigError, load, parse
from fleetscope.remediation.payload import MAX_ALERTS, BadPayload
from fleetscope.remediation.payload import parse as parse_payload
from fleetscope.self_metrics import BUILD_INFO
from tests.remediation.support import alert, webhook
from tests.test_catalog import NON_UNIT_SUFFIXES

RULE = {"alertname": "GpuXid", "node_label": "hostname"}


def test_defaults_are_the_careful_ones():
    config = parse({"rules": [RULE]})
    assert config.dry_run is True and config.backend == "slurm"
    assert config.limits.max_actions_per_hour == 1 and config.limits.max_drained_ratio == 0.1
    assert config.rules[0].resume_on_resolve is False


def test_matchers_follow_alertmanagers_syntax():
    rule = parse({"rules": [{**RULE, "matchers": ['severity="page"', 'team=~"infra|ml"', 'gpu!="7"',
                                                  'cluster!~"dev-.*"']}]}).rules[0]
    labels = {"alertname": "GpuXid", "severity": "page", "team": "ml", "gpu": "3", "cluster": "prod"}
    assert rule.matches(labels)
    for changed in ({"severity": "ticket"}, {"team": "mlx"}, {"gpu": "7"}, {"cluster": "dev-1"},
                    {"alertname": "Other"}):
        assert not rule.matches({**labels, **changed}), changed


@pytest.mark.parametrize("document, message", [
    ({}, "rules: expected a list of at least one rule"),
    ({"rules": [RULE], "backend": "pbs"}, "backend: 'pbs' is not one of slurm, kubernetes"),
    ({"rules": [RULE], "dry_run": "no"}, "dry_run: expected true or false"),
    ({"rules": [RULE], "limit": {}}, "the top level: unknown key(s) limit"),
    ({"rules": [RULE], "limits": {"max_actions_per_hour": 0}}, "limits.max_actions_per_hour: expected a whole"),
    ({"rules": [RULE], "limits": {"max_drained_ratio": 1.5}}, "limits.max_drained_ratio: expected a share"),
    ({"rules": [RULE], "limits": {"body_timeout": "soon"}}, "limits.body_timeout: invalid duration"),
    ({"rules": [{"node_label": "hostname"}]}, "rules[0].alertname: expected a non-empty string"),
    ({"rules": [{**RULE, "matchers": ["severity page"]}]}, "rules[0].matchers[0]: 'severity page' is not a matcher"),
    ({"rules": [{**RULE, "matchers": ['team=~"("']}]}, "rules[0].matchers[0]: '(' is not a regular expression"),
    ({"rules": [{**RULE, "resume_on_resolve": "yes"}]}, "rules[0].resume_on_resolve: expected true or false"),
    ({"rules": [{**RULE, "reason": 'say "hi"'}]}, "rules[0].reason: expected one line"),
    ({"rules": [RULE], "kubernetes": {"taint": {"effect": "Never"}}}, "kubernetes.taint.effect: 'Never'"),
    ({"rules": [RULE], "kubernetes": {"taint": {"key": "a b"}}}, "kubernetes.taint.key: 'a b' is not"),
    ({"rules": [RULE], "kubernetes": {"taint": {"value": "xid 79"}}}, "kubernetes.taint.value: 'xid 79' is not"),
    ({"rules": [RULE], "slurm": {"command_timeout": "1h"}}, "slurm.command_timeout: must be more than 0s"),
    ({"rules": [RULE], "auth": {"tokens": ["short"]}}, "auth.tokens: a token must be at least 16"),
    ({"rules": [RULE], "auth": {"tokens_file": "/does/not/exist"}}, "auth.tokens_file: cannot read"),
])
def test_bad_config_names_the_key(document, message):
    with pytest.raises(ConfigError) as raised:
        parse(document)
    assert message in str(raised.value)


def test_an_unreadable_or_invalid_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("rules: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path / "bad.yaml")


def test_a_webhook_body_as_alertmanager_sends_it():
    notification = parse_payload(webhook(alert("GpuXid", "gpu-1"), alert("GpuXid", "gpu-2", "resolved")))
    assert [(a.status, a.labels["hostname"]) for a in notification.alerts] == [("firing", "gpu-1"),
                                                                                ("resolved", "gpu-2")]


@pytest.mark.parametrize("body, message", [
    (b"not json", "the body is not JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"version": "3", "alerts": []}', 'version must be "4"'),
    (b'{"version": "4", "alerts": {}}', "alerts must be a list"),
    (b'{"version": "4", "alerts": [{"status": "burning", "labels": {"alertname": "x"}}]}',
     'alerts[0].status must be "firing" or "resolved"'),
    (b'{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": 3}}]}',
     "alerts[0].labels.alertname must be a string"),
    (b'{"version": "4", "alerts": [{"status": "firing", "labels": {"node": "a"}}]}',
     "alerts[0].labels has no alertname"),
])
def test_bad_bodies_say_what_is_wrong(body, message):
    with pytest.raises(BadPayload) as raised:
        parse_payload(body)
    assert message in str(raised.value)


def test_more_alerts_than_alertmanager_sends_are_refused():
    with pytest.raises(BadPayload, match=f"more than {MAX_ALERTS}"):
        parse_payload(webhook(*[alert("GpuXid", f"gpu-{i}") for i in range(MAX_ALERTS + 1)]))


@pytest.mark.parametrize("spec", [spec for spec in catalog.ALL if spec is not BUILD_INFO], ids=lambda spec: spec.name)
def test_metric_names_follow_the_catalog_conventions(spec):
    """The room's own metrics; fleetscope_build_info is the core's, served by every fleetscope process."""
    assert spec.name.startswith("fleetscope_remediation_")
    assert spec.name.endswith(("_ratio", *NON_UNIT_SUFFIXES))
