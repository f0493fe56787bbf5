"""Tests for drdo_lib.sft: TRL SFTTrainer with completion-only loss on our tokenisation; outputs; learning."""
import json

import pytest
import torch

from drdo_lib.data.tokenize import tokenize_sft_dataset
from drdo_lib.models import build_causal_lm, build_tokenizer
from drdo_lib.run import Run
from drdo_lib.sft import SFTConfig, build_sft_trainer, true_reward_of_samples
from drdo_lib.sft import run as run_sft
from train_fixtures import GOOD, corpus, sft_rows

FAST = dict(model_size="micro", max_prompt_length=40, max_length=48, learning_rate=1e-2, warmup_steps=0,
            per_device_train_batch_size=16, gradient_accumulation_steps=1, logging_steps=5, eval_prompts=0)


def test_config_validation():
    with pytest.raises(ValueError, match="max_prompt_length"):
        SFTConfig(max_prompt_length=10, max_length=10)
    with pytest.raises(ValueError, match="template"):
        SFTConfig(template="nope")
    with pytest.raises(ValueError, match="model_size"):
        SFTConfig(model_size="huge")


def test_completion_only_labels_mask_the_prompt(tmp_path):
    tok = build_tokenizer("tiny-gpt2", corpus())
    ds, _ = tokenize_sft_dataset(sft_rows(8), tok, max_length=48)
    model = build_causal_lm("tiny-gpt2", tok, size="micro")
    trainer = build_sft_trainer(SFTConfig(**FAST, max_steps=1), model, tok, ds, tmp_path, seed=0, progress=False)
    batch = next(iter(trainer.get_train_dataloader()))
    labels, ids = batch["labels"], batch["input_ids"]
    for i in range(labels.shape[0]):
        row = ds[i] if False else None  # rows are shuffled by the sampler: check the invariant per row instead
        real = batch["attention_mask"][i].bool()
        scored = labels[i] != -100
        # exactly the completion (3 tokens: key word, good word, EOS) is scored; the prompt and padding are not
        assert int(scored.sum()) == 3
        assert torch.equal(labels[i][scored], ids[i][scored])
        last = int(real.nonzero().max())
        assert bool(scored[last]) and ids[i, last] == tok.eos_token_id
        assert not bool(scored[: last - 2].any())


def test_quiet_trainer_prints_no_log_dicts(tmp_path):
    from transformers.trainer_callback import PrinterCallback

    tok = build_tokenizer("tiny-gpt2", corpus())
    ds, _ = tokenize_sft_dataset(sft_rows(8), tok, max_length=48)
    model = build_causal_lm("tiny-gpt2", tok, size="micro")
    trainer = build_sft_trainer(SFTConfig(**FAST, max_steps=1), model, tok, ds, tmp_path, seed=0, progress=False)
    assert trainer.args.disable_tqdm
    assert not any(isinstance(cb, PrinterCallback) for cb in trainer.callback_handler.callbacks)


def test_run_sft_learns_and_writes_outputs(tmp_path, capsys):
    rows = sft_rows(256)
    cfg = SFTConfig(**FAST, max_steps=40)
    final = run_sft(Run.create({"profile": "unit"}, seed=0, runs_dir=tmp_path), cfg, train_rows=rows, corpus=corpus(),
                    progress=False)
    printed = capsys.readouterr().out
    assert "{'loss'" not in printed and "'train_runtime'" not in printed  # the logs are in metrics.jsonl only
    assert final == tmp_path / "unit" / "sft" / "final"
    assert (final / "model.safetensors").exists() and (final / "tokenizer.json").exists()
    metrics = json.loads((tmp_path / "unit" / "sft" / "metrics.json").read_text())
    assert metrics["steps"] == 40 and metrics["rows"]["rows_kept"] == 256
    curve = [json.loads(x)["loss"] for x in (tmp_path / "unit" / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert len(curve) == 8 and curve[-1] < 0.5 * curve[0]  # completion loss falls (start ≈ log |V| ≈ 3.4)
    saved = json.loads((tmp_path / "unit" / "sft" / "config.json").read_text())
    assert saved["max_steps"] == 40
    # the trained model writes the topic's first word and a good word (greedy), an untrained one does not
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(final)
    prompts = sft_rows(16, seed=1)["prompt"]

    def reward(ps, rs):  # 1 per expected word present
        return [float(r.split()[:1] == [("cat" if "r/cats" in p else "dog")]) + float(any(g in r.split() for g in GOOD))
                for p, r in zip(ps, rs)]

    trained = true_reward_of_samples(final, tok, prompts, reward, max_new_tokens=4)
    fresh = true_reward_of_samples(build_causal_lm("tiny-gpt2", tok, seed=0, size="micro"), tok, prompts, reward,
                                   max_new_tokens=4)
    assert trained["mean"] > 1.2 and fresh["mean"] < 0.5
    # parameters changed
    init = build_causal_lm("tiny-gpt2", tok, seed=0, size="micro").state_dict()
    after = AutoModelForCausalLM.from_pretrained(final).state_dict()
    assert any(not torch.allclose(init[k], after[k]) for k in init if k in after)


def test_split_train_heldout_uses_train_split_or_hash_of_id():
    import datasets

    from drdo_lib.data.pipeline import split_train_heldout

    rows = datasets.Dataset.from_list([{"id": f"r{i}", "split": s} for i, s in
                                       enumerate(["train"] * 6 + ["valid1"] * 2 + ["test"] * 2)])
    tr, he = split_train_heldout(rows)
    assert tr["split"] == ["train"] * 6 and he["split"] == ["valid1"] * 2
    only_test = datasets.Dataset.from_list([{"id": f"r{i}", "split": "test"} for i in range(400)])
    tr, he = split_train_heldout(only_test, heldout_fraction=0.25)
    assert len(tr) + len(he) == 400 and 60 < len(he) < 140
    assert not set(tr["id"]) & set(he["id"])
    tr2, he2 = split_train_heldout(only_test.shuffle(seed=1), heldout_fraction=0.25)
    assert set(he2["id"]) == set(he["id"])  # deterministic: depends on the ids only


def test_evaluate_sft_with_a_true_reward(tmp_path):
    from drdo_lib.models import save_model
    from drdo_lib.sft import evaluate_sft

    tok = build_tokenizer("tiny-gpt2", corpus())
    save_model(build_causal_lm("tiny-gpt2", tok, seed=0, size="micro"), tok, tmp_path / "m")

    class Bed:  # r* = number of words of the summary that appear in the prompt
        def true_rewards(self, prompts, ys):
            return [float(sum(w in p.split() for w in y.split())) for p, y in zip(prompts, ys)]

        def ideal_summary(self, prompt):
            return prompt.split()[-2]

    rows = sft_rows(6, seed=3)
    ev = evaluate_sft(tmp_path / "m", rows, testbed=Bed(), n_prompts=4, max_new_tokens=3, max_length=48)
    assert ev["n_prompts"] == 4 and set(ev["nll"]) == {"sft", "random_init"}
    # the saved model and a fresh model with the same seed are the same network: equal NLL
    assert ev["nll"]["sft"] == pytest.approx(ev["nll"]["random_init"], rel=1e-5)
    tr = ev["true_reward"]
    assert tr["empty"] == 0.0 and tr["ideal"] == 1.0
    assert len(ev["samples"]) == 4 and all("sft_sample" in s for s in ev["samples"])
