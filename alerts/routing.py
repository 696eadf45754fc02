"""The Alertmanager configuration: a route tree by team and severity, a receiver per team
and channel with every secret read from a file, and the inhibit rules.

Every alert goes to the generic webhook (automation, an audit trail). Then, by its team:
what pages (severity critical by default) goes to PagerDuty, what needs a ticket (warning) to
Opsgenie, and every alert to the team's Slack channel. FleetscopeWatchdog, always firing, goes
only to the dead man's switch.

Inhibit rules keep one fault to one page: a node that stopped answering silences its own alerts, a GPU that fell off
the bus its symptoms, a node paged unfit (FleetscopeNodeUnfit) its GPUs' pages, and a page its ticket twin.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fleetscope.alerts.rule import regex
from fleetscope.mixin.config import URGENCIES, WATCHDOG, MonitoringConfig

WEBHOOK = "fleetscope-webhook"
WATCHDOG_ALERT = "FleetscopeWatchdog"
WATCHDOG_RECEIVER = "fleetscope-watchdog"
# What makes two alerts of one name the same problem, for the page -> ticket twin inhibition:
# every label the rules keep except severity and the burn-rate windows.
TWIN_LABELS = ("alertname", "cluster", "namespace", "model", "engine", "latency", "threshold", "objective", "instance",
               "hostname", "gpu", "uuid", "xid", "comm_id", "device", "port")
# Alerts about one node's GPUs and links: silenced while that node is unreachable.
NODE_ALERTS = 'alertname=~"FleetscopeGPU.+|FleetscopeNVMLUnreachable|FleetscopeExporterCollectorFailing|' \
              'FleetscopeFabric.+|FleetscopeNCCLStragglerRank|FleetscopeNCCLNoProgress"'

SLACK_TITLE = ('[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] '
               '{{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})')
# A runbook_url that is a path (the default: mixin/config.py's runbook_url) is shown as text, not as a broken link.
SLACK_TEXT = ('{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n'
              '{{ if match "^https?://" .Annotations.runbook_url }}<{{ .Annotations.runbook_url }}|Runbook>'
              '{{ else }}Runbook: `{{ .Annotations.runbook_url }}`{{ end }}\n{{ end }}')


def receivers_of(team: str) -> dict[str, str]:
    return {"page": f"{team}-pagerduty", "ticket": f"{team}-opsgenie", "info": f"{team}-slack"}


def _team_route(team: str, config: MonitoringConfig) -> dict:
    names, repeat, severity = receivers_of(team), config.routing.repeat_interval, config.severities.of
    return {
        "receiver": names["info"],
        "matchers": [f'team="{team}"'],
        "routes": [
            {"receiver": names["page"], "matchers": [f'severity="{severity("page")}"'],
             "repeat_interval": repeat["page"], "continue": True},
            {"receiver": names["ticket"], "matchers": [f'severity="{severity("ticket")}"'],
             "repeat_interval": repeat["ticket"], "continue": True},
            {"receiver": names["info"], "repeat_interval": repeat["info"]},
        ],
    }


def _watchdog_route(config: MonitoringConfig) -> dict:
    """Straight to the dead man's switch, and nowhere else: it fires all the time. It repeats every
    watchdog_repeat_interval, so the switch raises its alarm soon after Prometheus, the rules or
    Alertmanager stop."""
    return {"receiver": WATCHDOG_RECEIVER,
            "matchers": [f'alertname="{WATCHDOG_ALERT}"', f'severity="{config.severities.of(WATCHDOG)}"'],
            "group_by": ["alertname"], "group_wait": "0s", "group_interval": config.routing.watchdog_repeat_interval,
            "repeat_interval": config.routing.watchdog_repeat_interval}


def _watchdog_receiver(config: MonitoringConfig) -> dict:
    url = config.routing.receivers.watchdog_url
    return {"name": WATCHDOG_RECEIVER} | ({"webhook_configs": [{"url": url, "send_resolved": False}]} if url else {})


def _team_receivers(team: str, config: MonitoringConfig) -> list[dict]:
    secrets = config.routing.receivers.secrets_dir.rstrip("/")
    names = receivers_of(team)
    return [
        {"name": names["page"], "pagerduty_configs": [{
            "routing_key_file": f"{secrets}/{team}-pagerduty",
            # PagerDuty takes critical, error, warning or info, whatever the label says.
            "severity": "critical",
            "send_resolved": True,
        }]},
        {"name": names["ticket"], "opsgenie_configs": [{
            "api_key_file": f"{secrets}/{team}-opsgenie",
            "priority": "P3",
            "tags": f"fleetscope,{team}",
            "send_resolved": True,
        }]},
        {"name": names["info"], "slack_configs": [{
            "api_url_file": f"{secrets}/{team}-slack",
            "channel": f"{config.routing.receivers.slack_channel_prefix}{team}",
            "title": SLACK_TITLE,
            "text": SLACK_TEXT,
            "send_resolved": True,
        }]},
    ]


# One GPU fault pages once: a GPU that stopped answering, or whose driver asks for a reset or a reboot,
# silences that GPU's symptoms; NVML unreachable silences every GPU alert of its node.
GPU_SYMPTOMS = ('alertname=~"FleetscopeGPUXidError|FleetscopeGPUDoubleBitEccErrors|FleetscopeGPURowRemap.+|'
                'FleetscopeGPU.+Throttling|FleetscopeGPUTemperatureNearSlowdown|FleetscopeGPUAllocatedIdle"')
GPU_FAULT_INHIBITIONS = (
    ('alertname=~"FleetscopeGPUDown|FleetscopeGPURecoveryActionRequired"', GPU_SYMPTOMS,
     ("cluster", "instance", "uuid")),
    ('alertname="FleetscopeGPUDown"', 'alertname="FleetscopeGPUMissing"', ("cluster", "instance")),
    ('alertname="FleetscopeNVMLUnreachable"', 'alertname=~"FleetscopeGPU.+"', ("cluster", "instance")),
)
# One page per node: while FleetscopeNodeUnfit (alerts/health.py) pages for a node, the pages about its GPUs are
# silenced (the node page names the failing checks and is what remediation drains on). The GPU pages usually fire
# first (the node page waits gpu.health_unfit_for), so the first page is the precise one and only its repeats and
# the node's later GPU pages are folded in; their tickets and Slack messages are not. The reverse, a GPU page
# silencing the node page, would silence it for every receiver, the remediator's webhook included.
NODE_UNFIT_ALERT = "FleetscopeNodeUnfit"
GPU_PAGES = ('alertname=~"FleetscopeGPUXidError|FleetscopeGPURowRemapFailed|FleetscopeGPUDown|FleetscopeGPUMissing|'
             'FleetscopeGPUDoubleBitEccErrors|FleetscopeGPURecoveryActionRequired"')
NODE_PAGE_EQUAL = ("cluster", "hostname")


def inhibit_rules(config: MonitoringConfig) -> list[dict]:
    rules = [{
        "source_matchers": [f'alertname=~"{regex(config.routing.node_down_alerts)}"'],
        "target_matchers": [NODE_ALERTS],
        "equal": ["cluster", "instance"],
    }]
    rules += [{"source_matchers": [source], "target_matchers": [target], "equal": list(equal)}
              for source, target, equal in GPU_FAULT_INHIBITIONS]
    page = config.severities.of("page")
    rules.append({"source_matchers": [f'alertname="{NODE_UNFIT_ALERT}"', f'severity="{page}"'],
                  "target_matchers": [GPU_PAGES, f'severity="{page}"'], "equal": list(NODE_PAGE_EQUAL)})
    severities = [config.severities.of(urgency) for urgency in URGENCIES]
    for position, severity in enumerate(severities[:-1]):
        rules.append({
            "source_matchers": [f'severity="{severity}"'],
            "target_matchers": [f'severity=~"{regex(severities[position + 1:])}"'],
            "equal": list(TWIN_LABELS),
        })
    return rules


def local_receivers(receiver_url: str, secrets_dir: Path, teams: Iterable[str]) -> dict:
    """The `routing` settings that send every channel of every team (PagerDuty, Opsgenie, Slack and
    the webhook) to one local HTTP receiver, as the demo and the tests need; writes the secret files
    they read under secrets_dir. Files are written as `printf %s` writes them: Alertmanager 0.25 trims
    the PagerDuty and Slack files but sends a trailing newline of the Opsgenie key file in its
    Authorization header, and fails."""
    secrets_dir.mkdir(parents=True, exist_ok=True)
    for team in teams:
        (secrets_dir / f"{team}-pagerduty").write_text(f"routing-key-{team}")
        (secrets_dir / f"{team}-opsgenie").write_text(f"api-key-{team}")
        (secrets_dir / f"{team}-slack").write_text(f"{receiver_url}/slack/{team}")
    (secrets_dir / "webhook-token").write_text("webhook-token-0123456789")
    return {"receivers": {"secrets_dir": str(secrets_dir), "webhook_url": f"{receiver_url}/webhook",
                          "watchdog_url": f"{receiver_url}/watchdog",
                          "webhook_token_file": str(secrets_dir / "webhook-token")},
            "global_settings": {"pagerduty_url": f"{receiver_url}/pagerduty/v2/enqueue",
                                "opsgenie_api_url": f"{receiver_url}/opsgenie/"}}


def alertmanager_config(config: MonitoringConfig) -> dict:
    routing, receivers = config.routing, config.routing.receivers
    teams = sorted(set(config.teams.values()))
    webhook = {"name": WEBHOOK, "webhook_configs": [{
        "url": receivers.webhook_url,
        "send_resolved": True,
        "http_config": {"authorization": {"type": "Bearer", "credentials_file": receivers.webhook_token_file}},
    }]}
    document: dict = {"global": dict(routing.global_settings)} if routing.global_settings else {}
    return document | {
        "route": {
            "receiver": WEBHOOK,
            "group_by": list(routing.group_by),
            "group_wait": routing.group_wait,
            "group_interval": routing.group_interval,
            "repeat_interval": routing.repeat_interval["ticket"],
            "routes": [_watchdog_route(config), {"receiver": WEBHOOK, "continue": True}]
                      + [_team_route(team, config) for team in teams],
        },
        "inhibit_rules": inhibit_rules(config),
        "receivers": [webhook, _watchdog_receiver(config)]
                     + [receiver for team in teams for receiver in _team_receivers(team, config)],
    }
