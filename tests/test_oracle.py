"""Tests for drdo_lib.oracle: the Eq. 5 loss on a batch, held-out accuracy, ensemble members and their outputs."""
import json

import pytest
import torch

from drdo_lib.data.tokenize import collate_preference, tokenize_preference_dataset
from drdo_lib.losses import oracle_loss
from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer, save_model
from drdo_lib.oracle import OracleConfig, RewardModelTrainer, pairwise_accuracy, run, run_ensemble
from drdo_lib.run import Run
from train_fixtures import corpus, preference_rows

FAST = dict(max_prompt_length=40, max_length=48, learning_rate=5e-3, per_device_train_batch_size=16,
            gradient_accumulation_steps=1, logging_steps=5, per_device_eval_batch_size=64)


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("init") / "sft"
    tok = build_tokenizer("tiny-gpt2", corpus())
    save_model(build_causal_lm("tiny-gpt2", tok, seed=0, size="micro"), tok, d)
    return d


def test_config_validation():
    with pytest.raises(ValueError, match="one seed per member"):
        OracleConfig(ensemble_size=3, ensemble_head_seeds=(1, 2))
    with pytest.raises(ValueError, match="must differ"):
        OracleConfig(ensemble_size=2, ensemble_head_seeds=(1, 1))
    with pytest.raises(ValueError, match="alpha"):
        OracleConfig(alpha=1.5)
    assert OracleConfig(ensemble_size=2, ensemble_head_seeds=[4, 5]).ensemble_head_seeds == (4, 5)


@pytest.mark.parametrize("alpha", [0.0, 0.01, 0.5])
def test_trainer_loss_equals_eq5_on_a_batch(init_dir, alpha, tmp_path):
    from transformers import AutoTokenizer, TrainingArguments

    tok = AutoTokenizer.from_pretrained(init_dir)
    ds, _ = tokenize_preference_dataset(preference_rows(6), tok, max_prompt_length=40, max_length=48)
    model = CausalLMWithRewardHead.from_causal_lm(build_causal_lm(str(init_dir), tok), head_seed=3).eval()
    trainer = RewardModelTrainer(model=model, args=TrainingArguments(str(tmp_path), report_to="none",
                                 remove_unused_columns=False), train_dataset=ds, alpha=alpha)
    batch = collate_preference([ds[i] for i in range(6)], tok.pad_token_id)
    with torch.no_grad():
        got = trainer.compute_loss(model, batch)
        # independent: score chosen and rejected separately, NLL = mean token NLL of y_w from the full logits
        oc = model(batch["chosen_input_ids"], batch["chosen_attention_mask"])
        orj = model(batch["rejected_input_ids"], batch["rejected_attention_mask"])
        lp = torch.log_softmax(oc["logits"][:, :-1], -1).gather(2, batch["chosen_input_ids"][:, 1:, None])[..., 0]
        m = batch["chosen_response_mask"][:, 1:].float()
        nll = -(lp * m).sum(1) / m.sum(1)
        want = (1 - alpha) * torch.nn.functional.softplus(-(oc["rewards"] - orj["rewards"])) + alpha * nll
    assert torch.allclose(got, want.mean(), atol=1e-5)
    assert torch.allclose(got, oracle_loss(oc["rewards"], orj["rewards"], nll, alpha).loss, atol=1e-5)


def test_run_oracle_learns_heldout_pairs(init_dir, tmp_path, capsys):
    cfg = OracleConfig(**FAST, init_model=str(init_dir), max_steps=30, ensemble_size=0, ensemble_head_seeds=())
    final = run(Run.create({"profile": "unit"}, runs_dir=tmp_path), cfg, train_rows=preference_rows(480),
                eval_rows=preference_rows(128, split="valid1"), progress=False)
    printed = capsys.readouterr().out
    assert "{'loss'" not in printed and "'train_runtime'" not in printed  # the logs are in metrics.jsonl only
    assert final == tmp_path / "unit" / "oracle" / "final"
    m = json.loads((tmp_path / "unit" / "oracle" / "metrics.json").read_text())
    assert m["alpha"] == 0.01 and m["steps"] == 30 and m["heldout"]["pairs"] == 128
    assert m["heldout"]["accuracy"] > 0.9 and m["heldout_before"]["accuracy"] < 0.8
    lines = [json.loads(x) for x in (tmp_path / "unit" / "oracle" / "metrics.jsonl").read_text().splitlines()]
    assert {"bt_loss", "nll", "accuracy", "margin", "loss"} <= set(lines[0])
    # the saved oracle reproduces the logged accuracy and keeps its LM head
    from transformers import AutoTokenizer

    oracle = CausalLMWithRewardHead.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    ds, _ = tokenize_preference_dataset(preference_rows(128, split="valid1"), tok, max_prompt_length=40, max_length=48)
    assert pairwise_accuracy(oracle, ds, pad_token_id=tok.pad_token_id)["accuracy"] == pytest.approx(m["heldout"]["accuracy"])
    assert oracle.lm.get_output_embeddings() is not None


