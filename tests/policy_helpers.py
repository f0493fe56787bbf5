"""Shared helpers of the policy-stage tests: a tiny profile whose SFT / oracle / ensemble directories are built
directly from configs (random weights; no training needed to exercise the preference trainer)."""
from __future__ import annotations

from pathlib import Path

import yaml

PROFILE = "ptest"


def write_profile(tmp_path: Path, *, n_train: int = 96, policy: dict | None = None, seed: int = 0) -> Path:
    """Write ``<tmp>/ptest.yaml`` (synthetic data, runs under ``<tmp>/runs``) and build its stage directories."""
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.run import Run
    from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer

    runs = tmp_path / "runs"
    data = {"source": "synthetic", "n_train": n_train, "n_valid": 8, "n_sft": 8, "n_sft_test": 4, "n_ood": 4}
    pol = {"methods": ["drdo", "dpo", "edpo"], "splits": ["D_all"], "max_steps": 4, "logging_steps": 1,
           "save_steps": 2, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
           "learning_rate": 1e-3, "warmup_steps": 0, "max_prompt_length": 96, "max_length": 128,
           "precompute_batch_size": 16, "optim": "adamw_torch"}
    pol.update(policy or {})
    prof = {"profile": PROFILE, "seed": seed, "runs_dir": str(runs), "data": data, "policy": pol}
    path = tmp_path / f"{PROFILE}.yaml"
    path.write_text(yaml.safe_dump(prof, sort_keys=False))
    rows = data_stage.run(Run.create(prof)).preferences
    corpus = list(rows["prompt"]) + list(rows["chosen"]) + list(rows["rejected"])
    tok = build_tokenizer("tiny-gpt2", corpus)
    size = {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 128}
    sft = runs / PROFILE / "sft" / "final"
    build_causal_lm("tiny-gpt2", tok, seed=1, size=size).save_pretrained(sft)
    tok.save_pretrained(sft)
    for k, d in enumerate([runs / PROFILE / "oracle" / "final"] +
                          [runs / PROFILE / "ensemble" / f"member_{i}" for i in range(3)]):
        CausalLMWithRewardHead.from_causal_lm(build_causal_lm("tiny-gpt2", tok, seed=10 + k, size=size),
                                              head_seed=k).save_pretrained(d)
        tok.save_pretrained(d)
    return path


#: Words of the hand-made preference rows of the trainer tests and the pinned trajectories.
WORDS = "alpha beta gamma delta river stone cloud light tree bird house road green blue small large".split()


def random_preference_rows(n: int, seed: int = 0) -> list[dict]:
    """``n`` seeded random preference rows with every precomputed column (reference log-probs, oracle and 3-member
    ensemble rewards): the pinned trajectories (scripts/record_trajectories.py) and tests/test_trainer.py use them."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({
            "id": str(i), "prompt": "POST: " + " ".join(rng.choices(WORDS, k=rng.randint(3, 9))) + " TL;DR:",
            "chosen": " " + " ".join(rng.choices(WORDS, k=rng.randint(1, 5))),
            "rejected": " " + " ".join(rng.choices(WORDS, k=rng.randint(1, 6))),
            "ref_chosen_logp": -rng.uniform(5, 15), "ref_rejected_logp": -rng.uniform(5, 15),
            "oracle_chosen_reward": rng.gauss(0, 1), "oracle_rejected_reward": rng.gauss(0, 1),
            "ensemble_chosen_rewards": [rng.gauss(0, 1) for _ in range(3)],
            "ensemble_rejected_rewards": [rng.gauss(0, 1) for _ in range(3)],
        })
    return rows


def assert_same_training(got_metrics: list[dict], want_metrics: list[dict], out: Path, want_weights: dict) -> None:
    """A resumed run equals the uninterrupted one: every logged training metric per step (rel 1e-5) and the final
    weights in ``out/final`` (rtol 1e-5)."""
    import pytest
    import torch
    from safetensors.torch import load_file

    for a, b in zip(got_metrics, want_metrics):
        for key in ("loss", "grad_norm", "logps_chosen", "logps_rejected", "bt_accuracy", "learning_rate"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
    got_weights = load_file(str(out / "final" / "model.safetensors"))
    assert got_weights.keys() == want_weights.keys()
    for k in want_weights:
        torch.testing.assert_close(got_weights[k], want_weights[k], rtol=1e-5, atol=1e-6)
