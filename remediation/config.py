"""The remediator's YAML configuration, checked in full at start-up; every ConfigError names the key at fault.

    dry_run: true                    # decide and log only; set false once the audit log shows the right calls
    backend: slurm                   # or kubernetes
    slurm: {scontrol: scontrol, sinfo: sinfo, command_timeout: 15s}
    kubernetes:
      kubeconfig: /etc/fleetscope/kubeconfig   # absent: the pod's service account (in-cluster)
      node_selector: nvidia.com/gpu.present=true
      taint: {key: fleetscope.io/remediation, value: drained, effect: NoSchedule}
    limits: {max_actions_per_hour: 3, max_drained_ratio: 0.1}
    audit: {path: /var/lib/fleetscope/remediation-audit.jsonl}
    auth: {tokens_file: /etc/fleetscope/remediation-tokens}
    rules:
      - alertname: FleetscopeGpuFallenOffBus
        matchers: ['severity="page"']
        node_label: hostname
        reason: GPU fell off the bus
        resume_on_resolve: false
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetscope import durations

BACKENDS = ("slurm", "kubernetes")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Alertmanager's matcher syntax: name, operator, value quoted or bare.
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$')
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
MIN_TOKEN_CHARACTERS = 16


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the key."""


@dataclass(frozen=True)
class Matcher:
    label: str
    operator: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.operator in ("=~", "!~"):
            found = re.fullmatch(self.value, actual) is not None
            return found if self.operator == "=~" else not found
        return (actual == self.value) == (self.operator == "=")


@dataclass(frozen=True)
class Rule:
    alertname: str
    matchers: tuple[Matcher, ...] = ()
    node_label: str = "node"
    reason: str = ""
    resume_on_resolve: bool = False

    def matches(self, labels: dict[str, str]) -> bool:
        return labels.get("alertname") == self.alertname and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class Taint:
    key: str = "fleetscope.io/remediation"
    value: str = "drained"
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class SlurmSettings:
    scontrol: str = "scontrol"
    sinfo: str = "sinfo"
    command_timeout: float = 15.0


@dataclass(frozen=True)
class KubernetesSettings:
    kubeconfig: Path | None = None  # None: in-cluster, the pod's service account
    context: str = ""
    node_selector: str = ""
    taint: Taint = Taint()
    request_timeout: float = 15.0


@dataclass(frozen=True)
class Limits:
    max_actions_per_hour: int = 1
    max_drained_ratio: float = 0.1
    max_body_bytes: int = 1024 * 1024
    body_timeout: float = 10.0


@dataclass(frozen=True)
class Config:
    rules: tuple[Rule, ...]
    backend: str = "slurm"
    dry_run: bool = True
    slurm: SlurmSettings = SlurmSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    limits: Limits = Limits()
    audit_path: Path = Path("fleetscope-remediation-audit.jsonl")
    tokens: frozenset[str] = field(default_factory=frozenset)

    def rule_for(self, labels: dict[str, str]) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(labels)), None)


def load(path: Path) -> Config:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return parse(document, base=path.parent)


def parse(document: Any, base: Path = Path(".")) -> Config:
    section = _mapping(document, "the top level", {"dry_run", "backend", "slurm", "kubernetes", "limits", "audit",
                                                   "auth", "rules"})
    backend = section.get("backend", "slurm")
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    audit = _mapping(section.get("audit", {}), "audit", {"path"})
    return Config(
        rules=_rules(section.get("rules")),
        backend=backend,
        dry_run=_bool(section, "dry_run", True, "dry_run"),
        slurm=_slurm(section.get("slurm", {})),
        kubernetes=_kubernetes(section.get("kubernetes", {}), base),
        limits=_limits(section.get("limits", {})),
        audit_path=base / _text(audit, "path", "audit.path", "fleetscope-remediation-audit.jsonl"),
        tokens=_tokens(section.get("auth", {}), base),
    )


