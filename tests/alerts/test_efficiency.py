"""The serving-efficiency rules under promtool: a vLLM pod on Kubernetes holding two GPUs, and two
SDK processes off Kubernetes sharing a GPU, every expected value worked out by hand."""

from __future__ import annotations

import dataclasses
import subprocess

import yaml

from fleetscope.alerts import efficiency, inference
from fleetscope.alerts.config import AlertsConfig
from fleetscope.alerts.inference import NormalizationConfig

EXPORTER = 'job="fleetscope-exporter", cluster="c1"'
VLLM_POD = 'cluster="c1", namespace="serving", pod="vllm-0", instance="10.0.0.5:8000", job="vllm"'


def _rules(tmp_path) -> str:
    normalization = NormalizationConfig(engines=("fleetscope", "vllm"))
    groups = [group for group in inference.rule_groups(normalization)["groups"]
              if "-slo-" not in group["name"]]
    config = AlertsConfig()
    config = dataclasses.replace(config, inference=dataclasses.replace(config.inference, normalization=normalization))
    groups += efficiency.rule_groups(config)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return str(path)


def _gpu(hostname: str, uuid: str, power: float, utilization: float, pod: str = "", energy: bool = False) -> list:
    held = f', namespace="serving", pod="{pod}", container="vllm"' if pod else ""
    labels = f'{EXPORTER}, hostname="{hostname}", gpu="0", uuid="{uuid}"{held}'
    series = [{"series": f"fleetscope_gpu_power_watts{{{labels}}}", "values": f"{power}x20"},
              {"series": f"fleetscope_gpu_utilization_ratio{{{labels}}}", "values": f"{utilization}x20"}]
    if energy:  # joules: the power times 60 s a minute
        series.append({"series": f"fleetscope_gpu_energy_joules_total{{{labels}}}", "values": f"0+{power * 60}x20"})
    return series


def _sdk(instance: str, model: str, requests_per_minute: int, tokens_per_minute: int) -> list:
    labels = f'job="models", cluster="c1", instance="{instance}", model="{model}", operation="chat", engine="python"'
    return [
        {"series": f'fleetscope_inference_requests_total{{{labels}, outcome="success", error_type=""}}',
         "values": f"0+{requests_per_minute}x20"},
        {"series": f'fleetscope_inference_request_tokens_sum{{{labels}, token_type="output"}}',
         "values": f"0+{tokens_per_minute}x20"},
        {"series": f'fleetscope_inference_request_tokens_sum{{{labels}, token_type="input"}}', "values": "0x20"},
    ]


def _info(instance: str, uuid: str) -> dict:
    return {"series": f'fleetscope_inference_gpu_info{{job="models", cluster="c1", instance="{instance}", '
                      f'engine="python", hostname="n2", uuid="{uuid}"}}', "values": "1x20"}


def test_the_efficiency_schema_on_and_off_kubernetes(tmp_path):
    series = (
        # vLLM pod: 1 request and 10 output tokens a second on GPU-a (300 W, with an energy counter) and
        # GPU-b (500 W, power only).
        [{"series": f'vllm:request_success_total{{{VLLM_POD}, model_name="llama", finished_reason="stop"}}',
          "values": "0+60x20"},
         {"series": f'vllm:generation_tokens_total{{{VLLM_POD}, model_name="llama"}}', "values": "0+600x20"}]
        + _gpu("n1", "GPU-a", 300, 0.5, pod="vllm-0", energy=True) + _gpu("n1", "GPU-b", 500, 0.7, pod="vllm-0")
        # A GPU held by another pod serves nothing here.
        + _gpu("n1", "GPU-x", 400, 0.9, pod="trainer-0")
        # Off Kubernetes: iris (2 requests/s, no tokens) on n2:9400 with GPU-c; bert (1 request/s, 50
        # tokens/s) on n2:9401 with GPU-c and GPU-d. GPU-c is shared: half to each.
        + _sdk("n2:9400", "iris", 120, 0) + _sdk("n2:9401", "bert", 60, 3000)
        + [_info("n2:9400", "GPU-c"), _info("n2:9401", "GPU-c"), _info("n2:9401", "GPU-d")]
        + _gpu("n2", "GPU-c", 200, 0.4) + _gpu("n2", "GPU-d", 100, 0.8)
    )
    llama = {"cluster": "c1", "namespace": "serving", "model": "llama", "engine": "vllm"}
    iris = {"cluster": "c1", "model": "iris", "engine": "python"}
    bert = {"cluster": "c1", "model": "bert", "engine": "python"}
    expected = {
        "fleetscope:inference_gpus:count": [(llama, 2), (iris, 0.5), (bert, 1.5)],
        "fleetscope:inference_gpu_power_watts": [(llama, 800), (iris, 100), (bert, 200)],
        # share-weighted: (0.5 + 0.7) / 2; 0.4; (0.5 x 0.4 + 0.8) / 1.5
        "fleetscope:inference_gpu_utilization_ratio": [(llama, 0.6), (iris, 0.4), (bert, 1.0 / 1.5)],
        # (300 J/s from the counter + 500 W) / 10 tokens/s; (100 + 100) / 50; iris makes no tokens
        "fleetscope:inference_energy_joules_per_output_token:rate5m": [(llama, 80), (bert, 4)],
        "fleetscope:inference_output_tokens_per_gpu_second:rate5m": [(llama, 5), (iris, 0), (bert, 50 / 1.5)],
        "fleetscope:inference_gpu_seconds_per_request:rate5m": [(llama, 2), (iris, 0.25), (bert, 1.5)],
    }
    tests = {"rule_files": [_rules(tmp_path)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [
            {"expr": f"round({record}, 0.0001)", "eval_time": "10m",
             "exp_samples": [{"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}",
                              "value": round(value, 4)} for labels, value in rows]}
            for record, rows in expected.items()],
    }]}
    path = tmp_path / "efficiency.test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
