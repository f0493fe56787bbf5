"""The paper's architectures (GPT-2-style, OPT, Phi-3), as tiny models built from their configs, each complete the
pipeline SFT → Oracle → precompute → DRDO step, and the DRDO student's parameters change."""
import json

import pytest
import torch

from drdo_lib.data.tokenize import tokenize_preference_dataset
from drdo_lib.models import CausalLMWithRewardHead
from drdo_lib import oracle as oracle_stage
from drdo_lib import policy as policy_stage
from drdo_lib import sft as sft_stage
from drdo_lib.oracle import OracleConfig
from drdo_lib.precompute import precompute_ref_logps, precompute_rewards
from drdo_lib.run import Run
from drdo_lib.sft import SFTConfig
from train_fixtures import corpus, preference_rows, sft_rows


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-opt", "tiny-phi3"])
def test_sft_oracle_precompute_drdo(name, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = Run.create({"profile": f"arch-{name}"}, seed=0, runs_dir=tmp_path)
    sft_cfg = SFTConfig(model_name_or_path=name, model_size="micro", max_prompt_length=40, max_length=48,
                        learning_rate=5e-3, warmup_steps=0, max_steps=8, per_device_train_batch_size=16,
                        gradient_accumulation_steps=1, logging_steps=4, eval_prompts=0)
    sft = sft_stage.run(run, sft_cfg, train_rows=sft_rows(64), corpus=corpus(), progress=False)
    lm = AutoModelForCausalLM.from_pretrained(sft)
    assert lm.config.model_type == {"tiny-gpt2": "gpt2", "tiny-opt": "opt", "tiny-phi3": "phi3"}[name]

    o_cfg = OracleConfig(max_prompt_length=40, max_length=48, learning_rate=5e-3, max_steps=8,
                         per_device_train_batch_size=16, gradient_accumulation_steps=1, logging_steps=4,
                         ensemble_size=0, ensemble_head_seeds=())
    oracle = oracle_stage.run(run, o_cfg, train_rows=preference_rows(128),
                              eval_rows=preference_rows(32, split="valid1"), progress=False)
    m = json.loads((oracle.parent / "metrics.json").read_text())
    assert m["steps"] == 8 and 0.0 <= m["heldout"]["accuracy"] <= 1.0
    assert m["provenance"]["device"]["torch_threads"] >= 1
    assert isinstance(CausalLMWithRewardHead.from_pretrained(oracle).lm, type(lm))

    tok = AutoTokenizer.from_pretrained(sft)
    ds, _ = tokenize_preference_dataset(preference_rows(16), tok, max_prompt_length=40, max_length=48)
    ds = precompute_ref_logps(sft, ds, cache_dir=tmp_path / "cache", batch_size=8)
    ds = precompute_rewards(oracle, ds, cache_dir=tmp_path / "cache", batch_size=8)
    assert all(x < 0 for x in ds["ref_chosen_logp"]) and len(set(ds["oracle_chosen_reward"])) > 1

    # ---- DRDO step (the policy stage) on the SFT model + precomputed oracle rewards -------------------------------
    from drdo_lib.policy import PolicyConfig

    p_cfg = PolicyConfig(methods=("drdo",), splits=("D_all",), max_prompt_length=40, max_length=48, max_steps=3,
                         per_device_train_batch_size=4, gradient_accumulation_steps=1, learning_rate=5e-3,
                         logging_steps=1, save_steps=100, optim="adamw_torch", warmup_steps=0)
    out = policy_stage.run(run, p_cfg, "drdo", "D_all", rows=preference_rows(32), progress=False)
    student = CausalLMWithRewardHead.from_pretrained(out / "final")
    before, after = lm.state_dict(), student.lm.state_dict()
    assert any(not torch.allclose(before[k], after[k]) for k in before if k in after)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
