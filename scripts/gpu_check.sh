#!/usr/bin/env bash
# GPU check: run the hf: backend on CUDA and, when vLLM is installed, the vllm: backend, each on
# 16 prompts, and print tokens/s. The model is a tiny random-weight Llama built on the spot
# (`charter models pull --tiny-random`), so the check needs no model hub and no upload.
# Usage: scripts/gpu_check.sh   (with charter installed: `pip install -e .`, torch with CUDA)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" -c "import charter" 2>/dev/null || "$PY" -m pip install --quiet --no-deps -e .
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible to torch"
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY
"$PY" -m charter models pull --tiny-random "$WORK/tiny"
"$PY" - "$WORK/prompts.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(16):
        f.write(json.dumps({"id": f"gpu-{i}", "prompt": f"Count to {i + 3} and explain why."}) + "\n")
PY

echo "== hf: backend on cuda (charter generate, 16 prompts, 64 new tokens)"
"$PY" -m charter generate --backend "hf:$WORK/tiny" --backend-opt device=cuda \
    --prompts "$WORK/prompts.jsonl" --out "$WORK/hf" --max-new-tokens 64 --batch-size 16 --no-progress
echo "== hf: backend on cuda (charter bench generate: charter vs raw vs naive)"
"$PY" -m charter bench generate --backend "hf:$WORK/tiny" --n 16 --batch-size 16 --max-new-tokens 64

if "$PY" -c "import vllm" 2>/dev/null; then
    echo "== vllm: backend (charter generate, 16 prompts, 64 new tokens)"
    "$PY" -m charter generate --backend "vllm:$WORK/tiny" --prompts "$WORK/prompts.jsonl" \
        --out "$WORK/vllm" --max-new-tokens 64 --batch-size 16 --no-progress
    "$PY" - "$WORK/tiny" <<'PY'
import math, sys
from charter.backends import load_backend
from charter.records import OptionQuery
b = load_backend(f"vllm:{sys.argv[1]}")
scores = b.option_logprobs([OptionQuery(prompt="Answer: ", options=["A", "B"])])[0]
assert all(math.isfinite(v) for v in scores.values()), scores
print("vllm option_logprobs:", scores)
PY
else
    echo "== vllm: not installed here; skipped"
fi
