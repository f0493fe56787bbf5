#!/usr/bin/env python
"""Record the pinned short training trajectories of tests/test_trajectories.py (tests/fixtures/trajectories.json).

    python scripts/record_trajectories.py            # rewrite the fixture
    python scripts/record_trajectories.py --check    # compare only (what the test does), exit 1 on a mismatch

Each method trains a micro GPT-2 (1 layer, 32 dims, seeded) for a few steps on hand-made, seeded preference pairs
with fixed precomputed columns, in one thread; the per-step loss, gradient norm and chosen/rejected log-probs are
pinned. A change of the losses, the trainer, the tokenizer or the model factory moves them. Re-recording is a
deliberate act: commit the new fixture on its own, saying what changed and why the new numbers are right.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "trajectories.json"
#: method label -> (method, PolicyConfig overrides)
RUNS = {
    "drdo": ("drdo", {"student_reward": "head"}),
    "drdo_logprob_mean": ("drdo", {"student_reward": "logprob", "logp_reduction": "mean"}),
    "dpo": ("dpo", {}),
    "ipo": ("ipo", {}),
    "edpo": ("edpo", {}),  # the default reduction: Fisch et al.'s pessimistic objective
    "edpo_min": ("edpo", {"edpo_reduction": "min"}),  # the pre-issue-11 default, kept as a labelled alternative
}
KEYS = ("loss", "grad_norm", "logps_chosen", "logps_rejected")
STEPS = 5
RTOL = 1e-4


def _helpers():
    """tests/policy_helpers.py: the seeded hand-made pairs and their words, shared with tests/test_trainer.py."""
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))
    import policy_helpers

    return policy_helpers


def compute_trajectories() -> dict:
    """``{label: [{step, loss, grad_norm, logps_chosen, logps_rejected}, ...]}`` for every run in :data:`RUNS`."""
    import datasets
    import torch

    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer
    from drdo_lib.hf import read_metrics
    from drdo_lib.policy import PolicyConfig, training_args
    from drdo_lib.trainer import PreferenceTrainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        helpers = _helpers()
        tok = build_tokenizer("tiny-gpt2", vocab_words=helpers.WORDS + ["POST:", "TL;DR:"])
        rows = datasets.Dataset.from_list(helpers.random_preference_rows(24))
        ds, _ = tokenize_preference_dataset(rows, tok, max_prompt_length=32, max_length=48)
        out = {}
        for label, (method, kw) in RUNS.items():
            cfg = PolicyConfig(max_steps=STEPS, logging_steps=1, save_steps=1000, per_device_train_batch_size=4,
                               learning_rate=1e-2, warmup_steps=0, optim="adamw_torch", **kw)
            lm = build_causal_lm("tiny-gpt2", tok, seed=1, size="micro")
            model = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=3) if kw.get("student_reward") == "head" else lm
            with tempfile.TemporaryDirectory() as tmp:
                args = training_args(cfg, tmp, seed=0, disable_tqdm=True)
                PreferenceTrainer(model, cfg, method, args=args, train_dataset=ds,
                                  pad_token_id=tok.pad_token_id).train()
                out[label] = [{"step": r["step"], **{k: r[k] for k in KEYS}} for r in read_metrics(tmp)]
        return out
    finally:
        torch.set_num_threads(threads)


def compare(got: dict, want: dict, rtol: float = RTOL) -> list[str]:
    """Differences between two trajectory dicts beyond ``rtol`` (empty when they match)."""
    problems = []
    if set(got) != set(want):
        problems.append(f"runs differ: {sorted(got)} vs {sorted(want)}")
    for label in sorted(set(got) & set(want)):
        if [r["step"] for r in got[label]] != [r["step"] for r in want[label]]:
            problems.append(f"{label}: steps {[r['step'] for r in got[label]]} vs {[r['step'] for r in want[label]]}")
            continue
        for a, b in zip(got[label], want[label]):
            for k in KEYS:
                if not math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=1e-6):
                    problems.append(f"{label} step {a['step']} {k}: {a[k]!r} != pinned {b[k]!r}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the fixture instead of rewriting it")
    a = p.parse_args()
    got = compute_trajectories()
    if a.check:
        problems = compare(got, json.loads(FIXTURE.read_text())["runs"])
        print("\n".join(problems) or "trajectories match the fixture")
        return 1 if problems else 0
    import torch
    import transformers

    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    meta = {"steps": STEPS, "rtol": RTOL, "torch": torch.__version__, "transformers": transformers.__version__,
            "recorded_by": "scripts/record_trajectories.py"}
    FIXTURE.write_text(json.dumps({"meta": meta, "runs": got}, indent=1) + "\n")
    print(f"wrote {FIXTURE.relative_to(REPO)}: " + ", ".join(f"{k} {v[-1]['loss']:.4f}" for k, v in got.items()))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
