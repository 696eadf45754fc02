"""Alerts on the node exporter itself, GPU health and GPUs held by pods but left idle.

Every GPU alert keeps the series' own labels (instance, hostname, gpu, uuid, ...) so that
Alertmanager can silence a node's GPU alerts while its exporter is down.
"""

from __future__ import annotations

from fleetscope.alerts.routing import WATCHDOG_ALERT
from fleetscope.alerts.rule import Alert, group, regex
from fleetscope.exporters.catalog import exporter, gpu
from fleetscope.mixin.config import WATCHDOG, MonitoringConfig

GPU_COUNT = "fleetscope:node_gpus:count"
# The most GPUs a node has reported, remembered while its exporter has been scraped within the baseline
# window: a rule that reads its own last value, so a missing GPU stays missing until it is back.
EXPECTED_GPUS = "fleetscope:node_gpus:expected"
_GPU = "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.hostname }}"


def exporter_alerts(config: MonitoringConfig) -> list[Alert]:
    e, c = config.selectors.exporter, config.exporter
    return [
        Alert(WATCHDOG_ALERT, "vector(1)", WATCHDOG,
              summary="The alerting pipeline works",
              description="Always firing, on purpose: it reaches the dead man's switch every "
                          f"{config.routing.watchdog_repeat_interval} while Prometheus evaluates rules and "
                          "Alertmanager sends. When it stops arriving, the switch raises the alarm that no "
                          "other alert could."),
        Alert("FleetscopeExporterDown", f"up{{{e}}} == 0", "ticket", for_=c.down_for,
              summary="The fleetscope exporter on {{ $labels.instance }} cannot be scraped",
              description="Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for "
                          f"{c.down_for}: that node's GPUs, fabric and collectives are unobserved, and its other "
                          "alerts are silenced while this fires."),
        Alert("FleetscopeExporterCollectorFailing",
              exporter.COLLECTOR_SUCCESS.select(e, 'collector!="gpu"') + " == 0", "ticket",
              for_=c.collector_failing_for,
              summary="The {{ $labels.collector }} collector fails on {{ $labels.instance }}",
              description="The {{ $labels.collector }} collector of the exporter on {{ $labels.instance }} has "
                          f"failed every collection for {c.collector_failing_for}; its series are missing or stale. "
                          "The exporter's log says why."),
    ]


def _xid(codes: str, config: MonitoringConfig, severity: str) -> Alert:
    e, window = config.selectors.exporter, config.gpu.xid_window
    by_code = gpu.XID_ERRORS.select(e, codes)
    # A code's series appears at 1 with its first XID, and increase() needs two samples, so a
    # series that is new within the window counts too; the all-codes counter, present from
    # start-up at 0, confirms that something happened in the window (and not that Prometheus
    # has just started).
    expr = (f"(\n  increase({by_code}[{window}]) > 0\n  or\n"
            f"  ({by_code} unless {gpu.XID_ERRORS.select(e)} offset {window})\n)\n"
            f"and on (instance, uuid)\nincrease({gpu.XID_EVENTS.select(e)}[{window}]) > 0")
    return Alert("FleetscopeGPUXidError", expr, severity,
                 summary="XID {{ $labels.xid }} on GPU {{ $labels.gpu }} of {{ $labels.hostname }}",
                 description=f"{_GPU} reported XID {{{{ $labels.xid }}}} "
                             f"{{{{ $value | printf \"%.0f\" }}}} time(s) in the last {window}. "
                             "The runbook lists what each code needs.")


def _throttling(kind: str, adverb: str, reasons: tuple[str, ...], config: MonitoringConfig, advice: str) -> Alert:
    g = config.gpu
    active = gpu.CLOCK_EVENT_ACTIVE.select(config.selectors.exporter, f'reason=~"{regex(reasons)}"')
    return Alert(f"FleetscopeGPU{kind}Throttling",
                 f"avg_over_time({active}[{g.throttle_window}]) >= {g.throttle_fraction:g}", "ticket",
                 for_=g.throttle_for,
                 summary=f"GPU {{{{ $labels.gpu }}}} of {{{{ $labels.hostname }}}} is {adverb} throttled",
                 description=f"{_GPU} has had its clocks cut by {{{{ $labels.reason }}}} "
                             f"{{{{ $value | humanizePercentage }}}} of the last {g.throttle_window}. {advice}")


