"""The robustness study (drdo_lib.study): grid expansion, cache keys, resumability, the SFT-sharing claim, the
metrics on hand-made cases and the reading on synthetic numbers. Tiny random models (tests/policy_helpers.py)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from drdo_lib import study
from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed
from drdo_lib.run import Run


def _cfg(**kw) -> study.StudyConfig:
    base = dict(methods=["drdo_head", "dpo", "edpo"], noise_levels=[{"temperature": 0.5}, {"temperature": 2.0}],
                oracle_kinds=["trained", "true_reward"], seeds=[0, 1, 2], gate="off")
    base.update(kw)
    return study.StudyConfig(**base)


# ---------------------------------------------------------------------------------------------------------- grid
def test_grid_expansion_counts_and_oracle_axis():
    cfg = _cfg()
    cells = study.expand_grid(cfg)
    # per (seed, noise): sft + drdo x 2 oracle kinds + dpo x 1 + edpo x 2 = 6
    assert len(cells) == 3 * 2 * 6
    assert {c.oracle for c in cells if c.method == "dpo"} == {"none"}
    assert {c.oracle for c in cells if c.method in ("drdo", "edpo")} == {"trained", "true_reward"}
    assert sum(c.variant == "sft" for c in cells) == 6
    assert len(set(cells)) == len(cells)
    # a variant may restrict its oracle kinds
    cfg2 = _cfg(variants={"drdo_alpha0": {"oracle_kinds": ["true_reward"]}}, methods=["drdo_alpha0"])
    assert {c.oracle for c in study.expand_grid(cfg2) if c.variant == "drdo_alpha0"} == {"true_reward"}


def test_default_grid_has_the_issue_methods():
    cfg = study.StudyConfig()
    methods = {(cfg.variants[v]["method"], cfg.variants[v].get("student_reward"), cfg.variants[v].get("alpha"),
                cfg.variants[v].get("gamma")) for v in cfg.selected}
    assert ("drdo", "head", None, None) in methods and ("drdo", "logprob", None, None) in methods
    for student in ("head", "logprob"):  # the α = 0 and γ = 0 ablations of both student rewards
        assert ("drdo", student, 0.0, None) in methods and ("drdo", student, None, 0.0) in methods
    assert {m[0] for m in methods} == {"drdo", "dpo", "edpo", "ipo", "cdpo", "rdpo", "drdpo"}
    eps = {v: cfg.variants[v].get("label_noise_eps") for v in cfg.selected if cfg.variants[v]["method"] in ("cdpo", "rdpo")}
    for m in ("cdpo", "rdpo"):  # each with the measured flip rate and with a fixed (misspecified) ε, separately
        assert {e for v, e in eps.items() if cfg.variants[v]["method"] == m} == {study.FLIP_RATE, 0.1}
    assert len(cfg.noise_levels) >= 3 and len(cfg.seeds) >= 3


@pytest.mark.parametrize("bad", [
    {"methods": ["nope"]}, {"variants": {"x": {"method": "nope"}}}, {"variants": {"x": {"method": "dpo", "bogus": 1}}},
    {"noise_levels": [{"temprature": 1.0}]}, {"noise_levels": [{"temperature": -1}]}, {"oracle_kinds": ["gold"]},
    {"gate": "maybe"}, {"seeds": [0, 0]}, {"p_star_bins": [0.2, 1.0]},
    {"variants": {"x": {"method": "rdpo", "label_noise_eps": 0.5}}},
    {"variants": {"x": {"method": "cdpo", "label_noise_eps": "measured"}}}, {"checkpoint_steps": [20, 10]},
    {"checkpoint_steps": [0, 10]}, {"checkpoint_prompts": 1}, {"fit_pairs": 0},
])
def test_bad_settings_fail_naming_them(bad):
    with pytest.raises(ValueError):
        _cfg(**bad)


def test_shard_parsing():
    assert study.parse_shard("1/4") == (1, 4) and study.parse_shard(None) is None
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError):
            study.parse_shard(bad)


# ---------------------------------------------------------------------------------------------------- cache keys
def _run(tmp_path, study_section=None, **prof):
    profile = {"profile": "stest", "seed": 0, "runs_dir": str(tmp_path / "runs"), "figures_dir": str(tmp_path / "fig"),
               "data": {"source": "synthetic", "n_train": 64, "n_valid": 8, "n_sft": 32, "n_sft_test": 8, "n_ood": 2},
               "sft": {"model_name_or_path": "tiny-gpt2", "model_size": "micro", "max_steps": 2,
                       "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1, "max_prompt_length": 96,
                       "max_length": 128, "eval_prompts": 0, "optim": "adamw_torch", "warmup_steps": 0},
               "policy": {"max_steps": 2, "logging_steps": 1, "save_steps": 100, "per_device_train_batch_size": 8,
                          "gradient_accumulation_steps": 1, "max_prompt_length": 96, "max_length": 128,
                          "optim": "adamw_torch", "learning_rate": 1e-3, "warmup_steps": 0,
                          "precompute_batch_size": 16}, **prof}
    if study_section is not None:
        profile["study"] = study_section
    return Run.create(profile).validate()


def test_cell_key_changes_with_every_setting_and_not_otherwise(tmp_path):
    run = _run(tmp_path)
    cfg = _cfg()
    cells = study.expand_grid(cfg)
    keys = [study.cell_key(run, cfg, c) for c in cells]
    assert len(set(keys)) == len(keys)  # every cell its own key
    c = next(c for c in cells if c.variant == "drdo_head" and c.oracle == "trained")
    k = study.cell_key(run, cfg, c)
    assert study.cell_key(run, _cfg(), c) == k  # deterministic
    assert study.cell_key(run, _cfg(methods=["drdo_head"]), c) == k  # other cells of the grid do not matter
    assert study.cell_key(run, _cfg(n_prompts=100), c) != k  # a measurement setting
    assert study.cell_key(run, _cfg(variants={"drdo_head": {"alpha": 0.5}}), c) != k  # a policy override
    assert study.cell_key(run, _cfg(policy={"max_steps": 3}), c) != k  # the study's policy section
    assert study.cell_key(_run(tmp_path, policy={"max_steps": 5}), cfg, c) != k  # the profile's policy section
    assert study.cell_key(run, _cfg(noise_levels=[{"temperature": 0.7}, {"temperature": 2.0}]), c) != k
    assert study.cell_key(run, _cfg(sft={"max_steps": 3}), c) != k  # the SFT it starts from
    assert study.cell_key(run, _cfg(oracle={"learning_rate": 1e-4}), c) != k  # the trained Oracle
    d = next(c for c in cells if c.variant == "dpo")
    assert study.cell_key(run, _cfg(oracle={"learning_rate": 1e-4}), d) == study.cell_key(run, cfg, d)


def test_cell_key_follows_the_library_code_unless_told_not_to(tmp_path, monkeypatch):
    run = _run(tmp_path)
    c = study.expand_grid(_cfg())[1]
    k, k_nocode = study.cell_key(run, _cfg(), c), study.cell_key(run, _cfg(key_code=False), c)
    monkeypatch.setattr(study, "code_hash", lambda: "an edited trainer")
    assert study.cell_key(run, _cfg(), c) != k
    assert study.cell_key(run, _cfg(key_code=False), c) == k_nocode


def test_sft_shared_across_noise_levels_only_when_invariant(tmp_path):
    run = _run(tmp_path)
    cfg = _cfg(noise_levels=[{"temperature": 0.5, "tie_fraction": 0.1}, {"temperature": 2.0, "tie_fraction": 0.3},
                             {"temperature": 1.0, "ref_keep": 0.5}])
    assert study.sft_key(run, cfg, 0, 0) == study.sft_key(run, cfg, 1, 0)
    assert study.sft_key(run, cfg, 0, 0) != study.sft_key(run, cfg, 2, 0)  # ref_keep shapes the SFT rows
    assert study.sft_key(run, cfg, 0, 0) != study.sft_key(run, cfg, 0, 1)  # per seed
    assert study.data_run(run, cfg, 0, 0).dir != study.data_run(run, cfg, 1, 0).dir


@pytest.mark.parametrize("field,value", [
    ("temperature", 3.0), ("tie_fraction", 0.4), ("confidence_noise", 0.5), ("repeat_fraction", 0.5),
    ("null_confidence_fraction", 0.3), ("near_pair_fraction", 0.9), ("ref_pair_fraction", 0.7),
    ("pair_source", "perturbation"), ("n_workers", 5),
])
def test_sft_rows_do_not_depend_on_the_comparison_dials(field, value):
    """The claim that lets one SFT per seed serve every noise level: the SFT rows (train and held-out) are the same
    whatever the SFT_INVARIANT dials, while the comparison rows do change."""
    assert field in study.SFT_INVARIANT
    base, other = SyntheticTestbed(SyntheticConfig(seed=3)), SyntheticTestbed(SyntheticConfig(seed=3, **{field: value}))
    for split in ("train", "test"):
        assert base.sft_rows(40, split) == other.sft_rows(40, split)


def test_sft_rows_do_change_with_the_other_dials():
    a, b = SyntheticTestbed(SyntheticConfig(seed=3)), SyntheticTestbed(SyntheticConfig(seed=3, ref_keep=0.3))
    assert a.sft_rows(40) != b.sft_rows(40)


def test_sft_tokenizer_covers_every_noise_level_and_ignores_the_pairs(tmp_path):
    """The study's SFT tokenizer comes from the SFT rows + the testbed's word lists: the same at every noise level,
    and no pair word of any level is unknown to it."""
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.models import build_tokenizer

    run = _run(tmp_path)
    cfg = _cfg(noise_levels=[{"temperature": 0.5, "tie_fraction": 0.0}, {"temperature": 3.0, "tie_fraction": 0.5}])
    vocabs, unk = [], []
    for n in range(2):
        data = data_stage.load(study.data_run(run, cfg, n, 0))
        tok = build_tokenizer("tiny-gpt2", study.sft_corpus(data))
        vocabs.append(tok.get_vocab())
        texts = list(data.preferences["prompt"]) + list(data.preferences["chosen"]) + list(data.preferences["rejected"])
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        unk.append(sum(i == tok.unk_token_id for x in ids for i in x))
    assert vocabs[0] == vocabs[1]
    assert unk == [0, 0]


# ------------------------------------------------------------------------------------------------------ metrics
def test_never_preferred_on_a_hand_made_case():
    samples = ["a b", " c  d ", "e", "a b c"]
    sets = [{" a b"}, {"c d", "x"}, {"f"}, set()]
    np.testing.assert_array_equal(study.never_preferred(samples, sets), [0.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        study.never_preferred(["a"], [])


def test_preferred_mass_is_the_sum_over_distinct_preferred_responses():
    logps = {"a b": np.log(0.2), "c": np.log(0.05), "d": np.log(0.5)}
    assert study.preferred_mass(logps, {" a b", "a  b", "c"}) == pytest.approx(0.25)
    assert study.preferred_mass(logps, set()) == 0.0


def test_ancestral_kl_of_a_model_against_itself_is_zero_and_positive_against_another():
    """KL(π‖π) = 0 exactly per sample; against a different model the Monte-Carlo mean is positive here."""
    import torch

    from drdo_lib.models import build_causal_lm, build_tokenizer

    corpus = ["SUBREDDIT: r/pets TITLE: dog POST: my dog barks TL;DR: dog barks", "cat fur vet leash treats"]
    tok = build_tokenizer("tiny-gpt2", corpus)
    size = {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 64}
    a, b = build_causal_lm("tiny-gpt2", tok, seed=1, size=size), build_causal_lm("tiny-gpt2", tok, seed=2, size=size)
    with torch.no_grad():  # sharpen b so the two distributions differ clearly
        b.lm_head.weight.mul_(8.0) if b.lm_head.weight.data_ptr() != b.transformer.wte.weight.data_ptr() else \
            b.transformer.wte.weight.mul_(8.0)
    prompts = ["SUBREDDIT: r/pets TITLE: dog POST: my dog barks TL;DR:"] * 64
    same = study.ancestral_samples(a, a, tok, prompts, max_new_tokens=5, max_prompt_length=32, batch_size=16, seed=0)
    np.testing.assert_allclose(same["logp"], same["logp_ref"], atol=1e-5)
    assert len(same["texts"]) == 64 and np.all(same["logp"] <= 0)
    diff = study.ancestral_samples(a, b, tok, prompts, max_new_tokens=5, max_prompt_length=32, batch_size=16, seed=0)
    assert np.mean(diff["logp"] - diff["logp_ref"]) > 0.1
    # the same seed draws the same samples; the log-prob is that of the drawn tokens (EOS included)
    again = study.ancestral_samples(a, b, tok, prompts, max_new_tokens=5, max_prompt_length=32, batch_size=16, seed=0)
    assert again["texts"] == diff["texts"]


# -------------------------------------------------------------- flip rate, frontier points, the new claims' values
class _FakeTestbed:
    """r*(x, y) = the number of words of y (a reward anyone can compute by hand)."""

    def true_rewards(self, prompts, summaries):
        return np.array([float(len(s.split())) for s in summaries])


def test_label_flip_rate_on_a_hand_made_case():
    import datasets

    rows = datasets.Dataset.from_dict({"prompt": ["p"] * 5, "chosen": ["a b", "a", "a b c", "a", "a b"],
                                       "rejected": ["a", "a b", "a", "b", "a b c d"]})
    # r* differences: +1, -1, +2, 0 (tie: not decided), -2  -> 2 flips among 4 decided pairs
    res = study.label_flip_rate(_FakeTestbed(), rows)
    assert res == {"flip_rate": 0.5, "n_decided": 4, "n_pairs": 5}


def test_flip_rate_variants_get_the_measured_epsilon(tmp_path):
    run = _run(tmp_path)
    cfg = _cfg(methods=["cdpo", "rdpo_fixed"], seeds=[0], noise_levels=[{"temperature": 1.0}])
    cell = next(c for c in study.expand_grid(cfg) if c.variant == "cdpo")
    drun, srun = study.data_run(run, cfg, 0, 0), study.sft_run(run, cfg, 0, 0)
    assert study._policy_config(run, cfg, cell, drun, srun, flip_rate=0.23).label_noise_eps == 0.23
    assert study._policy_config(run, cfg, cell, drun, srun, flip_rate=0.7).label_noise_eps == study.MAX_FLIP_EPS
    assert study.cell_settings(run, cfg, cell)["policy"]["label_noise_eps"] == study.FLIP_RATE
    fixed = next(c for c in study.expand_grid(cfg) if c.variant == "rdpo_fixed")
    assert study._policy_config(run, cfg, fixed, drun, srun, flip_rate=0.23).label_noise_eps == 0.1
    assert fixed.oracle == "none" and cell.oracle == "none"


def test_frontier_point_leaves_the_random_state_alone():
    import torch

    from drdo_lib.models import build_causal_lm, build_tokenizer

    corpus = ["SUBREDDIT: r/pets TITLE: dog POST: my dog barks TL;DR: dog barks", "cat fur vet leash treats"]
    tok = build_tokenizer("tiny-gpt2", corpus)
    size = {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 64}
    lm = build_causal_lm("tiny-gpt2", tok, seed=1, size=size)
    cfg = _cfg(max_new_tokens=4, batch_size=4)
    prompts = ["SUBREDDIT: r/pets TITLE: dog POST: my dog barks TL;DR:"] * 3
    torch.manual_seed(5)
    np.random.seed(5)
    lm.train()
    pt = study.frontier_point(lm, lm, tok, _FakeTestbed(), prompts, cfg, seed=0, max_prompt_length=32)
    after = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(5)
    np.random.seed(5)
    assert torch.equal(after[0], torch.rand(3)) and np.array_equal(after[1], np.random.rand(3))
    assert lm.training  # the training mode is restored
    assert pt["kl"] == pytest.approx(0.0, abs=1e-5)  # the policy against itself
    assert len(pt["per_prompt"]["r_greedy"]) == 3 and pt["gold_greedy"] == pytest.approx(np.mean(pt["per_prompt"]["r_greedy"]))


def _ck_record(variant, seed, points, oracle="none", noise=0, fit=None):
    rec = {"cell": {"variant": variant, "method": variant, "noise": noise, "oracle": oracle, "seed": seed},
           "checkpoints": [{"step": 10 * (i + 1), "kl": k, "gold_greedy": r, "gold_sample": r - 1}
                           for i, (k, r) in enumerate(points)]}
    if variant == "sft":
        rec["checkpoints"] = [{"step": 0, "kl": 0.0, "gold_greedy": points[0][1], "gold_sample": points[0][1] - 1}]
    if fit is not None:
        rec["reward_fit"] = fit
    return rec


def test_kl_matched_gain_interpolates_each_seeds_frontier():
    recs = [_ck_record("sft", 0, [(0.0, 1.0)]), _ck_record("sft", 1, [(0.0, 1.0)]),
            # seed 0: DRDO reaches KL 0.4, DPO KL 1.0 -> compared at KL 0.4
            _ck_record("drdo_head", 0, [(0.2, 1.4), (0.4, 1.6)], oracle="trained"),
            _ck_record("dpo", 0, [(0.5, 1.5), (1.0, 1.2)]),
            # seed 1: compared at a given KL 0.25
            _ck_record("drdo_head", 1, [(0.5, 2.0)], oracle="trained"),
            _ck_record("dpo", 1, [(0.5, 1.0)])]
    got = study.kl_matched_gain(recs, "drdo_head", "dpo", 0, oracle="trained")
    # DRDO at 0.4: 1.6; DPO from the SFT point (0, 1.0) to (0.5, 1.5) at 0.4: 1.4
    assert got[0]["kl"] == pytest.approx(0.4) and got[0]["diff"] == pytest.approx(0.2)
    assert got[1]["kl"] == pytest.approx(0.5) and got[1]["diff"] == pytest.approx(1.0)
    at = study.kl_matched_gain(recs, "drdo_head", "dpo", 0, oracle="trained", kl=0.25)
    assert at[1]["r_variant"] == pytest.approx(1.5) and at[1]["r_baseline"] == pytest.approx(1.0)
    assert np.isnan(study.kl_matched_gain(recs, "drdo_head", "dpo", 0, oracle="trained", kl=5.0)[0]["diff"])
    assert study.frontier(recs[2], recs[0], gold="sample") == [(0.0, 0.0), (0.2, pytest.approx(0.4)), (0.4, pytest.approx(0.6))]


def test_student_oracle_gap_per_seed():
    fit = lambda a, o: {"acc_true": a, "oracle_acc_true": o, "acc_labels": a - 0.1, "oracle_acc_labels": o}  # noqa
    recs = [_ck_record("drdo_head", 0, [], oracle="trained", fit=fit(0.70, 0.72)),
            _ck_record("drdo_head", 1, [], oracle="trained", fit=fit(0.66, 0.60)),
            _ck_record("drdo_head", 1, [], oracle="true_reward", fit=fit(0.9, 1.0)),
            _ck_record("dpo", 0, [])]
    got = study.student_oracle_gap(recs, "drdo_head", 0, "trained")
    assert got == {0: pytest.approx(-0.02), 1: pytest.approx(0.06)}
    assert study.student_oracle_gap(recs, "drdo_head", 0, "trained", against="labels")[0] == pytest.approx(-0.12)


# ------------------------------------------------------------------------------------------------------ reading
def _records(cfg, effects, rng_seed=0, n=60):
    """Synthetic cell records: per_prompt r* = base + effect(variant, noise) + noise; tie margins / Δlog π(y_l) by
    variant."""
    rng = np.random.default_rng(rng_seed)
    recs = []
    for cell in study.expand_grid(cfg):
        e = effects.get((cell.variant, cell.noise), 0.0) if cell.variant != "sft" else 0.0
        seed_shift = 0.02 * cell.seed
        r = 2.0 + e + seed_shift + 0.05 * rng.standard_normal(n)
        tm = effects.get((cell.variant, "tie"), 0.0) + 0.05 * rng.standard_normal(40)
        dl = effects.get((cell.variant, "dl"), 0.0) + 0.05 * rng.standard_normal(80)
        nev = (rng.random(n) < 0.5 + effects.get((cell.variant, "never"), 0.0)).astype(float)
        lpm = -12.0 - 10 * effects.get((cell.variant, "never"), 0.0) + 0.3 * rng.standard_normal(n)
        recs.append({"cell": dataclasses.asdict(cell), "key": cell.name,
                     "metrics": {"gold_greedy": float(r.mean()), "gold_sample": float(r.mean()), "kl": 0.1,
                                 "entropy": 5.0, "tie_margin_growth": float(tm.mean()), "dlogp_w": 0.0,
                                 "dlogp_l": float(dl.mean()), "seconds": 1.0},
                     "per_prompt": {"r_greedy": r.tolist(), "r_sample": r.tolist(), "never_preferred": nev.tolist(),
                                    "log_preferred_mass": lpm.tolist()},
                     "per_pair": {"tie_margin_growth": tm.tolist(), "dlogp_l": dl.tolist()},
                     "p_star_bins": [{"p_low": 0.45, "p_high": 0.55, "n": 10, "dlogp_l": float(dl.mean()),
                                      "dlogp_w": 0.0, "logp_w": -5.0, "logp_l": -6.0, "margin_growth": 0.0}],
                     "margin_curve": [[0, 0.0], [2, float(tm.mean())]]})
    return recs


def _verdicts(rows):
    return {r["claim"]: r["verdict"] for r in rows}


def test_reading_supports_when_the_numbers_do():
    cfg = _cfg(oracle_kinds=["trained"], n_bootstrap=500)
    eff = {("drdo_head", 0): 0.3, ("drdo_head", 1): 0.28, ("dpo", 0): 0.3, ("dpo", 1): -0.2,
           ("edpo", 0): 0.3, ("edpo", 1): -0.1, ("dpo", "tie"): 1.0, ("edpo", "tie"): 0.8, ("dpo", "dl"): -2.0,
           ("dpo", "never"): 0.3, ("edpo", "never"): 0.3}
    v = _verdicts(study.reading(_records(cfg, eff), cfg))
    assert v["Lemma 1b (DPO's margin on p* = ½ pairs grows)"] == "supports"
    assert v["Lemma 1c (DPO drives π(y_l) down)"] == "supports"
    assert v["Lemma 1c (DPO moves mass off the preferred responses)"] == "supports"
    assert v["Lemma 2 (e-DPO's margin on p* = ½ pairs grows)"] == "supports"
    assert v["Lemma 2 (e-DPO moves mass off the preferred responses)"] == "supports"
    assert v["Robustness (DRDO (r̂ head) vs DPO)"] == "supports"
    assert v["Robustness (DRDO (r̂ head) vs e-DPO)"] == "supports"
    assert v["Sec. 5 (DRDO (r̂ head) earns more r* than DPO)"] == "supports"  # +0.14 pooled over the two levels
    # several students: one set of robustness / Sec. 5 claims each
    cfg2 = _cfg(oracle_kinds=["trained"], n_bootstrap=300, methods=["drdo_head", "drdo_logprob", "dpo", "edpo"],
                student=["drdo_head", "drdo_logprob"])
    v2 = _verdicts(study.reading(_records(cfg2, {**eff, ("drdo_logprob", 0): 0.3, ("drdo_logprob", 1): -0.2}),
                                 cfg2))
    assert v2["Sec. 5 (DRDO (r̂ head) earns more r* than DPO)"] == "supports"
    assert v2["Sec. 5 (DRDO (r̂ = β·z) earns more r* than DPO)"] == "cannot tell"  # the same effects as DPO's
    sentences = study.reading_sentences(_records(cfg, eff), cfg)
    # these records carry no reward fits or checkpoints: those two claims say so, every other one has its interval
    assert all("no finished cells" in s for s in sentences if s.startswith(("Title claim", "At equal KL")))
    assert all("[" in s and "interval" in s for s in sentences if not s.startswith(("Title claim", "At equal KL")))


def test_reading_contradicts_when_the_numbers_do():
    cfg = _cfg(oracle_kinds=["trained"], n_bootstrap=500)
    eff = {("drdo_head", 0): 0.3, ("drdo_head", 1): -0.3, ("dpo", 0): 0.3, ("dpo", 1): 0.29,
           ("dpo", "tie"): -1.0, ("dpo", "dl"): 1.0, ("dpo", "never"): -0.3}
    v = _verdicts(study.reading(_records(cfg, eff), cfg))
    assert v["Lemma 1b (DPO's margin on p* = ½ pairs grows)"] == "contradicts"
    assert v["Lemma 1c (DPO drives π(y_l) down)"] == "contradicts"
    assert v["Lemma 1c (DPO moves mass off the preferred responses)"] == "contradicts"
    assert v["Robustness (DRDO (r̂ head) vs DPO)"] == "contradicts"
    assert v["Sec. 5 (DRDO (r̂ head) earns more r* than DPO)"] == "contradicts"  # -0.30 pooled


def test_reading_cannot_tell_on_null_effects_missing_cells_or_a_failed_gate():
    cfg = _cfg(oracle_kinds=["trained"], n_bootstrap=500)
    v = _verdicts(study.reading(_records(cfg, {}), cfg))
    assert v["Robustness (DRDO (r̂ head) vs DPO)"] == "cannot tell"
    assert v["Lemma 1b (DPO's margin on p* = ½ pairs grows)"] == "cannot tell"
    assert v["Sec. 5 (DRDO (r̂ head) earns more r* than DPO)"] == "cannot tell"
    recs = [r for r in _records(cfg, {("dpo", 1): -1.0}) if r["cell"]["variant"] != "drdo_head"]
    assert _verdicts(study.reading(recs, cfg))["Robustness (DRDO (r̂ head) vs DPO)"] == "cannot tell"
    eff = {("dpo", "tie"): 1.0}
    rows = study.reading(_records(cfg, eff), cfg, gate_results=[{"status": "failed"}])
    assert {r["verdict"] for r in rows} == {"cannot tell"} and all("gate" in r["why"] for r in rows)


def test_verdict_needs_the_p_value_and_the_interval():
    est = {"effect": 0.1, "ci_low": 0.01, "ci_high": 0.2, "p": 0.01, "n": 10, "n_seeds": 3, "level": 0.95,
           "per_seed": {0: 0.2, 1: 0.15, 2: -0.05}}
    assert study.verdict(est)[0] == "supports" and study.verdict(est, -1)[0] == "contradicts"
    assert study.verdict(est, p=0.2)[0] == "cannot tell"  # e.g. a Holm-adjusted p above 0.05
    assert study.verdict({**est, "ci_low": -0.01})[0] == "cannot tell"  # the interval includes 0
    assert study.verdict(est, min_seeds=4) == ("cannot tell", "3 seed(s), fewer than 4")


def test_reading_needs_min_seeds():
    cfg = _cfg(oracle_kinds=["trained"], n_bootstrap=300, seeds=[0, 1])
    v = _verdicts(study.reading(_records(cfg, {("dpo", "tie"): 1.0}), cfg))
    assert v["Lemma 1b (DPO's margin on p* = ½ pairs grows)"] == "cannot tell"
    cfg = _cfg(oracle_kinds=["trained"], n_bootstrap=300, seeds=[0, 1], min_seeds=2)
    v = _verdicts(study.reading(_records(cfg, {("dpo", "tie"): 1.0}), cfg))
    assert v["Lemma 1b (DPO's margin on p* = ½ pairs grows)"] == "supports"


def test_summary_and_figures_from_records(tmp_path):
    cfg = _cfg(oracle_kinds=["trained", "true_reward"], n_bootstrap=200)
    recs = _records(cfg, {("dpo", 1): -0.5})
    summ = study.summary_table(recs, cfg)
    row = summ[(summ.variant == "dpo") & (summ.noise == cfg.noise_name(1))].iloc[0]
    assert row["Δr*_greedy vs SFT"] == pytest.approx(-0.5, abs=0.05) and row["Δ greedy high"] < 0
    from drdo_lib.plots.study import plot_all

    files = plot_all(recs, cfg, tmp_path, summary=summ)
    assert {p.name for p in files} >= {"study_gold_vs_noise.png", "study_frontier.pdf", "study_pyl_collapse.png",
                                       "study_tie_margin.png"}


# ------------------------------------------------------------------------------------------ runner: resumability
class _Interrupted(Exception):
    """Stands for a kill / Ctrl-C in the middle of a cell."""


def test_interrupted_study_recomputes_no_finished_cell(tmp_path, monkeypatch):
    run = _run(tmp_path)
    cfg = _cfg(seeds=[0, 1], methods=["dpo"], oracle_kinds=["true_reward"])
    calls, interrupt = [], [True]

    def fake_cell(run_, cfg_, cell, **kw):
        calls.append(cell)
        if interrupt[0] and len(calls) == 3:
            raise _Interrupted("interrupted after two cells")
        return {"metrics": {"gold_greedy": float(len(calls))}, "per_prompt": {}, "p_star_bins": [], "margin_curve": []}

    monkeypatch.setattr(study, "run_cell", fake_cell)
    with pytest.raises(_Interrupted):
        study.run(run, cfg, progress=False)
    finished = sorted(p.name for p in study.cells_dir(run).glob("*.json"))
    assert len(finished) == 2 and not list(study.cells_dir(run).glob(".*tmp"))
    first_two = calls[:2]
    calls.clear()
    interrupt[0] = False
    df = study.run(run, cfg, progress=False)
    assert len(df) == len(study.expand_grid(cfg)) == 8
    assert not set(first_two) & set(calls)  # no finished cell recomputed
    assert len(calls) == 8 - 2
    calls.clear()
    study.run(run, cfg, progress=False)
    assert calls == []
    # a shard runs only its cells
    recs, missing = study.load_cells(run, cfg)
    assert len(recs) == 8 and not missing


def test_shards_partition_the_grid(tmp_path, monkeypatch):
    run = _run(tmp_path)
    cfg = _cfg(seeds=[0], methods=["dpo", "ipo"], oracle_kinds=["true_reward"])
    seen = []
    monkeypatch.setattr(study, "run_cell", lambda r, c, cell, **k: seen.append(cell) or
                        {"metrics": {}, "per_prompt": {}, "p_star_bins": [], "margin_curve": []})
    for i in range(3):
        study.run(run, cfg, shard=f"{i}/3", progress=False)
    assert sorted(map(str, seen)) == sorted(map(str, study.expand_grid(cfg))) and len(seen) == len(set(seen))


def test_study_section_validates_through_the_run(tmp_path):
    run = _run(tmp_path, study_section={"methods": ["dpo"], "seeds": [0]})
    assert run.config(study.StudyConfig, "study").selected == ("dpo",)
    with pytest.raises(ValueError, match="unknown setting"):
        _run(tmp_path, study_section={"metods": ["dpo"]})


def test_cli_study_user_errors_exit_2(tmp_path, capsys):
    from drdo_lib.cli import main

    prof = tmp_path / "p.yaml"
    prof.write_text(f"profile: clitest\nruns_dir: {tmp_path / 'runs'}\nstudy:\n  seeds: [0]\n")
    assert main(["study", "--config", str(prof), "--shard", "3/2"]) == 2
    assert main(["study", "--config", str(prof), "metods=[dpo]"]) == 2
    assert "unknown setting" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ one real cell (tiny)
def test_real_tiny_grid_end_to_end(tmp_path):
    """SFT (2 steps, micro model), DPO and DRDO (true_reward) cells, measured for real; rerun reads them back
    (25 s on 2 loaded cores)."""
    run = _run(tmp_path)
    cfg = _cfg(seeds=[0], methods=["drdo_logprob", "dpo"], oracle_kinds=["true_reward"], noise_levels=[
        {"temperature": 1.0, "tie_fraction": 0.3}], n_prompts=4, n_train_prompts=4, max_tie_pairs=8, margin_every=1,
        reading_oracle="true_reward", student="drdo_logprob", baselines=["dpo"], n_bootstrap=200,
        checkpoint_steps=[1], checkpoint_prompts=3, fit_pairs=6)
    df = study.run(run, cfg, progress=False)
    assert set(df.variant) == {"sft", "drdo_logprob", "dpo"}
    sft = df[df.variant == "sft"].iloc[0]
    assert sft.kl == 0 and sft.dlogp_l == 0 and sft.tie_margin_growth == 0
    recs, missing = study.load_cells(run, cfg)
    assert not missing
    dpo = next(r for r in recs if r["cell"]["variant"] == "dpo")
    assert [s for s, _ in dpo["margin_curve"]] == [0, 1, 2] and dpo["margin_curve"][0][1] == pytest.approx(0, abs=1e-4)
    assert len(dpo["per_prompt"]["r_greedy"]) == 4 and dpo["metrics"]["n_tie_pairs"] >= 1
    # the r*-KL frontier: steps 1 and 2 (the last) on 3 prompts; the SFT cell's single point is KL 0
    assert [p["step"] for p in dpo["checkpoints"]] == [1, 2] and len(dpo["checkpoints"][0]["per_prompt"]["kl"]) == 3
    sft_rec = next(r for r in recs if r["cell"]["variant"] == "sft")
    assert sft_rec["checkpoints"][0]["step"] == 0 and sft_rec["checkpoints"][0]["kl"] == pytest.approx(0, abs=1e-5)
    assert sft_rec["checkpoints"][0]["gold_greedy"] == pytest.approx(np.mean(sft_rec["per_prompt"]["r_greedy"][:3]))
    # every cell records its training pairs' flip rate; a trained cell its training summary; DRDO its reward fit
    assert all(0 <= r["flip_rate"]["flip_rate"] <= 1 and r["metrics"]["flip_rate"] == r["flip_rate"]["flip_rate"]
               for r in recs)
    assert dpo["training"]["logged_steps"] == [1, 2] and "grad_norm" in dpo["training"]["final"]
    drdo = next(r for r in recs if r["cell"]["variant"] == "drdo_logprob")
    assert drdo["training"]["mean"]["grad_norm_focal_lm"] > 0 and "grad_norm_reward_head" not in drdo["training"]["mean"]
    assert drdo["reward_fit"]["n_pairs"] == 6 and drdo["reward_fit"]["oracle_acc_true"] == 1.0  # the Oracle is r*
    assert drdo["metrics"]["fit_acc_true"] == drdo["reward_fit"]["acc_true"]
    mtimes = {p: p.stat().st_mtime_ns for p in study.cells_dir(run).glob("*.json")}
    study.run(run, cfg, progress=False)
    assert {p: p.stat().st_mtime_ns for p in study.cells_dir(run).glob("*.json")} == mtimes
    out = study.report(run, cfg)
    assert (run.figures / "study_reading.md").exists() and len(out["reading"]) >= 3
    assert len(out["testbed"]) == 1 and (run.figures / "study_testbed.csv").exists()  # measured per level x seed
    assert "## The testbed, measured" in (run.figures / "study_reading.md").read_text()


def test_gate_is_run_once_per_seed_recorded_or_required(tmp_path, monkeypatch):
    """gate: record runs the sanity gate on the seed's SFT run (real: micro SFT, 2 DPO steps) and caches it; require
    raises GateFailed on a failed gate; the report's reading then says cannot tell."""
    from drdo_lib import gate

    run = _run(tmp_path, gate={"n_prompts": 4, "n_bootstrap": 100})
    cfg = _cfg(seeds=[0], methods=["dpo"], oracle_kinds=["true_reward"], gate="record",
               noise_levels=[{"temperature": 1.0}])
    res = study.ensure_gate(run, cfg, 0)
    assert res["status"] in ("passed", "failed") and res["n_prompts"] == 4

    def boom(*a, **k):
        raise AssertionError("the gate ran again")

    monkeypatch.setattr(gate, "run", boom)
    assert study.ensure_gate(run, cfg, 0) == res  # cached

    def failing(srun, gcfg):
        (srun.stage_dir("gate") / "result.json").write_text(json.dumps({"status": "failed", "advantage": -0.1}))
        raise gate.GateFailed("DPO did not beat SFT")

    run2 = _run(tmp_path / "b", gate={"n_prompts": 4, "n_bootstrap": 100})
    monkeypatch.setattr(gate, "run", failing)
    assert study.ensure_gate(run2, cfg, 0)["status"] == "failed"  # record: goes on
    with pytest.raises(gate.GateFailed, match="DPO did not beat SFT"):
        study.ensure_gate(run2, dataclasses.replace(cfg, gate="require"), 0)


