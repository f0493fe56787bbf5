"""PreferenceTrainer: its loss equals drdo_lib.losses on the same batch (computed independently, one sequence side
at a time, full logits), training moves the parameters, the Fig. 4 metrics are logged, configs are validated."""
from __future__ import annotations

import json
import logging
import math

import datasets
import pytest
import torch

from drdo_lib import losses as L
from drdo_lib.data.tokenize import pad_sequences, tokenize_preference_dataset
from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer
from drdo_lib.hf import read_metrics, resolve_optim
from drdo_lib.policy import PolicyConfig, order_by_oracle
from drdo_lib.policy import training_args as training_arguments
from drdo_lib.trainer import METHODS, PreferenceCollator, PreferenceTrainer

from policy_helpers import WORDS
from policy_helpers import random_preference_rows as _rows


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("tiny-gpt2", vocab_words=WORDS + ["POST:", "TL;DR:", "POST", "TL", "DR", ":", ";"])


@pytest.fixture(scope="module")
def dataset(tok):
    ds, counts = tokenize_preference_dataset(datasets.Dataset.from_list(_rows(32)), tok, max_prompt_length=32,
                                             max_length=48)
    assert counts["rows_kept"] == 32
    return ds


def _student(tok, method, student_reward="head", arch="tiny-gpt2"):
    lm = build_causal_lm(arch, tok, seed=1, size="micro")
    if method == "drdo" and student_reward == "head":
        return CausalLMWithRewardHead.from_causal_lm(lm, head_seed=3)
    return lm


def _trainer(tok, ds, method, tmp_path, student_reward="head", **cfg_kw):
    kw = dict(student_reward=student_reward, max_steps=3, logging_steps=1, save_steps=100,
              per_device_train_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-2, warmup_steps=0)
    kw.update(cfg_kw)
    cfg = PolicyConfig(**kw)
    model = _student(tok, method, student_reward)
    args = training_arguments(cfg, tmp_path / method, seed=0, disable_tqdm=True)
    return PreferenceTrainer(model, cfg, method, args=args, train_dataset=ds, pad_token_id=tok.pad_token_id)


def _independent_logps(model, rows, side, reduction):
    """z for one side, from a separate full-logit forward (no concatenation, no logits_to_keep)."""
    ids = pad_sequences([r[f"{side}_input_ids"] for r in rows], 0)
    attn = pad_sequences([r[f"{side}_attention_mask"] for r in rows], 0)
    resp = pad_sequences([r[f"{side}_response_mask"] for r in rows], 0)
    out = model(input_ids=ids, attention_mask=attn)
    logits = out["logits"] if isinstance(out, dict) else out.logits
    rewards = out.get("rewards") if isinstance(out, dict) else None
    return L.sequence_logps(logits, ids, resp, reduction=reduction), rewards


@pytest.mark.parametrize("method,student_reward,reduction", [
    ("drdo", "head", "sum"), ("drdo", "logprob", "mean"), ("dpo", "head", "sum"), ("ipo", "head", "mean"),
    ("edpo", "head", "sum"), ("cdpo", "head", "sum"), ("rdpo", "head", "mean"), ("drdpo", "head", "sum"),
])
def test_trainer_loss_equals_losses_module(tok, dataset, tmp_path, method, student_reward, reduction):
    tr = _trainer(tok, dataset, method, tmp_path, student_reward=student_reward, logp_reduction=reduction,
                  beta=0.3, alpha=0.5, gamma=1.0, edpo_kl_coef=0.37, label_noise_eps=0.23, drdpo_beta=0.6)
    rows = [dataset[i] for i in range(6)]
    batch = PreferenceCollator(tok.pad_token_id)(rows)
    model = tr.model.eval()
    with torch.no_grad():
        got = tr.compute_loss(model, batch)
        fw = tr.concatenated_forward(model, batch)
        zw, rw = _independent_logps(model, rows, "chosen", reduction)
        zl, rl = _independent_logps(model, rows, "rejected", reduction)
    # the one concatenated, response-tail-only forward gives the same z (and r̂) as separate full forwards
    torch.testing.assert_close(fw["chosen_logps"], zw, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fw["rejected_logps"], zl, rtol=1e-5, atol=1e-5)
    if rw is not None:
        torch.testing.assert_close(fw["chosen_rewards"], rw, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fw["rejected_rewards"], rl, rtol=1e-5, atol=1e-5)
    f = lambda k: torch.tensor([r[k] for r in rows], dtype=torch.float32)  # noqa: E731
    if method == "drdo":
        sw, sl = (rw, rl) if student_reward == "head" else (0.3 * zw, 0.3 * zl)
        want = L.drdo_loss(zw, zl, sw, sl, f("oracle_chosen_reward"), f("oracle_rejected_reward"), alpha=0.5, gamma=1.0)
    elif method == "edpo":
        want = L.edpo_loss(zw, zl, f("ref_chosen_logp"), f("ref_rejected_logp"), f("ensemble_chosen_rewards").T,
                           f("ensemble_rejected_rewards").T, beta=0.3, reduction="pessimistic", kl_coef=0.37)
    elif method in ("cdpo", "rdpo"):
        fn = L.cdpo_loss if method == "cdpo" else L.rdpo_loss
        want = fn(zw, zl, f("ref_chosen_logp"), f("ref_rejected_logp"), beta=0.3, eps=0.23)
    elif method == "drdpo":
        want = L.drdpo_loss(zw, zl, f("ref_chosen_logp"), f("ref_rejected_logp"), beta=0.3, beta_prime=0.6)
    else:
        fn = L.dpo_loss if method == "dpo" else L.ipo_loss
        want = fn(zw, zl, f("ref_chosen_logp"), f("ref_rejected_logp"), beta=0.3)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, want.loss, rtol=1e-5, atol=1e-5)


