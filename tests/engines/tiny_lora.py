"""Writes tiny LoRA adapters for the tiny Llama (tests/engines/tiny_model.py), with no hub: per adapter a
folder holding a PEFT adapter_config.json and adapter_model.safetensors with small random weights on q_proj
and v_proj of every layer. Run with the engine's own Python (it needs torch and safetensors):
`python tests/engines/tiny_lora.py BASE_MODEL_DIR OUT_DIR NAME [NAME ...]`.

The shapes follow PEFT: lora_A is (rank, in_features), lora_B (out_features, rank), named
base_model.model.<module>.lora_A.weight, which vLLM 0.32 reads (vllm/lora/utils.py, parse_fine_tuned_lora_name)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RANK = 8
ALPHA = 16
TARGETS = ("q_proj", "v_proj")


def adapter(base: Path, folder: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    config = json.loads((base / "config.json").read_text())
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    out = {"q_proj": heads * head_dim, "v_proj": config["num_key_value_heads"] * head_dim}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for target in TARGETS:
            name = f"base_model.model.model.layers.{layer}.self_attn.{target}"
            tensors[f"{name}.lora_A.weight"] = torch.randn(RANK, hidden, generator=generator) * 0.01
            tensors[f"{name}.lora_B.weight"] = torch.randn(out[target], RANK, generator=generator) * 0.01
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(base), "r": RANK,
        "lora_alpha": ALPHA, "lora_dropout": 0.0, "target_modules": list(TARGETS), "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True}, indent=1))
    return folder


def make(base: Path, out: Path, names: list[str]) -> list[Path]:
    if not (base / "config.json").exists():
        raise FileNotFoundError(f"no base model at {base}: make it with tests/engines/tiny_model.py")
    return [adapter(base, out / name, seed) for seed, name in enumerate(names, start=1)]


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: tiny_lora.py BASE_MODEL_DIR OUT_DIR NAME [NAME ...]")
    for made in make(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]):
        print(made)
