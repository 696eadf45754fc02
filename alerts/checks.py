"""What the monitoring config (mixin/config.py) is checked against here, where the alerts' knowledge lives: the
engines that have mappings (engines.py) and the latencies the inference schema records (inference.py). The
generator checks the config with it before writing a rule."""

from __future__ import annotations

from fleetscope.alerts.engines import ENGINES
from fleetscope.alerts.inference import LATENCIES
from fleetscope.mixin.config import ConfigError, MonitoringConfig


def check(config: MonitoringConfig) -> None:
    """Raises ConfigError for settings naming an engine or a latency the rules do not know."""
    unknown = sorted(set(config.inference.normalization.engines) - {engine.name for engine in ENGINES})
    if unknown:
        raise ConfigError(f"inference.normalization.engines: {', '.join(unknown)} not known; known are "
                          f"{', '.join(engine.name for engine in ENGINES)}")
    recorded = dict(config.inference.normalization.slo_thresholds)
    for slo in config.inference.slos:
        if slo.latency not in LATENCIES:
            raise ConfigError(f"inference.slos: latency {slo.latency!r} is not one of {', '.join(LATENCIES)}")
        if slo.threshold not in recorded.get(slo.latency, ()):
            raise ConfigError(f"inference.slos: no SLO ratio is recorded for {slo.latency} at {slo.threshold:g} s; "
                              f"recorded thresholds are {list(recorded.get(slo.latency, ()))} "
                              "(add it to inference.normalization.slo_thresholds)")