def test_dpo_starts_at_log2_when_reference_is_the_initial_policy(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, "dpo", tmp_path)
    rows = [dataset[i] for i in range(8)]
    with torch.no_grad():
        for side in ("chosen", "rejected"):  # reference log-probs from the very same (initial) model
            z, _ = _independent_logps(tr.model.eval(), rows, side, "sum")
            for r, v in zip(rows, z.tolist()):
                r[f"ref_{side}_logp"] = v
        loss = tr.compute_loss(tr.model, PreferenceCollator(tok.pad_token_id)(rows))
    assert abs(float(loss) - math.log(2)) < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_training_changes_parameters_and_logs_fig4_metrics(tok, dataset, tmp_path, method):
    tr = _trainer(tok, dataset, method, tmp_path)
    before = {k: v.detach().clone() for k, v in tr.model.named_parameters()}
    tr.train()
    after = dict(tr.model.named_parameters())
    changed = [k for k in before if not torch.equal(before[k], after[k].detach())]
    assert any("wte" in k for k in changed), changed  # the LM itself moves
    if method == "drdo":
        assert any("reward_head" in k for k in changed)
    rows = read_metrics(tmp_path / method)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("loss", "grad_norm", "bt_accuracy", "oracle_reward_advantage", "logps_chosen", "logps_rejected",
                "p_w", "learning_rate", f"loss_{method}"):
        assert all(math.isfinite(r[key]) for r in rows), key
    assert all(0.0 <= r["bt_accuracy"] <= 1.0 and 0.0 < r["p_w"] < 1.0 for r in rows)
    if method == "drdo":
        assert all(abs(r["loss_reward"] - r["loss_focal"] - r["loss"]) < 1e-3 * max(1, abs(r["loss"])) for r in rows)


def test_oracle_reward_advantage_is_signed_by_student_preference(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, "dpo", tmp_path)
    rows = [dataset[i] for i in range(8)]
    for i, r in enumerate(rows):  # implicit-reward margin (z − ref) decided by the (huge) reference gap
        r["ref_chosen_logp"], r["ref_rejected_logp"] = (-1e3, 0.0) if i % 2 else (0.0, -1e3)
        r["oracle_chosen_reward"], r["oracle_rejected_reward"] = 1.0, 0.0
    with torch.no_grad():
        tr.compute_loss(tr.model, PreferenceCollator(tok.pad_token_id)(rows))
    # odd rows: student prefers chosen (+1); even rows: prefers rejected (−1) → mean 0; BT accuracy 1/2
    assert tr._metric_sums["oracle_reward_advantage"] == [pytest.approx(0.0)]
    assert tr._metric_sums["bt_accuracy"] == [pytest.approx(0.5)]


