#!/usr/bin/env bash
# Short CUDA check of the training stages (< 4 min on one GPU): the `mini` SFT, Oracle, a 1-member ensemble and the
# DRDO / DPO / e-DPO policy steps on CUDA with bf16, then the same policy steps on this machine's CPU for comparison.
# Prints one table of seconds per optimizer step. Self-contained: no hub access, everything under a temp folder.
#   scripts/gpu_check.sh                 # uses `python` (or $PYTHON); installs this package with pip -e if needed
# Run from anywhere; the lead runs it on a lent GPU machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python}"
if [ -x "$root/.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then PY="$root/.venv/bin/python"; fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
if ! "$PY" -c "import drdo_lib.trainer, trl, datasets, rapidfuzz" 2>/dev/null; then
  echo "[gpu_check] installing drdo_lib into $("$PY" -c 'import sys; print(sys.prefix)') (pip install -e .)"
  "$PY" -m pip install -q -e . || "$PY" -m pip install -q --no-deps -e .
fi
# GPU_CHECK_ALLOW_CPU=1 runs the same script without a GPU, GPU_CHECK_QUICK=1 with a tenth of the steps (both only
# for testing the script itself).
"$PY" -c "import os, torch; ok = torch.cuda.is_available(); assert ok or os.environ.get('GPU_CHECK_ALLOW_CPU'), 'no CUDA device visible'; print('[gpu_check]', torch.cuda.get_device_name(0) if ok else 'CPU dry run', 'torch', torch.__version__)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GPU_CHECK_DIR="$work"

"$PY" - <<'PYEOF'
import json, logging, os
from pathlib import Path
import yaml
from drdo_lib import oracle, policy, sft
from drdo_lib.config import load_profile
from drdo_lib.run import Run

logging.basicConfig(level=logging.WARNING)
work = Path(os.environ["GPU_CHECK_DIR"])
prof = load_profile("mini")
prof.update(profile="gpucheck", runs_dir=str(work / "runs"))
prof["data"].update(n_train=2000, n_valid=200, n_sft=2000, n_sft_test=50, n_ood=20)
q = 10 if os.environ.get("GPU_CHECK_QUICK") else 1  # GPU_CHECK_QUICK=1: a few steps only (testing the script)
prof["sft"].update(max_steps=150 // q, bf16="auto", eval_prompts=0)
prof["oracle"].update(max_steps=60 // q, ensemble_size=1, ensemble_head_seeds=[1], bf16="auto", max_eval_rows=200)
prof["policy"].update(max_steps=40 // q, bf16="auto", splits=["D_all"])
(work / "gpucheck.yaml").write_text(yaml.safe_dump(prof))  # a record of the settings; the stages take the mapping
run, rows = Run.create(prof).validate(), []
d = sft.run(run, progress=False)
m = json.loads((d.parent / "metrics.json").read_text())
rows.append(("sft", m.get("device", "?"), m["seconds_per_step"], m["steps"], m.get("bf16")))
d = oracle.run(run, progress=False)
m = json.loads((d.parent / "metrics.json").read_text())
rows.append(("oracle", m.get("device", "?"), m["seconds_per_step"], m["steps"], m.get("bf16")))
oracle.run_ensemble(run, progress=False)
for method in run.section("policy")["methods"]:
    s = json.loads((policy.run(run, method=method, split="D_all", progress=False) / "summary.json").read_text())
    rows.append((f"policy {method}", s["device"], s["seconds_per_step"], s["steps"], s["bf16"]))
(work / "cuda_rows.json").write_text(json.dumps(rows))
PYEOF

# The same policy steps on the CPU of this machine (2 threads, float32), reading the models trained above.
CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=2 "$PY" - <<'PYEOF'
import json, os
from pathlib import Path
import torch
torch.set_num_threads(2)
from drdo_lib import policy
from drdo_lib.run import Run
work = Path(os.environ["GPU_CHECK_DIR"])
run = Run.create(work / "gpucheck.yaml")
pc = run.config(policy.PolicyConfig, "policy", max_steps=3 if os.environ.get("GPU_CHECK_QUICK") else 15, bf16=False)
rows = json.loads((work / "cuda_rows.json").read_text())
for method in pc.methods:
    s = json.loads((policy.run(run, pc, method, "D_all", progress=False) / "summary.json").read_text())
    rows.append((f"policy {method}", s["device"] + " (2 threads)", s["seconds_per_step"], s["steps"], s["bf16"]))
print()
print(f"{'stage':14s} {'device':18s} {'s/step':>8s} {'steps':>6s}  bf16")
for name, dev, sps, steps, bf16 in rows:
    print(f"{name:14s} {dev:18s} {sps:8.4f} {steps:6d}  {bf16}")
PYEOF
