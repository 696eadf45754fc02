"""Serving efficiency: the GPUs that serve each model, joined to the model's requests and tokens.

A model server is a `server`: its pod on Kubernetes (model-server targets carry `namespace` and
`pod`; the GPU exporter labels each GPU with the pod that holds it, from the kubelet's
pod-resources), else its scrape `instance`, whose GPUs the inference SDK declares
(fleetscope_inference_gpu_info{hostname, uuid}). An engine whose requests are counted away from its
GPUs names its server by the model instead: a Ray Serve application (`ray-serve/<application>`) is
served by the GPUs whose processes are its replicas (`ray_serve_application`, from the exporter's Ray
attribution), wherever its proxy runs. An engine that runs in Ray Serve replicas and labels its series with
the replica (vLLM under Ray Serve LLM: ReplicaId) is served by each replica (`ray-serve-replica/<id>`), whose
GPUs are those the exporter labels `ray_serve_replica` with its id: its GPUs count for it, not again for the
Serve application. A GPU such an engine names is attributed to it only; else a GPU whose series carry a pod is
attributed the Kubernetes way only. A GPU that k servers share counts 1/k
to each (evenly: the exporter does not serve per-process memory), and a server's GPUs are split
between its models by their output tokens, or evenly among them while the server produces none, so
no GPU counts twice.

Intermediate series, by the inference schema's labels plus `server`:
  fleetscope:inference_server_requests:rate5m, ..._server_output_tokens:rate5m
  fleetscope:inference_model_share                  a model's share of its server
  fleetscope:inference_gpu_assignment               1 by (cluster, namespace, server, hostname, uuid)
  fleetscope:inference_gpu_share                    1/k by the same labels
  fleetscope:gpu_energy_watts:rate5m                by (cluster, hostname, uuid): the energy counter's
                                                    rate where the GPU has one, else its power
  fleetscope:inference_server_gpus, ..._server_gpu_power_watts, ..._server_gpu_energy_watts:rate5m,
  ..._server_gpu_busy                               each server's share of its GPUs, their power, energy
                                                    and utilization added up by share
The schema, by (cluster, namespace, model, engine):
  fleetscope:inference_gpus:count                   GPUs serving the model, shares added up
  fleetscope:inference_gpu_power_watts              their power, by share
  fleetscope:inference_gpu_utilization_ratio        their utilization, share-weighted
  fleetscope:inference_energy_joules_per_output_token:rate5m
  fleetscope:inference_output_tokens_per_gpu_second:rate5m
  fleetscope:inference_gpu_seconds_per_request:rate5m
"""

from __future__ import annotations

from fleetscope.alerts.engines import Engine
from fleetscope.alerts.inference import PREFIX, SERIES, schema_labels, schema_rule, selected, summed
from fleetscope.exporters.catalog import gpu
from fleetscope.exporters.catalog import inference as sdk
from fleetscope.mixin.config import MonitoringConfig, NormalizationConfig

SERVER = "cluster, namespace, server"
GPU = "cluster, hostname, uuid"
HAS_POD = 'pod!=""'
# The server of a series an engine labels with its Ray Serve replica, and the GPU label naming that replica.
REPLICA_SERVER = "ray-serve-replica"
RAY_SERVE_REPLICA_LABEL = "ray_serve_replica"  # one of gpu.RAY_LABELS (exporters/attribution/ray.py)
ASSIGNMENT = f"{PREFIX}gpu_assignment"
MODEL_SHARE = f"{PREFIX}model_share"


def _per_server(engine: Engine, metrics: tuple[str, ...], window: str) -> str:
    """The metrics' rates by the schema's labels and `server`: the Ray Serve replica where the engine names one, else
    the pod where there is one, else the instance; `<engine>/<model>` for an engine whose GPU series name their
    model."""
    if engine.gpu_server_label:
        return f'label_replace({summed(engine, metrics, window)}, "server", "{engine.name}/$1", "model", "(.+)")'
    replica = (engine.replica_label,) if engine.replica_label else ()
    by_target = summed(engine, metrics, window, "pod", "instance", *replica)
    by_instance = f'label_replace({by_target}, "server", "$1", "instance", "(.*)")'
    named = f'label_replace({by_instance}, "server", "$1", "pod", "(.+)")'
    if engine.replica_label:
        named = f'label_replace({named}, "server", "{REPLICA_SERVER}/$1", "{engine.replica_label}", "(.+)")'
    return f"sum by ({schema_labels(engine, 'server')}) ({named})"


def server_rules(engine: Engine, config: NormalizationConfig) -> list[dict]:
    w = config.rate_window
    rules = []
    if engine.requests:
        rules.append(schema_rule(f"{PREFIX}server_requests:rate{w}", _per_server(engine, engine.requests, w), engine))
    if engine.output_tokens:
        rules.append(schema_rule(f"{PREFIX}server_output_tokens:rate{w}",
                           _per_server(engine, (engine.output_tokens,), w), engine))
    return rules