def test_missing_precomputed_columns_fail_loudly(tok, dataset, tmp_path):
    with pytest.raises(ValueError, match="ref_chosen_logp"):
        _trainer(tok, dataset.remove_columns(["ref_chosen_logp"]), "dpo", tmp_path)
    with pytest.raises(ValueError, match="CausalLMWithRewardHead"):
        cfg = PolicyConfig(student_reward="head")
        PreferenceTrainer(build_causal_lm("tiny-gpt2", tok, size="micro"), cfg, "drdo",
                          args=training_arguments(cfg, tmp_path, 0), train_dataset=dataset, pad_token_id=0)


def test_order_by_oracle_swaps_pairs_the_oracle_prefers_the_other_way(dataset):
    ds = order_by_oracle(dataset)
    for old, new in zip(dataset, ds):
        swap = old["oracle_rejected_reward"] > old["oracle_chosen_reward"]
        a, b = ("rejected", "chosen") if swap else ("chosen", "rejected")
        assert new["chosen_input_ids"] == old[f"{a}_input_ids"] and new["rejected_input_ids"] == old[f"{b}_input_ids"]
        assert new["ref_chosen_logp"] == old[f"ref_{a}_logp"]
        assert new["ensemble_chosen_rewards"] == old[f"ensemble_{a}_rewards"]
        assert new["oracle_chosen_reward"] >= new["oracle_rejected_reward"]
        assert new["chosen"] == old[a]
    assert sum(o["oracle_rejected_reward"] > o["oracle_chosen_reward"] for o in dataset) > 0  # the test swaps some


@pytest.mark.parametrize("bad", [
    {"methods": ["drdo", "ppo"]}, {"student_reward": "value"}, {"label_source": "judge"}, {"logp_reduction": "max"},
    {"edpo_reduction": "median"}, {"beta": 0.0}, {"alpha": -1.0}, {"max_prompt_length": 2048}, {"max_steps": 0},
    {"bf16": "yes"}, {"per_device_train_batch_size": 0}, {"label_noise_eps": 0.5}, {"label_noise_eps": -0.01},
    {"drdpo_beta": 0.0},
])
def test_policy_config_validation(bad):
    with pytest.raises(ValueError):
        PolicyConfig(**bad)


def test_policy_config_lists_become_tuples_and_paper_defaults():
    cfg = PolicyConfig(methods=["dpo"], splits="D_all")
    assert cfg.methods == ("dpo",) and cfg.splits == ("D_all",)
    d = PolicyConfig()
    assert (d.learning_rate, d.weight_decay, d.lr_scheduler_type, d.alpha, d.gamma, d.beta) == (5e-6, 0.05, "cosine",
                                                                                              0.1, 2.0, 0.1)


def test_paged_optimizer_falls_back_with_a_warning(caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="drdo_lib.trainer"):
        assert resolve_optim("paged_adamw_32bit") == "adamw_torch"
    assert "adamw_torch" in caplog.text
    assert resolve_optim("adamw_torch") == "adamw_torch"


def test_metrics_jsonl_is_valid_json_lines(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, "drdo", tmp_path, max_steps=2)
    tr.train()
    lines = (tmp_path / "drdo" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(x), dict) for x in lines)


# ---------------------------------------------------------------------------------------------------------------
# the student's reward-head initialisation and the per-term gradient norms of DRDO
# ---------------------------------------------------------------------------------------------------------------
def test_zero_student_head_gives_exactly_zero_initial_rewards(tok, dataset):
    rows = [dataset[i] for i in range(6)]
    lm = build_causal_lm("tiny-gpt2", tok, seed=1, size="micro")
    zero = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=3, head_init="zero")
    with torch.no_grad():
        _, rw = _independent_logps(zero.eval(), rows, "chosen", "sum")
        _, rl = _independent_logps(zero, rows, "rejected", "sum")
    assert torch.equal(rw, torch.zeros_like(rw)) and torch.equal(rl, torch.zeros_like(rl))
    rand = CausalLMWithRewardHead.from_causal_lm(build_causal_lm("tiny-gpt2", tok, seed=1, size="micro"), head_seed=3)
    with torch.no_grad():
        _, r = _independent_logps(rand.eval(), rows, "chosen", "sum")
    assert bool((r != 0).all())  # the default (random) head is unchanged
    with pytest.raises(ValueError, match="head_init"):
        CausalLMWithRewardHead.from_causal_lm(lm, head_init="ones")
    with pytest.raises(ValueError):
        PolicyConfig(student_head_init="ones")
    assert PolicyConfig().student_head_init == "fit"  # the default chosen by evidence (README)
    assert PolicyConfig().standardize_oracle is True