def gpu_alerts(config: MonitoringConfig) -> list[Alert]:
    e, g = config.selectors.exporter, config.gpu
    page, ticket = regex(g.xid_page), regex(g.xid_ticket)
    double_bit = gpu.ECC_ERRORS.select(e, 'type="double_bit"')
    return [
        _xid(f'xid=~"{page}"', config, "page"),
        _xid(f'xid=~"{ticket}"', config, "ticket"),
        _xid(f'xid!~"{page}|{ticket}"', config, "info"),
        Alert("FleetscopeGPUDoubleBitEccErrors",
              f"increase({double_bit}[{g.xid_window}]) > 0", "page",
              summary="Uncorrectable ECC errors on GPU {{ $labels.gpu }} of {{ $labels.hostname }}",
              description=f"{_GPU} counted {{{{ $value | printf \"%.0f\" }}}} double-bit (uncorrectable) ECC "
                          f"error(s) in the last {g.xid_window}. The process that held the memory was killed; "
                          "the GPU needs a reset to remap the row."),
        Alert("FleetscopeGPURowRemapFailed", f"{gpu.ROW_REMAP_FAILED.select(e)} == 1", "page",
              summary="Row remapping failed on GPU {{ $labels.gpu }} of {{ $labels.hostname }}",
              description=f"{_GPU} could not remap a failing memory row: it has no spare rows left in that bank. "
                          "Drain the node; the GPU needs field diagnostics and likely replacement."),
        Alert("FleetscopeGPURowRemapPending", f"{gpu.ROW_REMAP_PENDING.select(e)} == 1", "ticket",
              for_=g.row_remap_pending_for,
              summary="GPU {{ $labels.gpu }} of {{ $labels.hostname }} needs a reset to remap a row",
              description=f"{_GPU} has had a row remapping pending for {g.row_remap_pending_for}; it takes effect "
                          "only at the next GPU reset. Reset the GPU when its job ends."),
        Alert("FleetscopeGPURecoveryActionRequired", gpu.RECOVERY_ACTION.select(e, 'action!="none"') + " == 1",
              "page",
              summary="GPU {{ $labels.gpu }} of {{ $labels.hostname }} needs {{ $labels.action }}",
              description=f"The NVIDIA driver asks for {{{{ $labels.action }}}} of {_GPU} (XID 154 announced it): "
                          "the GPU cannot be trusted with work until it is done. The alert lasts until the driver "
                          "clears it; the runbook says what each action takes."),
        Alert("FleetscopeGPUDown", f"{gpu.UP.select(e)} == 0", "page", for_=g.gpu_down_for,
              summary="GPU {{ $labels.gpu }} of {{ $labels.hostname }} stopped answering NVML",
              description=f"{_GPU} has not answered NVML for {g.gpu_down_for}: fallen off the bus (XID 79), "
                          "lost or in error. Its jobs are failing."),
        Alert("FleetscopeGPUMissing",
              # A node reporting no GPU at all has no count: it is missing all it had, if its exporter is
              # scraped and NVML answers (those have alerts of their own).
              f"({EXPECTED_GPUS} - ({GPU_COUNT} or {EXPECTED_GPUS} * 0) > 0)\nand on (job, instance)\n"
              + exporter.COLLECTOR_SUCCESS.select(e, 'collector="gpu"') + " == 1", "page",
              summary="{{ $labels.hostname }} has fewer GPUs than it had",
              description="{{ $labels.hostname }} ({{ $labels.instance }}) reports {{ $value }} GPU(s) fewer than "
                          "it has had: a GPU is no longer enumerated by the driver, usually after falling off the "
                          "bus and a restart. The alert lasts until the GPU is back."),
        Alert("FleetscopeNVMLUnreachable", exporter.COLLECTOR_SUCCESS.select(e, 'collector="gpu"') + " == 0",
              "page", for_=g.nvml_unreachable_for,
              summary="NVML is unreachable on {{ $labels.instance }}",
              description="The GPU collector on {{ $labels.instance }} has failed for "
                          f"{g.nvml_unreachable_for}: NVML cannot be initialized or every GPU call fails, so no GPU "
                          "of that node is observed. The driver may be unloaded, mismatched or hung."),
        _throttling("Thermal", "thermally", g.thermal_reasons, config,
                    "Check its cooling: fans, airflow, inlet temperature."),
        _throttling("Power", "power", g.power_reasons, config,
                    "A power brake is asserted by the system, usually for a power supply or facility problem."),
        Alert("FleetscopeGPUTemperatureNearSlowdown",
              f"{gpu.SLOWDOWN_TEMPERATURE.select(e)} - {gpu.TEMPERATURE.select(e)} < {g.slowdown_margin_celsius:g}",
              "ticket", for_=g.slowdown_margin_for,
              summary="GPU {{ $labels.gpu }} of {{ $labels.hostname }} is near its slowdown temperature",
              description=f"{_GPU} has been within {{{{ $value }}}} °C of the temperature at which the hardware "
                          f"slows it down, for {g.slowdown_margin_for}."),
    ]


