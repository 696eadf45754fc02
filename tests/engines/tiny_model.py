"""Writes a tiny random Llama into a folder, with no hub: config.json, random safetensors weights and a
byte-level BPE tokenizer trained here. Run with the engine's own Python (it needs torch, safetensors
and tokenizers): `python tests/engines/tiny_model.py DIR`.

Two layers, hidden size 128, head size 64 (vLLM's CPU attention refuses 16), a 512-token vocabulary:
enough for an engine to load, schedule, stream and count it, small enough for two shared cores."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

VOCAB = 512
MAX_POSITIONS = 512
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32", "dtype": "float32",
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 2, "head_dim": 64, "vocab_size": VOCAB, "max_position_embeddings": MAX_POSITIONS,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "initializer_range": 0.02,
}
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
WORDS = ("gpu", "fleet", "token", "model", "serve", "batch", "queue", "cache", "latency", "request", "engine",
         "metric", "prometheus", "scrape", "rule", "alert", "node", "kernel", "memory", "tensor", "layer", "head",
         "prefill", "decode", "stream", "chunk", "stop", "length", "abort")


def tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = random.Random(7)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(2000)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIAL,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": MAX_POSITIONS,
        "add_bos_token": False, "clean_up_tokenization_spaces": False}, indent=1))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, indent=1))


def weights(folder: Path) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    h, i, v, n = CONFIG["hidden_size"], CONFIG["intermediate_size"], VOCAB, CONFIG["num_hidden_layers"]
    kv = CONFIG["num_key_value_heads"] * CONFIG["head_dim"]

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape) * 0.02

    tensors = {"model.embed_tokens.weight": w(v, h), "model.norm.weight": torch.ones(h), "lm_head.weight": w(v, h)}
    for layer in range(n):
        p = f"model.layers.{layer}."
        tensors.update({
            p + "self_attn.q_proj.weight": w(h, h), p + "self_attn.k_proj.weight": w(kv, h),
            p + "self_attn.v_proj.weight": w(kv, h), p + "self_attn.o_proj.weight": w(h, h),
            p + "mlp.gate_proj.weight": w(i, h), p + "mlp.up_proj.weight": w(i, h), p + "mlp.down_proj.weight": w(h, i),
            p + "input_layernorm.weight": torch.ones(h), p + "post_attention_layernorm.weight": torch.ones(h)})
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def make(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG, indent=1))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    tokenizer(folder)
    weights(folder)
    return folder


if __name__ == "__main__":
    print(make(Path(sys.argv[1])))