def _mapping(value: Any, where: str, known: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(str(key) for key in set(value) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
    return value


def _text(section: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _bool(section: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _duration(section: dict[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key)
    if value is None:
        return default
    try:
        seconds = durations.parse(str(value))
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if not 0 < seconds <= 600:
        raise ConfigError(f"{where}: must be more than 0s and at most 10m, got {value!r}")
    return seconds


def _int(section: dict[str, Any], key: str, default: int, where: str, low: int, high: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: expected a whole number from {low} to {high}, got {value!r}")
    return value


def _rules(value: Any) -> tuple[Rule, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("rules: expected a list of at least one rule (alertname, matchers, node_label, ...): "
                          "with none, no alert would ever be acted on")
    return tuple(_rule(item, f"rules[{index}]") for index, item in enumerate(value))


def _rule(value: Any, where: str) -> Rule:
    section = _mapping(value, where, {"alertname", "matchers", "node_label", "reason", "resume_on_resolve"})
    matchers = section.get("matchers") or []
    if not isinstance(matchers, list):
        raise ConfigError(f"{where}.matchers: expected a list such as ['severity=\"page\"', 'team=~\"infra|ml\"']")
    reason = section.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 200 or any(c in reason for c in "\"\n\r"):
        raise ConfigError(f"{where}.reason: expected one line of at most 200 characters without double quotes")
    node_label = _text(section, "node_label", f"{where}.node_label", "node")
    return Rule(alertname=_text(section, "alertname", f"{where}.alertname"),
                matchers=tuple(_matcher(text, f"{where}.matchers[{i}]") for i, text in enumerate(matchers)),
                node_label=node_label, reason=reason,
                resume_on_resolve=_bool(section, "resume_on_resolve", False, f"{where}.resume_on_resolve"))


def _matcher(text: Any, where: str) -> Matcher:
    match = _MATCHER.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"{where}: {text!r} is not a matcher; write label=\"value\" (or !=, =~, !~)")
    label, operator, quoted, bare = match.groups()
    value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    if operator in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as error:
            raise ConfigError(f"{where}: {value!r} is not a regular expression: {error}") from None
    return Matcher(label, operator, value)


def _slurm(value: Any) -> SlurmSettings:
    section = _mapping(value, "slurm", {"scontrol", "sinfo", "command_timeout"})
    return SlurmSettings(scontrol=_text(section, "scontrol", "slurm.scontrol", "scontrol"),
                         sinfo=_text(section, "sinfo", "slurm.sinfo", "sinfo"),
                         command_timeout=_duration(section, "command_timeout", 15.0, "slurm.command_timeout"))


def _kubernetes(value: Any, base: Path) -> KubernetesSettings:
    section = _mapping(value, "kubernetes", {"kubeconfig", "context", "node_selector", "taint", "request_timeout"})
    taint_section = _mapping(section.get("taint", {}), "kubernetes.taint", {"key", "value", "effect"})
    taint = Taint(key=_text(taint_section, "key", "kubernetes.taint.key", Taint.key),
                  value=str(taint_section.get("value", Taint.value)),
                  effect=_text(taint_section, "effect", "kubernetes.taint.effect", Taint.effect))
    if not _LABEL_KEY.match(taint.key) or len(taint.key) > 316:
        raise ConfigError(f"kubernetes.taint.key: {taint.key!r} is not a Kubernetes label key (prefix/name)")
    if not _LABEL_VALUE.match(taint.value):
        raise ConfigError(f"kubernetes.taint.value: {taint.value!r} is not a Kubernetes label value (at most 63 "
                          "letters, digits, '-', '_' or '.')")
    if taint.effect not in TAINT_EFFECTS:
        raise ConfigError(f"kubernetes.taint.effect: {taint.effect!r} is not one of {', '.join(TAINT_EFFECTS)}")
    kubeconfig = section.get("kubeconfig")
    return KubernetesSettings(
        kubeconfig=None if kubeconfig is None else base / _text(section, "kubeconfig", "kubernetes.kubeconfig"),
        context=str(section.get("context", "")), node_selector=str(section.get("node_selector", "")), taint=taint,
        request_timeout=_duration(section, "request_timeout", 15.0, "kubernetes.request_timeout"))


def _limits(value: Any) -> Limits:
    section = _mapping(value, "limits", {"max_actions_per_hour", "max_drained_ratio", "max_body_bytes",
                                         "body_timeout"})
    ratio = section.get("max_drained_ratio", Limits.max_drained_ratio)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ConfigError(f"limits.max_drained_ratio: expected a share above 0 and at most 1 (0.1 is a tenth of a "
                          f"partition or cluster), got {ratio!r}")
    return Limits(
        max_actions_per_hour=_int(section, "max_actions_per_hour", Limits.max_actions_per_hour,
                                  "limits.max_actions_per_hour", 1, 1000),
        max_drained_ratio=float(ratio),
        max_body_bytes=_int(section, "max_body_bytes", Limits.max_body_bytes, "limits.max_body_bytes",
                            1024, 64 * 1024 * 1024),
        body_timeout=_duration(section, "body_timeout", Limits.body_timeout, "limits.body_timeout"))


def _tokens(value: Any, base: Path) -> frozenset[str]:
    section = _mapping(value, "auth", {"tokens", "tokens_file"})
    tokens = section.get("tokens") or []
    if not isinstance(tokens, list):
        raise ConfigError("auth.tokens: expected a list of bearer tokens")
    found = [str(token) for token in tokens]
    if section.get("tokens_file"):
        path = base / _text(section, "tokens_file", "auth.tokens_file")
        try:
            found += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as error:
            raise ConfigError(f"auth.tokens_file: cannot read {path}: {error.strerror}") from None
    for token in found:
        if len(token) < MIN_TOKEN_CHARACTERS or not (token.isascii() and token.isprintable()) or " " in token:
            raise ConfigError(f"auth.tokens: a token must be at least {MIN_TOKEN_CHARACTERS} printable ASCII "
                              "characters without spaces")
    return frozenset(found)