def test_real_tiny_grid_with_trained_oracle_and_ensemble(tmp_path):
    """The trained-Oracle path: one Oracle + 3-member ensemble per (noise level, seed), built once, read by the
    DRDO and e-DPO cells (micro models, 2 steps each)."""
    run = _run(tmp_path)
    ocfg = {"max_prompt_length": 96, "max_length": 128, "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1, "max_steps": 2, "max_eval_rows": 8, "per_device_eval_batch_size": 16}
    cfg = _cfg(seeds=[0], methods=["drdo_head", "edpo"], oracle_kinds=["trained"], oracle=ocfg,
               noise_levels=[{"temperature": 1.0, "tie_fraction": 0.3}], n_prompts=4, n_train_prompts=4,
               max_tie_pairs=8, margin_every=1, n_bootstrap=200)
    df = study.run(run, cfg, progress=False)
    assert sorted(df.variant) == ["drdo_head", "edpo", "sft"] and set(df.oracle) == {"trained", "none"}
    drdo = next(r for r in study.load_cells(run, cfg)[0] if r["cell"]["variant"] == "drdo_head")
    assert drdo["training"]["final"]["grad_norm_reward_head"] > 0  # the head's own norm, beside the LM's
    assert set(drdo["reward_fit"]) >= {"acc_labels", "acc_oracle", "acc_true", "pearson_oracle", "oracle_acc_true"}
    drun = study.data_run(run, cfg, 0, 0)
    assert (drun.oracle_model / "config.json").exists()
    assert [p.name for p in drun.ensemble_members()] == ["member_0", "member_1", "member_2"]
    marker = json.loads((drun.dir / "oracle" / "study_key.json").read_text())
    assert marker["value"]["dir"] == str(drun.oracle_model)


def test_sft_restart_rule_retrains_a_stuck_policy_with_another_init_seed(tmp_path, monkeypatch):
    """study.sft_min_reward: an SFT policy below it on training prompts is retrained (init seed s + 1000 k, same
    data); the attempts are recorded and reported; the rule is part of the SFT key."""
    from drdo_lib import sft

    run = _run(tmp_path)
    cfg = _cfg(seeds=[3], methods=["dpo"], oracle_kinds=["true_reward"], sft_min_reward=1.0, sft_attempts=3,
               sft_check_prompts=5)
    inits, rewards = [], iter([-0.6, 2.1, 9.9])

    def fake_sft(srun, *a, seed=None, **k):
        inits.append(seed)
        (srun.stage_dir("sft") / "metrics.json").write_text(json.dumps({"loss_curve": [{"step": 1, "loss": 3.1}]}))
        return srun.sft_model

    monkeypatch.setattr(sft, "run", fake_sft)
    monkeypatch.setattr(study, "sft_check_reward", lambda *a, **k: next(rewards))
    study.ensure_sft(run, cfg, 0, 3)
    assert inits == [3, 1003]  # stuck first attempt retrained once, then accepted
    hist = study.sft_history(run, cfg, 3)
    assert [h["accepted"] for h in hist] == [False, True] and hist[0]["train_prompt_reward"] == -0.6
    study.ensure_sft(run, cfg, 0, 3)  # cached: no third attempt
    assert inits == [3, 1003]
    assert study.sft_key(run, cfg, 0, 3) != study.sft_key(run, _cfg(seeds=[3], methods=["dpo"]), 0, 3)
    # without the rule: one attempt with the seed itself, no check
    plain = _cfg(seeds=[4], methods=["dpo"], oracle_kinds=["true_reward"])
    study.ensure_sft(run, plain, 0, 4)
    assert inits[-1] == 4 and "train_prompt_reward" not in study.sft_history(run, plain, 4)[0]
    with pytest.raises(ValueError, match="sft_attempts"):
        _cfg(sft_attempts=0)


def test_a_variant_may_ask_for_the_measured_flip_rate_but_not_a_misspelt_one():
    from drdo_lib.config import ConfigError
    from drdo_lib.run import Run

    prof = {"profile": "stest", "study": {"methods": ["cdpo"], "variants": {"cdpo": {"label_noise_eps": "flip_rate"}}}}
    Run.create(prof).validate()
    prof["study"]["variants"]["cdpo"]["label_noise_eps"] = "flip_rat"
    with pytest.raises(ConfigError, match="label_noise_eps"):
        Run.create(prof).validate()