def _term_grad_norms_independently(model, rows, cfg):
    """Norms of ∇ mean(reward term) and ∇ mean(focal term) from separate full-logit forwards of each side (no
    trainer code): over every trainable parameter, over the LM's alone and over the head's alone (the head's
    parameters found by identity, not by name)."""
    zw, rw = _independent_logps(model, rows, "chosen", cfg.logp_reduction)
    zl, rl = _independent_logps(model, rows, "rejected", cfg.logp_reduction)
    f = lambda k: torch.tensor([r[k] for r in rows], dtype=torch.float32)  # noqa: E731
    if cfg.student_reward == "logprob":
        rw, rl = cfg.beta * zw, cfg.beta * zl
    out = L.drdo_loss(zw, zl, rw, rl, f("oracle_chosen_reward"), f("oracle_rejected_reward"), alpha=cfg.alpha,
                      gamma=cfg.gamma)
    params = [p for p in model.parameters() if p.requires_grad]
    head_ids = {id(p) for p in model.reward_head.parameters()} if hasattr(model, "reward_head") else set()
    norms = {}
    for name in ("reward", "focal"):
        gs = torch.autograd.grad(out.components[name].mean(), params, retain_graph=True, allow_unused=True)
        sq = {"all": 0.0, "lm": 0.0, "head": 0.0}
        for p, g in zip(params, gs):
            v = 0.0 if g is None else float((g.double() ** 2).sum())
            sq["all"] += v
            sq["head" if id(p) in head_ids else "lm"] += v
        norms[name] = {k: math.sqrt(v) for k, v in sq.items()}
    return norms


@pytest.mark.parametrize("student_reward,head_init", [("head", "random"), ("head", "zero"), ("logprob", "random")])
def test_logged_term_grad_norms_equal_an_independent_autograd(tok, dataset, tmp_path, student_reward, head_init):
    tr = _trainer(tok, dataset, "drdo", tmp_path, student_reward=student_reward, alpha=0.5, gamma=1.0,
                  logging_steps=2)
    if student_reward == "head":
        tr.model = tr.model_wrapped = CausalLMWithRewardHead.from_causal_lm(
            build_causal_lm("tiny-gpt2", tok, seed=1, size="micro"), head_seed=3, head_init=head_init)
    model = tr.model.train()
    rows = [dataset[i] for i in range(6)]
    batch = PreferenceCollator(tok.pad_token_id)(rows)
    tr.state.global_step = 0  # the coming step is 1: not a logging step (every 2): nothing extra is computed
    tr.compute_loss(model, batch)
    assert not any(k.startswith("grad_norm_") for k in tr._metric_sums)
    assert all(p.grad is None for p in model.parameters())
    tr.state.global_step = 1  # the coming step is 2: a logging step
    tr.compute_loss(model, batch)
    assert all(p.grad is None for p in model.parameters())  # the extra autograd.grad calls leave .grad alone
    want = _term_grad_norms_independently(model, rows, tr.policy_config)
    got = tr._metric_sums
    approx = lambda v: [pytest.approx(v, rel=1e-4, abs=1e-7)]  # noqa: E731
    assert got["grad_norm_reward"] == approx(want["reward"]["all"])
    assert got["grad_norm_focal"] == approx(want["focal"]["all"])
    assert got["grad_norm_reward_lm"] == approx(want["reward"]["lm"])
    assert got["grad_norm_focal_lm"] == approx(want["focal"]["lm"])
    assert want["focal"]["lm"] > 0 and want["focal"]["head"] == 0  # the focal term never reaches the head
    if student_reward == "head":
        assert got["grad_norm_reward_head"] == approx(want["reward"]["head"])
        assert want["reward"]["head"] > 0
        if head_init == "random":  # the head's own norm is a real part of the all-parameter norm (not vacuous)
            assert want["reward"]["lm"] > 0 and want["reward"]["all"] > want["reward"]["lm"] * (1 + 1e-3)
    else:
        assert "grad_norm_reward_head" not in got
        assert want["reward"]["all"] == pytest.approx(want["reward"]["lm"])
    if head_init == "zero" and student_reward == "head":  # head weight 0: the regression reaches the head only
        assert got["grad_norm_reward_lm"] == [0.0]


