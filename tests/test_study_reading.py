"""The study's statistics (drdo_lib.stats) and reading (drdo_lib.study_reading) on synthetic cell records and
hand computations: seeds as the unit of replication, Holm–Bonferroni, the measured testbed facts, the seed notes.
No training."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from drdo_lib import stats, study, study_reading
from drdo_lib.winrates import bootstrap_ci

ROB = "Robustness (DRDO (r̂ head) vs DPO)"
SEC5 = "Sec. 5 (DRDO (r̂ head) earns more r* than DPO)"


def _cfg(**kw) -> study.StudyConfig:
    base = dict(methods=["drdo_head", "dpo", "edpo"], noise_levels=[{"temperature": 0.5}, {"temperature": 2.0}],
                oracle_kinds=["trained"], seeds=[0, 1, 2], gate="off", n_bootstrap=500)
    base.update(kw)
    return study.StudyConfig(**base)


def _records(cfg, effects, *, n=200, sd=0.05, rng_seed=0):
    """Synthetic cell records. ``effects[(variant, noise)]``: a number or ``{seed: number}`` added to that cell's
    per-prompt r*; every cell of a seed shares its held-out prompts (one hash per seed)."""
    rng = np.random.default_rng(rng_seed)
    recs = []
    for cell in study.expand_grid(cfg):
        e = effects.get((cell.variant, cell.noise), 0.0)
        e = e.get(cell.seed, 0.0) if isinstance(e, dict) else e
        r = 2.0 + 0.1 * cell.seed + e + sd * rng.standard_normal(n)
        pairs = sd * rng.standard_normal(50)
        recs.append({"cell": dataclasses.asdict(cell), "key": cell.name,
                     "metrics": {"heldout_prompts": f"prompts-of-seed-{cell.seed}"},
                     "per_prompt": {"r_greedy": r.tolist(), "r_sample": r.tolist(),
                                    "log_preferred_mass": (-12 + sd * rng.standard_normal(n)).tolist(),
                                    "never_preferred": np.ones(n).tolist()},
                     "per_pair": {"tie_margin_growth": pairs.tolist(), "dlogp_l": pairs.tolist()}})
    return recs


def _row(rows, claim):
    return next(r for r in rows if r["claim"] == claim)


# ------------------------------------------------------------------------------------------- hand computations
def test_holm_against_a_hand_computation():
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> max(0.06, 0.04) = 0.06
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # nan is not a member of the family; the cap at 1
    adj = stats.holm([0.5, float("nan"), 0.4])
    assert adj[0] == pytest.approx(0.8) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.8)
    assert stats.holm([0.6, 0.7, 0.9]).tolist() == [1.0, 1.0, 1.0]


def test_seed_t_interval_against_the_closed_form_for_two_degrees_of_freedom():
    # seed means 1, 2, 3: mean 2, sd 1, se 1/sqrt(3); with 2 df the t distribution has a closed form:
    # P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2, and its 97.5 % quantile is 4.302653
    t = stats.seed_t_interval([1.0, 2.0, 3.0])
    se = 1 / math.sqrt(3)
    assert t["low"] == pytest.approx(2 - 4.302653 * se, abs=1e-5) and t["high"] == pytest.approx(2 + 4.302653 * se,
                                                                                                  abs=1e-5)
    tt = 2 / se
    assert t["p"] == pytest.approx(1 - tt / math.sqrt(tt * tt + 2), rel=1e-9)
    assert math.isnan(stats.seed_t_interval([1.0])["low"])


def test_hierarchical_bootstrap_reduces_to_the_plain_bootstraps():
    rng = np.random.default_rng(1)
    v = rng.standard_normal(400)
    # one seed: a bootstrap of that seed's mean, ~ mean +- 1.96 sd / sqrt(n)
    b = stats.hierarchical_bootstrap({0: v}, n_boot=4000)
    half = 1.96 * v.std() / math.sqrt(len(v))
    assert (b["high"] - b["low"]) / 2 == pytest.approx(half, rel=0.1)
    # one value per seed: a bootstrap of the seed means
    b = stats.hierarchical_bootstrap({s: [x] for s, x in enumerate(v)}, n_boot=4000)
    assert (b["high"] - b["low"]) / 2 == pytest.approx(half, rel=0.1)
    # every seed weighs the same, whatever its number of units
    assert stats.hierarchical_bootstrap({0: [1.0] * 100, 1: [3.0]})["mean"] == pytest.approx(2.0)
    # the two-sided p-value: far from 0 -> the smallest possible, centred on 0 -> large
    assert stats.hierarchical_bootstrap({s: v + 5 for s in range(4)}, n_boot=999)["p"] == pytest.approx(2 / 1000)
    assert stats.hierarchical_bootstrap({s: v - v.mean() for s in range(4)})["p"] > 0.5


def test_seed_effect_takes_the_wider_interval_and_says_which():
    rng = np.random.default_rng(2)
    # seeds disagree, little prompt noise: the t interval is the wider one
    e = stats.seed_effect({s: m + 0.01 * rng.standard_normal(300) for s, m in enumerate([0.0, 0.5, 0.2])})
    assert e["method"] == "seed-level t" and e["ci_high"] - e["ci_low"] == pytest.approx(e["t_high"] - e["t_low"])
    assert e["half_width"] == pytest.approx((e["t_high"] - e["t_low"]) / 2) and e["p"] == e["t_p"]
    assert e["per_seed"][1] == pytest.approx(0.5, abs=0.01) and e["n_seeds"] == 3 and e["n"] == 900
    # seeds agree exactly, a few noisy prompts each: the bootstrap is the wider one
    base = rng.standard_normal(5)
    e = stats.seed_effect({s: base for s in range(3)})
    assert e["method"] == "hierarchical bootstrap" and e["p"] == e["boot_p"]
    assert stats.seed_effect({s: base for s in range(3)}, interval="t")["method"] == "seed-level t"
    with pytest.raises(ValueError):
        stats.seed_effect({0: [1.0]}, interval="nope")


def test_an_interval_from_two_seeds_is_wider_than_the_prompt_pooled_one():
    rng = np.random.default_rng(3)
    vals = {0: 0.1 + 0.3 * rng.standard_normal(300), 1: 0.3 + 0.3 * rng.standard_normal(300)}
    new = stats.seed_effect(vals, n_boot=1000)
    pooled = np.concatenate(list(vals.values()))
    lo, hi = bootstrap_ci(pooled, groups=[f"{s}:{i}" for s in vals for i in range(len(vals[s]))], n_boot=1000)
    assert new["ci_high"] - new["ci_low"] > 3 * (hi - lo)  # 12.7 x the seed spread (1 df) vs prompt noise only
    assert lo > 0 and new["ci_low"] < 0  # the old interval excluded 0, the seed-level one does not


# ------------------------------------------------------------------------------------ the reading, synthetic cells
def test_seeds_that_disagree_read_cannot_tell_however_many_prompts():
    cfg = _cfg()
    # the robustness contrast per seed: +0.02, +0.40, +0.05 (all positive but far apart), 2,000 prompts per cell
    recs = _records(cfg, {("dpo", 1): {0: -0.02, 1: -0.40, 2: -0.05}}, n=2000)
    row = _row(study.reading(recs, cfg), ROB)
    assert row["verdict"] == "cannot tell" and row["verdict_holm"] == "cannot tell"
    assert row["method"] == "seed-level t" and row["ci_low"] < 0 < row["effect"]
    assert sorted(row["per_seed"]) == [0, 1, 2] and row["per_seed"][1] == pytest.approx(0.40, abs=0.02)
    # the old reading (every (seed, prompt) its own cluster, every seed on the same side) said "supports"
    did = study_reading.contrast([[("drdo_head", "trained", 1, 1.0), ("drdo_head", "trained", 0, -1.0),
                                   ("dpo", "none", 1, -1.0), ("dpo", "none", 0, 1.0)]], "r_greedy")(
        study_reading._index(recs), cfg)
    pooled = np.concatenate([did[s] for s in cfg.seeds])
    lo, _ = bootstrap_ci(pooled, groups=[f"{s}:{i}" for s in cfg.seeds for i in range(len(did[s]))], n_boot=500)
    assert lo > 0 and all(np.mean(did[s]) > 0 for s in cfg.seeds)
    # signs that disagree: cannot tell too
    recs = _records(cfg, {("dpo", 1): {0: -0.3, 1: 0.2, 2: -0.25}}, n=2000)
    assert _row(study.reading(recs, cfg), ROB)["verdict"] == "cannot tell"


def test_many_seeds_that_agree_read_supports_raw_and_after_holm():
    seeds = list(range(10))
    cfg = _cfg(seeds=seeds)
    rng = np.random.default_rng(4)
    shift = {s: -(0.2 + 0.05 * rng.standard_normal()) for s in seeds}  # DPO loses 0.2 +- 0.05 more r* per seed
    rows = study.reading(_records(cfg, {("dpo", 1): shift}, n=100), cfg)
    row = _row(rows, ROB)
    assert row["verdict"] == "supports" and row["verdict_holm"] == "supports" and row["n_seeds"] == 10
    assert row["p_holm"] >= row["p"] and row["half_width"] < 0.1
    # a claim with no effect stays "cannot tell" and its detectable effect is printed
    lem = _row(rows, "Lemma 1b (DPO's margin on p* = ½ pairs grows)")
    assert lem["verdict"] == "cannot tell" and np.isfinite(lem["half_width"])
    assert "smallest detectable |effect|" in lem["sentence"] and "Holm" in lem["sentence"]


def test_holm_can_turn_a_raw_verdict_into_cannot_tell():
    cfg = _cfg(n_bootstrap=200)
    rows = study.reading(_records(cfg, {}), cfg)
    p = [r["p"] for r in rows]
    assert np.allclose([r["p_holm"] for r in rows], stats.holm(p), equal_nan=True)
    # a claim whose raw p is just under 0.05 in a family of 8 cannot survive Holm
    est = {"effect": 0.1, "ci_low": 0.001, "ci_high": 0.2, "p": 0.04, "n_seeds": 3, "level": 0.95}
    adj = stats.holm([0.04] + [0.5] * 7)[0]
    assert stats.verdict(est)[0] == "supports" and stats.verdict(est, p=adj)[0] == "cannot tell"


def test_pooling_over_levels_keeps_a_prompt_one_unit():
    cfg = _cfg()
    recs = _records(cfg, {("drdo_head", 0): 0.1, ("drdo_head", 1): 0.3}, n=50)
    vals = study_reading.contrast([[("drdo_head", "trained", n, 1.0), ("dpo", "none", n, -1.0)] for n in (0, 1)],
                                  "r_greedy")(study_reading._index(recs), cfg)
    assert {len(v) for v in vals.values()} == {50} and np.mean(vals[0]) == pytest.approx(0.2, abs=0.03)
    # cells measured on other prompts are not paired: that seed drops out
    for r in recs:
        if r["cell"]["seed"] == 2 and r["cell"]["variant"] == "dpo":
            r["metrics"]["heldout_prompts"] = "other prompts"
    vals = study_reading.contrast([[("drdo_head", "trained", 1, 1.0), ("dpo", "none", 1, -1.0)]],
                                  "r_greedy")(study_reading._index(recs), cfg)
    assert sorted(vals) == [0, 1]


def test_the_claims_are_a_table_that_takes_new_entries(monkeypatch):
    cfg = _cfg()
    base = [c.claim for c in study_reading.claims(cfg)]
    extra = study_reading.Claim("DPO beats SFT", "DPO − SFT", "r* of DPO minus SFT", +1,
                                study_reading.contrast([[("dpo", "none", 0, 1.0), ("sft", "none", 0, -1.0)]],
                                                       "r_greedy"))
    monkeypatch.setattr(study_reading, "CLAIM_FAMILIES", [*study_reading.CLAIM_FAMILIES, lambda c: [extra]])
    rows = study.reading(_records(cfg, {("dpo", 0): 0.5}), cfg)
    assert [r["claim"] for r in rows] == base + ["DPO beats SFT"]
    assert _row(rows, "DPO beats SFT")["verdict"] == "supports"
    # one Holm family: every claim with data (these records carry no reward fits or checkpoints)
    with_data = [r for r in rows if r["n"]]
    assert len([r for r in rows if np.isfinite(r["p"])]) == len(with_data) > len(base) - 3


# --------------------------------------------------------------------------------------------- testbed facts
def test_label_facts_on_a_hand_made_case():
    # 10 pairs: 4 tied; of the 6 decided, 2 labelled against r*
    rc = [1, 1, 2, 2, 3, 0, 1, 2, 0.5, 1]
    rr = [1, 1, 2, 2, 1, 1, 0, 3, 0.0, 0]
    f = study_reading.label_facts(rc, rr)
    assert f["pairs"] == 10 and f["tied"] == pytest.approx(0.4) and f["flip"] == pytest.approx(2 / 6)
    assert f["ceiling"] == pytest.approx(0.6 * (4 / 6) + 0.4 * 0.5)
    assert math.isnan(f["flip_expected"])


def test_the_ceiling_is_what_an_r_star_predictor_scores_against_bradley_terry_labels():
    rng = np.random.default_rng(5)
    n, T = 200_000, 1.0
    r0 = rng.integers(0, 4, n).astype(float)
    r1 = rng.integers(0, 4, n).astype(float)
    first = rng.random(n) < 1 / (1 + np.exp(-(r0 - r1) / T))  # the label: Bradley-Terry on r*
    rc, rr = np.where(first, r0, r1), np.where(first, r1, r0)
    f = study_reading.label_facts(rc, rr, T)
    # the predictor: the response of higher r* wins, a fair coin on ties; scored against the labels
    coin = rng.random(n) < 0.5
    pred_first = np.where(r0 == r1, coin, r0 > r1)
    assert f["ceiling"] == pytest.approx(np.mean(pred_first == first), abs=0.005)
    assert f["tied"] == pytest.approx(0.25, abs=0.005) and f["flip_expected"] == pytest.approx(f["flip"], abs=0.005)


def test_testbed_facts_are_measured_from_each_levels_data(tmp_path):
    """The data stage only (no training): the shares follow the generated pairs, not the settings."""
    from drdo_lib.data.synthetic import SyntheticTestbed
    from drdo_lib.run import Run

    prof = {"profile": "stest", "seed": 0, "runs_dir": str(tmp_path / "runs"), "figures_dir": str(tmp_path / "f"),
            "data": {"source": "synthetic", "n_train": 200, "n_valid": 8, "n_sft": 16, "n_sft_test": 8, "n_ood": 2}}
    run = Run.create(prof).validate()
    cfg = _cfg(methods=["dpo"], noise_levels=[{"temperature": 0.5, "tie_fraction": 0.0},
                                              {"temperature": 2.0, "tie_fraction": 0.6}], seeds=[0, 1])
    df = study.testbed_facts(run, cfg)
    assert len(df) == 4 and list(df.tie_fraction) == [0.0, 0.0, 0.6, 0.6]
    for _, row in df.iterrows():  # the same numbers straight from the generator's rows
        syn = study._data_cfg(study.data_run(run, cfg, int(row.noise), int(row.seed)).profile).synthetic_config(
            int(row.seed))
        tb = SyntheticTestbed(syn)
        rows = tb.comparison_rows(200, "train")
        w = [tb.true_reward(r["info"]["post"], r["summaries"][r["choice"]]["text"]) for r in rows]
        lo = [tb.true_reward(r["info"]["post"], r["summaries"][1 - r["choice"]]["text"]) for r in rows]
        d = np.array(w) - np.array(lo)
        assert row.pairs == 200 and row.tied == pytest.approx(np.mean(d == 0))
        assert row.flip == pytest.approx(np.mean(d[d != 0] < 0))
    assert (df[df.noise == 0].tied > 0).all()  # tie_fraction 0 still has exactly tied pairs (r* is discrete)
    text = study_reading.reading_markdown("t", "h", [], cfg, facts=df)
    assert "generator tie_fraction" in text and f"{df.tied[df.noise == 1].mean():.3f}" in text


# ------------------------------------------------------------------------------------------------- seed notes
def test_seed_notes_report_attempts_stuck_seeds_and_seeds_left_out():
    cfg = _cfg(seeds=[1, 2], sft_min_reward=1.0, dropped_seeds={0: "its SFT stayed on the plateau in 3 attempts"})
    hist = {1: [{"init_seed": 1, "train_loss_last": 3.1, "train_prompt_reward": -0.6, "accepted": False},
                {"init_seed": 1001, "train_loss_last": 2.6, "train_prompt_reward": 2.1, "accepted": True}],
            2: [{"init_seed": 2, "train_loss_last": 3.2, "train_prompt_reward": 0.3, "accepted": False}]}
    recs = [{"cell": {"seed": 1}}]
    lines = study_reading.seed_notes(cfg, hist, {1: {"status": "passed", "advantage": 0.5, "ci_low": 0.3,
                                                     "ci_high": 0.7}}, recs)
    assert lines[0].startswith("- seed 1: SFT in 2 attempt(s)") and "init seed 1001" in lines[0]
    assert "sanity gate passed" in lines[0] and "cells in the reading" in lines[0]
    assert "no attempt reached the restart threshold" in lines[1] and "not in the reading" in lines[1]
    assert lines[2] == "- seed 0: left out of the grid before any preference training — its SFT stayed on the " \
                       "plateau in 3 attempts."
    with pytest.raises(ValueError, match="dropped_seeds"):
        _cfg(seeds=[0, 1], dropped_seeds={0: "x"})
    with pytest.raises(ValueError, match="interval"):
        _cfg(interval="widest")


def test_reading_markdown_shows_raw_and_holm_verdicts_side_by_side():
    cfg = _cfg()
    rows = study.reading(_records(cfg, {("dpo", 1): -0.3}), cfg)
    text = study_reading.reading_markdown("title", "header", rows, cfg, seed_lines=["- seed 0: x."])
    assert "| claim | verdict | Holm | effect [interval] | detectable | p / Holm p | per seed |" in text
    claim_lines = [line for line in text.splitlines()
                   if line.startswith(("| Lemma", "| Robustness", "| Sec. 5", "| Title claim", "| At equal KL"))]
    assert len(claim_lines) == len(rows) and sum(line.startswith("- ") for line in text.splitlines()) == len(rows) + 1
    table = study_reading.reading_table(rows)
    assert {"verdict", "verdict (Holm)", "p", "p (Holm)", "detectable |effect|", "per seed"} <= set(table.columns)


def test_title_and_equal_kl_claims_are_read_from_reward_fits_and_checkpoints():
    cfg = _cfg(seeds=[0, 1, 2, 3, 4, 5])
    recs = _records(cfg, {})
    rng = np.random.default_rng(3)
    gaps = {}
    for r in recs:
        c = r["cell"]
        if c["variant"] == "drdo_head" and c["oracle"] == "trained":
            g = -0.05 + 0.005 * rng.standard_normal()
            gaps.setdefault(c["seed"], []).append(g)
            r["reward_fit"] = {"acc_true": 0.6 + g, "oracle_acc_true": 0.6, "acc_labels": 0.5, "oracle_acc_labels": 0.5}
        # every trajectory is linear from the SFT point (KL 0, r* 1): DRDO's slope exceeds DPO's by 0.3 per nat
        slope = {"drdo_head": 0.8, "dpo": 0.5, "edpo": 0.5}.get(c["variant"])
        if c["variant"] == "sft":
            r["checkpoints"] = [{"step": 0, "kl": 0.0, "gold_greedy": 1.0, "gold_sample": 1.0}]
        elif slope is not None:
            top = 1.0 if c["variant"] == "drdo_head" else 2.0  # DRDO moves less far: compared at its KL 1.0
            r["checkpoints"] = [{"step": s, "kl": top * s / 40, "gold_greedy": 1.0 + slope * top * s / 40,
                                 "gold_sample": 0.0} for s in (10, 20, 40)]
    rows = study_reading.reading(recs, cfg)
    title = _row(rows, "Title claim (DRDO (r̂ head) is as good a reward model as its Oracle)")
    assert title["effect"] == pytest.approx(np.mean([np.mean(v) for v in gaps.values()]), abs=1e-9)
    assert title["n_seeds"] == 6 and title["verdict"] == "contradicts"  # 0.05 worse on every seed
    kl = _row(rows, "At equal KL (DRDO (r̂ head) vs DPO, most noisy level)")
    assert kl["effect"] == pytest.approx(0.3) and kl["per_seed"] == pytest.approx({s: 0.3 for s in range(6)})
    assert kl["verdict"] == "supports"
    assert sum(r["claim"].startswith(("Title claim", "At equal KL")) for r in rows) == 3  # 1 title + 2 baselines