def attribution_rules(config: MonitoringConfig) -> list[dict]:
    """GPUs to servers, and each server's GPUs, power, energy and busy time (in dependency order)."""
    w = config.inference.normalization.rate_window
    e = config.selectors.exporter
    tokens, requests = f"{PREFIX}server_output_tokens:rate{w}", f"{PREFIX}server_requests:rate{w}"
    served = f"group by ({SERIES}, server) ({requests} or {tokens})"
    allocated = f"group by (cluster, namespace, pod, hostname, uuid) ({gpu.POWER.select(e, HAS_POD)})"
    on_kubernetes = (f'group by ({SERVER}, hostname, uuid) (label_replace({allocated}, "server", "$1", "pod", "(.*)")'
                     f"\nand on ({SERVER}) group by ({SERVER}) ({served}))")
    declared = (f'group by ({SERVER}, hostname, uuid) (label_replace({sdk.GPU_INFO.name}, "server", "$1", '
                f'"instance", "(.*)"))')
    producing = f"(sum by ({SERVER}) ({tokens}) > 0)"
    share, energy = f"{PREFIX}gpu_share", f"fleetscope:gpu_energy_watts:rate{w}"

    def per_server(per_gpu: str) -> str:
        return f"sum by ({SERVER}) (\n{share}\n* on ({GPU}) group_left\n{per_gpu}\n)"

    assigned = f"{on_kubernetes}\nor\n({declared}\nunless on ({GPU}) {allocated})"
    if named := _named_by_engines(config, served):
        assigned = f"{named}\nor\n(\n{assigned}\n)\nunless on ({GPU}) {named}"
    return [
        # A GPU an engine names is its only; else one whose series carry a pod is attributed the Kubernetes way
        # only: no declaration counts it again.
        {"record": ASSIGNMENT, "expr": assigned},
        {"record": share, "expr": f"{ASSIGNMENT}\n/ on ({GPU}) group_left\ncount by ({GPU}) ({ASSIGNMENT})"},
        {"record": MODEL_SHARE,
         "expr": (f"{tokens}\n/ on ({SERVER}) group_left()\n{producing}\nor\n"
                  f"({served}\n/ on ({SERVER}) group_left\ncount by ({SERVER}) ({served}))\n"
                  f"unless on ({SERVER}) {producing}")},
        {"record": energy,
         "expr": (f"max by ({GPU}) (rate({gpu.ENERGY.select(e)}[{w}]))\nor\n"
                  f"max by ({GPU}) ({gpu.POWER.select(e)})")},
        {"record": f"{PREFIX}server_gpus", "expr": f"sum by ({SERVER}) ({share})"},
        {"record": f"{PREFIX}server_gpu_power_watts", "expr": per_server(f"max by ({GPU}) ({gpu.POWER.select(e)})")},
        {"record": f"{PREFIX}server_gpu_energy_watts:rate{w}", "expr": per_server(energy)},
        {"record": f"{PREFIX}server_gpu_busy", "expr": per_server(f"max by ({GPU}) ({gpu.UTILIZATION.select(e)})")},
    ]


def _named_by_engines(config: MonitoringConfig, served: str) -> str | None:
    """GPUs to the servers their series name: a Ray Serve replica's, where an engine serves series by replica,
    before a Ray Serve application's (an engine whose GPU series name its model), so that a GPU counts once."""
    e = config.selectors.exporter
    engines = selected(config.inference.normalization)

    def named_by(label: str, server: str) -> str:
        return f'label_replace({gpu.POWER.select(e, label + "!=" + chr(34) * 2)}, "server", "{server}/$1", ' \
               f'"{label}", "(.+)")'

    def assigned(reads: list[str]) -> str:
        return (f"(group by ({SERVER}, hostname, uuid) ({' or '.join(reads)})\n"
                f"and on ({SERVER}) group by ({SERVER}) ({served}))")

    replicas_named = any(engine.replica_label for engine in engines)
    by_replica = [named_by(RAY_SERVE_REPLICA_LABEL, REPLICA_SERVER)] if replicas_named else []
    by_model = [named_by(label, engine.name) for engine in engines if (label := engine.gpu_server_label)]
    if by_replica and by_model:
        return f"({assigned(by_replica)}\nor\n({assigned(by_model)}\nunless on ({GPU}) {assigned(by_replica)}))"
    return assigned(by_replica or by_model) if by_replica or by_model else None


def schema_rules(config: MonitoringConfig) -> list[dict]:
    """The efficiency schema by (cluster, namespace, model, engine): each server's figures split by model share."""
    w = config.inference.normalization.rate_window

    def by_model(per_server: str) -> str:
        return f"sum by ({SERIES}) (\n{MODEL_SHARE}\n* on ({SERVER}) group_left\n{per_server}\n)"

    gpus = f"{PREFIX}gpus:count"
    return [
        {"record": gpus, "expr": by_model(f"{PREFIX}server_gpus")},
        {"record": f"{PREFIX}gpu_power_watts", "expr": by_model(f"{PREFIX}server_gpu_power_watts")},
        {"record": f"{PREFIX}gpu_utilization_ratio",
         "expr": f"{by_model(f'{PREFIX}server_gpu_busy')}\n/ on ({SERIES})\n({gpus} > 0)"},
        {"record": f"{PREFIX}energy_joules_per_output_token:rate{w}",
         "expr": (f"{by_model(f'{PREFIX}server_gpu_energy_watts:rate{w}')}\n/ on ({SERIES})\n"
                  f"({PREFIX}output_tokens:rate{w} > 0)")},
        {"record": f"{PREFIX}output_tokens_per_gpu_second:rate{w}",
         "expr": f"{PREFIX}output_tokens:rate{w}\n/ on ({SERIES})\n({gpus} > 0)"},
        {"record": f"{PREFIX}gpu_seconds_per_request:rate{w}",
         "expr": f"{gpus}\n/ on ({SERIES})\n({PREFIX}requests:rate{w} > 0)"},
    ]


def rule_groups(config: MonitoringConfig) -> list[dict]:
    normalization = config.inference.normalization
    groups = [{"name": f"fleetscope-inference-servers-{engine.name}", "rules": rules}
              for engine in selected(normalization) if (rules := server_rules(engine, normalization))]
    groups.append({"name": "fleetscope-inference-efficiency",
                   "rules": attribution_rules(config) + schema_rules(config)})
    return groups