def test_term_grad_norms_are_logged_on_logging_steps_and_bound_the_total(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, "drdo", tmp_path, max_steps=4, logging_steps=2, max_grad_norm=1e9)
    tr.train()
    rows = read_metrics(tmp_path / "drdo")
    assert [r["step"] for r in rows] == [2, 4]
    for r in rows:  # with one micro-batch per step the total gradient is ∇reward − ∇focal: triangle inequality
        assert abs(r["grad_norm_reward"] - r["grad_norm_focal"]) - 1e-4 <= r["grad_norm"]
        assert r["grad_norm"] <= r["grad_norm_reward"] + r["grad_norm_focal"] + 1e-4
        # the all-parameter norm splits into the LM's and the head's (the focal term has no head part)
        assert r["grad_norm_reward"] ** 2 == pytest.approx(r["grad_norm_reward_lm"] ** 2 + r["grad_norm_reward_head"] ** 2,
                                                           rel=1e-3, abs=1e-8)
        assert r["grad_norm_focal"] == pytest.approx(r["grad_norm_focal_lm"], rel=1e-5)
    for method in ("dpo",):  # only DRDO has the two terms
        tr = _trainer(tok, dataset, method, tmp_path, max_steps=1)
        tr.train()
        assert not any(k.startswith("grad_norm_reward") for k in read_metrics(tmp_path / method)[0])


def test_mean_reduction_with_a_pretrained_initial_policy_warns_once(tmp_path, caplog):
    from drdo_lib import policy

    class FakeRun:  # what the rule reads of a Run: its directory and its sft section
        def __init__(self, d, sft):
            self.dir, self._sft = d, sft

        def section(self, name):
            return dict(self._sft) if name == "sft" else {}

    def sft_folder(name, base):
        final = tmp_path / name / "sft" / "final"
        final.mkdir(parents=True)
        (final.parent / "config.json").write_text(json.dumps({"model_name_or_path": base}))
        return final

    mean = PolicyConfig(logp_reduction="mean")
    tiny_run = FakeRun(tmp_path / "tiny", {"model_name_or_path": "tiny-gpt2"})
    hub_run = FakeRun(tmp_path / "hub", {"model_name_or_path": "facebook/opt-125m"})
    with caplog.at_level(logging.WARNING, logger="drdo_lib.policy"):
        # trained from scratch here (SFT from a tiny-* config): no warning
        assert not policy.warn_if_mean_meets_pretrained(tiny_run, mean, "drdo", sft_folder("tiny", "tiny-gpt2"))
        # SFT from a hub model: warns, once per run
        hub_final = sft_folder("hub", "facebook/opt-125m")
        assert policy.warn_if_mean_meets_pretrained(hub_run, mean, "drdo", hub_final)
        assert not policy.warn_if_mean_meets_pretrained(hub_run, mean, "drdo", hub_final)
        # a hub id given as policy.init_model, no SFT config beside it: pretrained
        cfg = PolicyConfig(logp_reduction="mean", init_model="HuggingFaceTB/SmolLM2-135M-Instruct")
        assert policy.warn_if_mean_meets_pretrained(tiny_run, cfg, "drdo", cfg.init_model)
        # the run's own SFT policy without its config beside it: the run's sft section decides
        assert policy.warn_if_mean_meets_pretrained(hub_run, mean, "drdo", tmp_path / "elsewhere" / "final")
        assert not policy.warn_if_mean_meets_pretrained(tiny_run, mean, "drdo", tmp_path / "elsewhere" / "final")
        # sum reduction, or a method without the focal term: no warning
        assert not policy.warn_if_mean_meets_pretrained(FakeRun(tmp_path / "x", {}), PolicyConfig(), "drdo", cfg.init_model)
        assert not policy.warn_if_mean_meets_pretrained(FakeRun(tmp_path / "y", {}), mean, "dpo", cfg.init_model)
    warnings = [r for r in caplog.records if "logp_reduction='mean'" in r.getMessage()]
    assert len(warnings) == 3 and all(r.levelno == logging.WARNING for r in warnings)