def test_run_ensemble_members_differ_by_head_seed(init_dir, tmp_path):
    cfg = OracleConfig(**FAST, init_model=str(init_dir), max_steps=3, ensemble_size=2, ensemble_head_seeds=(1, 2))
    dirs = run_ensemble(Run.create({"profile": "unit"}, runs_dir=tmp_path), cfg, train_rows=preference_rows(64),
                        eval_rows=preference_rows(16, split="valid1"), progress=False)
    assert dirs == [tmp_path / "unit" / "ensemble" / f"member_{k}" for k in range(2)]
    heads = []
    for k, d in enumerate(dirs):
        m = json.loads((d / "metrics.json").read_text())
        assert m["alpha"] == 0.0 and m["head_seed"] == k + 1
        model = CausalLMWithRewardHead.from_pretrained(d)
        assert model.head_seed == k + 1
        heads.append(model.reward_head.weight.detach())
    assert not torch.allclose(heads[0], heads[1])


def test_reward_agreement_against_a_known_true_reward(init_dir, tmp_path):
    from drdo_lib.oracle import reward_agreement
    from train_fixtures import GOOD

    tok_dir = init_dir
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    rm = CausalLMWithRewardHead.from_causal_lm(build_causal_lm(str(init_dir), tok), head_seed=5)
    save_model(rm, tok, tmp_path / "rm")
    rows = preference_rows(40, split="valid1")

    def true_fn(prompts, responses):  # 1 for a response with a good word, 0 otherwise
        return [float(any(g in r.split() for g in GOOD)) for r in responses]

    cfg = OracleConfig(max_prompt_length=40, max_length=48)
    a = reward_agreement(tmp_path / "rm", rows, cfg=cfg, true_reward_fn=true_fn)
    ds, _ = tokenize_preference_dataset(rows, tok, max_prompt_length=40, max_length=48)
    assert a["pairs"] == 40
    assert a["accuracy_vs_labels"] == pytest.approx(pairwise_accuracy(rm, ds, pad_token_id=tok.pad_token_id)["accuracy"])
    assert a["labels_vs_true"] == 1.0  # the fixture's labels always prefer the good word
    assert a["accuracy_vs_true"] == pytest.approx(a["accuracy_vs_labels"])
    assert len(a["diff"]) == len(a["true_diff"]) == 40 and set(a["true_diff"]) == {1.0}
    assert -1.0 <= a["pearson_reward"] <= 1.0


def test_true_reward_oracles_exact_and_noisy():
    import numpy as np

    from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed
    from drdo_lib.oracle import true_reward_oracle

    tb = SyntheticTestbed(SyntheticConfig(seed=0))
    rows = tb.comparison_rows(400)
    prompts = [r["info"]["post"] for r in rows]
    ys = [r["summaries"][0]["text"] for r in rows]
    exact = true_reward_oracle(OracleConfig(kind="true_reward"), tb, seed=0)(prompts, ys)
    assert np.array_equal(exact, tb.true_rewards(prompts, ys))
    cfg = OracleConfig(kind="noisy_true_reward", noise_std=0.5)
    noisy = true_reward_oracle(cfg, tb, seed=0)(prompts, ys)
    noise = noisy - exact
    assert 0.4 < noise.std() < 0.6 and abs(noise.mean()) < 0.1
    # deterministic per (seed, member, prompt, response): the same response always gets the same reward
    again = true_reward_oracle(cfg, tb, seed=0)(prompts[::-1], ys[::-1])[::-1]
    assert np.array_equal(noisy, again)
    other = true_reward_oracle(cfg, tb, seed=0, member=1)(prompts, ys) - exact
    assert abs(np.corrcoef(noise, other)[0, 1]) < 0.2  # ensemble members see independent noise
    with pytest.raises(ValueError, match="trained"):
        true_reward_oracle(OracleConfig(), tb, seed=0)
    with pytest.raises(ValueError, match="no.*true reward|has none"):
        true_reward_oracle(OracleConfig(kind="true_reward"), None, seed=0)
    with pytest.raises(ValueError, match="kind"):
        OracleConfig(kind="converged")