def waste_alerts(config: MonitoringConfig) -> list[Alert]:
    e, w = config.selectors.exporter, config.waste
    held = gpu.UTILIZATION.select(e, 'pod!=""')
    # NVML has no utilization per MIG instance; GPM's graphics-engine activity per GPU instance stands for it.
    held_instance = gpu.GRAPHICS_ENGINE_ACTIVE.select(e, 'pod!=""', 'gpu_instance_id!=""')
    instance = ("{{ if $labels.gpu_instance_id }}MIG instance {{ $labels.gpu_instance_id }} "
                "({{ $labels.mig_profile }}) of {{ end }}")
    return [
        Alert("FleetscopeGPUAllocatedIdle",
              f"avg_over_time({held}[{w.idle_window}]) < {w.idle_utilization:g}\n"
              f"or\navg_over_time({held_instance}[{w.idle_window}]) < {w.idle_utilization:g}",
              "ticket", for_=w.idle_for,
              summary="{{ $labels.namespace }}/{{ $labels.pod }} holds an idle GPU",
              description="Pod {{ $labels.namespace }}/{{ $labels.pod }} (container {{ $labels.container }}) has "
                          f"held {instance}{_GPU} for {w.idle_for} with utilization averaging "
                          "{{ $value | humanizePercentage }}. Another job could use it."),
    ]


def rule_groups(config: MonitoringConfig) -> dict:
    e = config.selectors.exporter
    count = {"record": GPU_COUNT,
             "expr": f"count by (cluster, job, instance, hostname) ({gpu.UP.select(e)})"}
    expected = {"record": EXPECTED_GPUS,
                "expr": "max by (cluster, job, instance, hostname) (\n"
                        f'  label_replace({GPU_COUNT}, "seen", "now", "", "")\n  or\n'
                        f'  label_replace({EXPECTED_GPUS}, "seen", "before", "", "")\n)\n'
                        "and on (job, instance)\n"
                        f"(max_over_time(up{{{e}}}[{config.gpu.count_baseline_window}]) == 1)"}
    return {"groups": [
        {"name": "fleetscope-gpu-recording", "rules": [count, expected]},
        group("fleetscope-exporter", config.team("exporter"), config, exporter_alerts(config), "gpu"),
        group("fleetscope-gpu", config.team("gpu"), config, gpu_alerts(config), "gpu"),
        group("fleetscope-gpu-waste", config.team("waste"), config, waste_alerts(config), "gpu"),
    ]}