# ---------------------------------------------------------------------------------------------------------------
# The student's reward head: its own learning rate, standardised Oracle rewards, a head fitted on the frozen policy
# ---------------------------------------------------------------------------------------------------------------
def test_head_learning_rate_moves_the_head_at_its_own_rate(tok, dataset, tmp_path):
    tr = _trainer(tok, dataset, "drdo", tmp_path, max_steps=1, learning_rate=1e-4, head_learning_rate=0.25,
                  lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=1e9)
    tr.model = tr.model_wrapped = CausalLMWithRewardHead.from_causal_lm(
        build_causal_lm("tiny-gpt2", tok, seed=1, size="micro"), head_seed=3, head_init="random")
    opt = tr.create_optimizer()
    head_ids = {id(p) for p in tr.model.reward_head.parameters()}
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in tr.model.parameters() if p.requires_grad)  # each exactly once
    for g in opt.param_groups:
        kinds = {id(p) in head_ids for p in g["params"]}
        assert len(kinds) == 1 and g["lr"] == (0.25 if kinds == {True} else 1e-4)
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    tr.train()
    # Adam's first step moves every weight with a non-zero gradient by ~lr (|m/√v| = 1): the head by 0.25
    step = {n: (p.detach() - before[n]).abs().max().item() for n, p in tr.model.named_parameters()}
    assert step["reward_head.weight"] == pytest.approx(0.25, rel=1e-3)
    assert max(v for n, v in step.items() if "reward_head" not in n) == pytest.approx(1e-4, rel=1e-2)


def test_standardized_oracle_rewards_have_unit_difference_sd(dataset):
    from drdo_lib.policy import standardize_oracle_rewards

    ds, s = standardize_oracle_rewards(dataset)
    d0 = [c - r for c, r in zip(dataset["oracle_chosen_reward"], dataset["oracle_rejected_reward"])]
    d1 = [c - r for c, r in zip(ds["oracle_chosen_reward"], ds["oracle_rejected_reward"])]
    m0 = sum(d0) / len(d0)
    assert s == pytest.approx(math.sqrt(sum((x - m0) ** 2 for x in d0) / len(d0)))
    assert all(b == pytest.approx(a / s) for a, b in zip(d0, d1))
    m1 = sum(d1) / len(d1)
    assert math.sqrt(sum((x - m1) ** 2 for x in d1) / len(d1)) == pytest.approx(1.0)
    assert ds["chosen_input_ids"] == dataset["chosen_input_ids"]  # nothing else changes


def test_fit_student_head_is_the_ridge_regression_on_frozen_features(tok, dataset):
    from drdo_lib.policy import fit_student_head

    model = CausalLMWithRewardHead.from_causal_lm(build_causal_lm("tiny-gpt2", tok, seed=1, size="micro"),
                                                  head_init="zero")
    lm_before = {n: p.detach().clone() for n, p in model.lm.named_parameters()}
    res = fit_student_head(model, dataset, tok.pad_token_id, ridge=1e-3, batch_size=5)
    assert all(torch.equal(p, lm_before[n]) for n, p in model.lm.named_parameters())  # the LM is frozen
    rows = [dataset[i] for i in range(len(dataset))]
    feats = []
    with torch.no_grad():  # one row at a time: the head's input is the last real token's hidden state
        for r in rows:
            h = [model(input_ids=torch.tensor([r[f"{s}_input_ids"]]))["hidden_last"][0].double()
                 for s in ("chosen", "rejected")]
            feats.append(h[0] - h[1])
    X = torch.stack(feats)
    d = torch.tensor([r["oracle_chosen_reward"] - r["oracle_rejected_reward"] for r in rows], dtype=torch.float64)
    lam = 1e-3 * float((X ** 2).sum(0).mean())
    w = torch.linalg.lstsq(torch.cat([X, math.sqrt(lam) * torch.eye(X.shape[1], dtype=X.dtype)]),
                           torch.cat([d, torch.zeros(X.shape[1], dtype=X.dtype)])).solution  # augmented least squares
    torch.testing.assert_close(model.reward_head.weight[0].double(), w, rtol=1e-3, atol=1e-5)
    assert float(model.reward_head.bias.detach()) == 0.0
    resid = d - X @ w
    assert res["pairs"] == len(rows)
    assert res["r2"] == pytest.approx(1 - float((resid ** 2).sum() / (d ** 2).sum()), rel=1e-3)
    assert res["r2"] > 0  # better than the zero head it replaces
