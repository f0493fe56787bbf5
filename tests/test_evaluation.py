"""Tests of drdo_lib.evaluation: win-rate grids and tables against hand counts, judged head-to-heads, the pipeline on
tiny models saved in the run layout (the statistics are tested in test_winrates.py, scoring in test_scoring.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drdo_lib.evaluation import (
    EvalConfig,
    discover_policies,
    generate_all,
    head_to_head,
    paired,
    reward_advantage_grid,
    score_generations,
    table2_form,
    win_rate_grid,
)
from drdo_lib.scoring import RewardScorer
from tiny_lms import tiny_lm, tiny_tokenizer


# ------------------------------------------------------------------------------------------- tables
def _fake_generations():
    """Three policies, 4 prompts × 2 temperatures × 2 seeds, rewards chosen by hand."""
    rows = []
    rew = {"sft": 1.0, "drdo_D_all": 2.0, "dpo_D_all": 2.0}
    for pol, base in rew.items():
        method, split = (pol.split("_", 1) + [None])[:2]
        for pid in range(4):
            for t in (0.2, 0.9):
                for seed in (0, 1):
                    r = base + (0.5 if (pol == "drdo_D_all" and pid == 0) else 0.0) \
                        - (3.0 if pol == "sft" and pid == 3 else 0.0)
                    rows.append({"policy": pol, "method": method, "split": split, "prompt_id": pid,
                                 "prompt": f"p{pid}", "temperature": t, "seed": seed, "sample": 0,
                                 "response": f"{pol}-{pid}", "oracle_reward": r})
    return pd.DataFrame(rows)


def test_win_rate_grid_and_table2_form():
    gen = _fake_generations()
    cfg = EvalConfig(baselines=("dpo",), splits=("D_all",), temperatures=(0.2, 0.9), head_to_head_temperature=0.2,
                     seeds=(0, 1), n_bootstrap=100)
    grid = win_rate_grid(gen, cfg, "oracle_reward")
    assert len(grid) == 4  # {sft, dpo} × 2 temperatures
    vs_sft = grid[grid.baseline == "sft"].iloc[0]
    assert (vs_sft.wins, vs_sft.ties, vs_sft.losses, vs_sft.n) == (8, 0, 0, 8) and vs_sft.win_rate == 1.0
    vs_dpo = grid[grid.baseline == "dpo"].iloc[0]
    # drdo beats dpo only on prompt 0 (2 seeds); ties elsewhere
    assert (vs_dpo.wins, vs_dpo.ties, vs_dpo.losses) == (2, 6, 0)
    assert vs_dpo.win_rate == pytest.approx(0.25) and vs_dpo.tie_rate == pytest.approx(0.75)
    assert vs_dpo.n_seeds == 2 and vs_dpo.seed_sd == 0.0
    wide = table2_form(grid)
    assert list(wide.columns) == [(0.2, "sft"), (0.2, "dpo"), (0.9, "sft"), (0.9, "dpo")]
    assert wide.loc["D_all", (0.9, "dpo")] == pytest.approx(0.25)


def test_paired_matches_on_prompt_temperature_seed_sample():
    gen = _fake_generations()
    p = paired(gen, "drdo_D_all", "sft", "oracle_reward")
    assert len(p) == 16
    row = p[(p.prompt_id == 3)].iloc[0]
    assert (row.a, row.b) == (2.0, -2.0)


def test_reward_advantage_grid_raw_and_zscore():
    gen = _fake_generations()
    refs = pd.DataFrame({"prompt_id": range(4), "prompt": [f"p{i}" for i in range(4)], "reference": ["r"] * 4,
                         "oracle_reward": [1.5, 1.5, 1.5, 1.5]})
    cfg = EvalConfig(baselines=("dpo",), splits=("D_all",), temperatures=(0.2, 0.9), head_to_head_temperature=0.2,
                     n_bootstrap=100, reward_normalization="none")
    adv = reward_advantage_grid(gen, refs, cfg, "oracle_reward")
    d = adv[(adv.policy == "drdo_D_all") & (adv.versus == "sft") & (adv.temperature == 0.2)].iloc[0]
    assert d.advantage == pytest.approx((1.5 + 1 + 1 + 4) / 4)
    d = adv[(adv.policy == "dpo_D_all") & (adv.versus == "reference") & (adv.temperature == 0.9)].iloc[0]
    assert d.advantage == pytest.approx(0.5)
    z = reward_advantage_grid(gen, refs, dataclasses_replace(cfg, reward_normalization="zscore"), "oracle_reward")
    pool = pd.concat([gen.oracle_reward, refs.oracle_reward])
    merged = adv.merge(z, on=["policy", "versus", "temperature"], suffixes=("_raw", "_z"))
    np.testing.assert_allclose(merged.advantage_z, merged.advantage_raw / pool.std(ddof=0))


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_head_to_head_with_a_reward_judge_matches_hand_count(tmp_path):
    gen = _fake_generations()
    refs = pd.DataFrame({"prompt_id": range(4), "prompt": [f"p{i}" for i in range(4)],
                         "reference": ["long reference text here", "x", "x", "x"]})
    reward = dict(zip(gen.response, gen.oracle_reward))
    reward.update({"long reference text here": 10.0, "x": 0.0})
    cfg = EvalConfig(baselines=("dpo",), splits=("D_all",), temperatures=(0.2, 0.9), head_to_head_temperature=0.9,
                     n_bootstrap=100)
    summary, judged = head_to_head(gen, refs, [("DRDO vs. DPO", "drdo_D_all", "dpo_D_all"),
                                               ("Gold vs. DRDO", "reference", "drdo_D_all")],
                                   cfg=cfg, judge_model="gold", template="tldr_reference", cache_dir=tmp_path,
                                   reward_fn=lambda p, y: reward[y])
    s = summary.set_index("comparison")
    assert (s.loc["DRDO vs. DPO", "wins"], s.loc["DRDO vs. DPO", "ties"], s.loc["DRDO vs. DPO", "losses"]) == (1, 3, 0)
    assert s.loc["DRDO vs. DPO", "win_rate"] == pytest.approx((1 + 3 * 0.5) / 4)  # ties count 1/2 in the judge summary
    assert (s.loc["Gold vs. DRDO", "wins"], s.loc["Gold vs. DRDO", "losses"]) == (1, 3)
    assert s.loc["Gold vs. DRDO", "template"] == "vs_human"
    assert len(judged) == 8 and set(judged.comparison) == {"DRDO vs. DPO", "Gold vs. DRDO"}


@pytest.mark.parametrize("bad", [dict(student="x"), dict(baselines=("drdo",)), dict(n_prompts=0), dict(ci_level=1.0),
                                 dict(head_to_head_temperature=0.3), dict(reward_normalization="rank"),
                                 dict(prompt_template="alpaca"), dict(judge_order="twice"), dict(top_p=1.5),
                                 dict(max_length=10, max_prompt_length=20)])
def test_eval_config_validation(bad):
    with pytest.raises(ValueError):
        EvalConfig(**bad)


# ------------------------------------------------------------------------------------------- pipeline
def test_pipeline_on_tiny_policies_in_the_run_layout(tmp_path):
    from drdo_lib.models import CausalLMWithRewardHead

    tok = tiny_tokenizer()
    runs = tmp_path / "runs"
    dirs = {"sft": runs / "p" / "sft" / "final", "drdo_D_all": runs / "p" / "policy" / "drdo_D_all" / "final",
            "dpo_D_all": runs / "p" / "policy" / "dpo_D_all" / "final"}
    for i, (name, d) in enumerate(dirs.items()):
        lm = tiny_lm(tok, seed=i)
        if name.startswith("drdo"):  # the DRDO student carries a reward head
            CausalLMWithRewardHead.from_causal_lm(lm, head_seed=0).save_pretrained(d)
        else:
            lm.save_pretrained(d)
        tok.save_pretrained(d)
    cfg = EvalConfig(baselines=("dpo", "edpo"), splits=("D_all", "D_hc_he"), temperatures=(0.5, 0.9),
                     head_to_head_temperature=0.5, max_new_tokens=4, batch_size=4, seeds=(0, 1), n_bootstrap=50,
                     device="cpu")
    from drdo_lib.run import Run

    pols = discover_policies(Run.create({"profile": "p"}, runs_dir=runs), cfg)
    assert set(pols) == {"sft", "drdo_D_all", "dpo_D_all"}  # edpo and D_hc_he are missing (logged)
    prompts = pd.DataFrame({"prompt_id": ["a", "b", "c"],
                            "prompt": ["POST: the cat sat TL;DR:", "POST: dog ran far TL;DR:", "POST: mat TL;DR:"]})
    gen = generate_all(pols, prompts, cfg, tmp_path / "eval", name="in_dist", progress=False)
    assert len(gen) == 3 * 3 * 2 * 2
    assert set(gen.columns) >= {"policy", "method", "split", "prompt_id", "temperature", "seed", "response"}
    oracle = RewardScorer(CausalLMWithRewardHead.from_causal_lm(tiny_lm(tok, seed=9), head_seed=2), tok,
                          device="cpu", progress=False)
    refs = prompts.assign(reference=["cat sat", "dog", "mat"])
    scored, refs_scored = score_generations(gen, {"oracle_reward": oracle,
                                                  "gold_reward": lambda p, y: np.array([len(s) for s in y], float)},
                                            refs)
    np.testing.assert_allclose(scored.gold_reward, scored.response.str.len())
    grid = win_rate_grid(scored, cfg, "oracle_reward")
    assert set(grid.baseline) == {"sft", "dpo"} and set(grid.temperature) == {0.5, 0.9}
    assert (grid.n == 3 * 2).all()
    adv = reward_advantage_grid(scored, refs_scored, cfg, "oracle_reward")
    assert set(adv.versus) == {"sft", "reference"}
    # generating again reuses the files (same settings, same models)
    again = generate_all(pols, prompts, cfg, tmp_path / "eval", name="in_dist", progress=False)
    pd.testing.assert_frame_equal(again, gen)


def _fake_run_layout(runs, profile, tb, methods=("drdo", "dpo", "edpo"), splits=("D_all",)):
    """Untrained tiny policies + oracle saved where the training stages put them."""
    from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer

    tok = build_tokenizer("tiny-gpt2", vocab_words=tb.vocabulary + ["SUBREDDIT", "TITLE", "POST", "TL", "DR"])
    size = {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 128}
    dirs = {"sft/final": 0, "oracle/final": 1}
    dirs.update({f"policy/{m}_{s}/final": 2 + i for i, (m, s) in enumerate((m, s) for m in methods for s in splits)})
    for rel, seed in dirs.items():
        lm = build_causal_lm("tiny-gpt2", tok, seed=seed, size=size)
        model = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=seed) if rel.startswith(("oracle", "policy/drdo")) \
            else lm
        model.save_pretrained(runs / profile / rel)
        tok.save_pretrained(runs / profile / rel)
    return tok


def test_run_evaluation_end_to_end_writes_every_table(tmp_path):
    import json as _json

    from drdo_lib import evaluation
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.run import Run

    runs = tmp_path / "runs"
    run = Run.create({"profile": "p", "data": {"n_train": 50, "n_valid": 20, "n_sft": 20, "n_sft_test": 12,
                                               "n_ood": 10}}, seed=0, runs_dir=runs)
    data = data_stage.run(run)
    _fake_run_layout(runs, "p", data.testbed)
    cfg = EvalConfig(splits=("D_all",), n_prompts=6, n_ood_prompts=5, temperatures=(0.2, 0.9),
                     head_to_head_temperature=0.9, max_new_tokens=4, batch_size=8, seeds=(0, 1), n_bootstrap=50,
                     alpaca_prompts="in_dist", device="cpu")
    res = evaluation.run(run, cfg, progress=False)  # reads the data stage's artefact
    out = runs / "p" / "eval"
    for f in ("config.json", "win_rates.csv", "advantage.csv", "table1.csv", "table1_judgements.csv", "table3.csv",
              "summary.json", "scored_in_dist.jsonl", "scored_ood.jsonl"):
        assert (out / f).exists(), f
    wr = res["win_rates"]
    assert set(wr.reward) == {"oracle_reward", "gold_reward"}
    assert set(wr.baseline) == {"sft", "dpo", "edpo"} and (wr.n == 6 * 2).all()
    # gold win rates are the hand count of r* on the scored completions
    sc = res["scored"]["in_dist"]
    a = sc[(sc.policy == "drdo_D_all") & (sc.temperature == 0.9)].sort_values(["prompt_id", "seed"])
    b = sc[(sc.policy == "sft") & (sc.temperature == 0.9)].sort_values(["prompt_id", "seed"])
    ra = np.array([data.testbed.true_reward(p, y) for p, y in zip(a.prompt, a.response)])
    rb = np.array([data.testbed.true_reward(p, y) for p, y in zip(b.prompt, b.response)])
    row = wr[(wr.reward == "gold_reward") & (wr.baseline == "sft") & (wr.temperature == 0.9)].iloc[0]
    assert (row.wins, row.ties) == (int((ra > rb).sum()), int((ra == rb).sum()))
    t1 = res["table1"]
    assert list(t1.comparison) == ["DRDO vs. DPO", "DRDO vs. e-DPO", "Gold vs. DRDO", "Gold vs. DPO", "Gold vs. e-DPO"]
    assert (t1.judged + t1.discarded == 5).all()
    t3 = res["table3"]
    assert set(t3.comparison) == {"DRDO vs. DPO", "DRDO vs. e-DPO"} and (t3.n_total == 6).all()
    mo = _json.loads((out / "alpaca_eval" / "drdo_D_all" / "model_outputs.json").read_text())
    assert len(mo) == 6 and set(mo[0]) >= {"instruction", "output", "generator"}
    assert set(res["advantage"].versus) == {"sft", "reference"} and set(res["advantage"]["set"]) == {"in_dist", "ood"}


# ------------------------------------------------------------------------------------------- paper numbers
def test_paper_numbers_match_the_paper_text():
    from pathlib import Path

    from drdo_lib import paper_numbers as pn

    paper = Path(__file__).resolve().parents[2] / "shared" / "paper" / "000_e78bc0cc26b8d448.txt"
    if not paper.exists():
        pytest.skip(f"paper text not found at {paper}")
    lines = paper.read_text().splitlines()
    for model in pn.PAPER_TABLE2_MODELS:  # Table 2: one tab-separated line per model
        (line,) = [x for x in lines if x.startswith(model + "\t")]
        assert [float(v) for v in line.split("\t")[1:]] == list(pn.TABLE2.loc[model].values)
    table_rows = [x.split("\t") for x in lines if x.count("\t") == 2 and x.strip().endswith("%")]
    pairs = [(int(w), round(float(r.rstrip("%")) / 100, 6)) for _, w, r in table_rows]
    assert pairs == list(zip(pn.TABLE1.wins, pn.TABLE1.win_rate)) + list(zip(pn.TABLE3.wins, pn.TABLE3.win_rate))
    # Table 5 rows: Conf, Edit, Train, Validation
    t5 = [x.split("\t") for x in lines if x.count("\t") == 4 and x.split("\t")[1].replace(".", "").isdigit()]
    assert [(float(c), float(e), int(t.replace(",", "")), int(v.replace(",", ""))) for _, c, e, t, v in t5] == \
        list(pn.TABLE5[["mean_confidence", "mean_edit_distance", "n_train", "n_valid"]].itertuples(index=False,
                                                                                                   name=None))


def test_eval_prompt_sets_on_the_real_samples():
    import os
    from pathlib import Path

    from drdo_lib.data import DataConfig, load_sources
    from drdo_lib.evaluation import eval_prompt_sets, highlights_summary

    folder = Path(os.environ.get("DRDO_DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    if not (folder / "cnn_dailymail").is_dir() or not (folder / "alpaca_eval").is_dir():
        pytest.skip(f"real data samples not found at {folder} (set DRDO_DATA_DIR)")
    data = load_sources(DataConfig(source="local", data_dir=str(folder.resolve())), seed=0)
    cfg = EvalConfig(n_prompts=7, n_ood_prompts=5, n_alpaca=3, ood_max_article_words=50)
    sets = eval_prompt_sets(data, cfg, data_dir=data.data_dir)
    assert {k: len(v) for k, v in sets.items()} == {"in_dist": 7, "ood": 5, "alpaca": 3}
    for df in sets.values():
        assert df["prompt_id"].is_unique and (df["reference"].str.len() > 0).all()
    assert sets["in_dist"]["prompt"].str.endswith("TL;DR:").all()
    ood = sets["ood"]
    assert ood["prompt"].str.startswith("SUBREDDIT: r/news\nTITLE: ").all()
    assert ood["prompt"].str.endswith("TL;DR:").all()
    assert all(len(p.split("POST: ", 1)[1].split()) <= 51 for p in ood["prompt"])  # 50 words + "TL;DR:"
    assert not ood["reference"].str.contains("\n").any()
    assert highlights_summary("A b .\nC d .") == "A b C d"
    # the same settings give the same subset
    again = eval_prompt_sets(data, cfg, data_dir=data.data_dir)
    assert list(again["ood"]["prompt_id"]) == list(ood["prompt_id"])


def test_score_generations_scores_each_distinct_pair_once():
    gen = pd.DataFrame({"prompt": ["p1", "p1", "p2", "p1", "p2"], "response": ["a", "a", "a", "bb", "a"]})
    seen = []

    def scorer(prompts, responses):
        seen.extend(zip(prompts, responses))
        return np.array([len(p) * 10 + len(r) for p, r in zip(prompts, responses)], float)

    refs = pd.DataFrame({"prompt_id": [1], "prompt": ["p1"], "reference": ["ccc"]})
    out, r = score_generations(gen, {"x": scorer}, refs)
    assert sorted(seen) == sorted({("p1", "a"), ("p2", "a"), ("p1", "bb"), ("p1", "ccc")})
    np.testing.assert_array_equal(out["x"], [21, 21, 21, 22, 21])
    assert r["x"].tolist() == [23.0]


def test_head_to_head_with_an_llm_judge_on_a_local_server(tmp_path, monkeypatch):
    """Table 1 through the real openai client against the judge tests' loopback server: the verdicts follow the
    content, and a rerun is served from the cache without a single new request."""
    import sys
    from pathlib import Path

    pytest.importorskip("openai")
    sys.path.insert(0, str(Path(__file__).parent))
    from openai_stub_server import StubServer

    monkeypatch.setenv("DRDO_EVAL_JUDGE_KEY", "sk-local-test")
    rows = []
    for pid in range(6):
        for pol in ("drdo_D_all", "dpo_D_all"):
            good = (pol == "drdo_D_all") == (pid < 4)  # DRDO's answer is the GOOD one on 4 of 6 prompts
            rows.append({"policy": pol, "prompt_id": pid, "prompt": f"Post number {pid}: something happened.",
                         "temperature": 0.7, "seed": 0, "sample": 0,
                         "response": f"{'GOOD' if good else 'BAD'} summary {pol} {pid}"})
    gen = pd.DataFrame(rows)
    refs = pd.DataFrame({"prompt_id": range(6), "prompt": [""] * 6, "reference": [f"human {i}" for i in range(6)]})
    fast = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0}
    with StubServer() as srv:
        cfg = EvalConfig(temperatures=(0.7,), head_to_head_temperature=0.7, judge_base_url=srv.base_url,
                         judge_api_key_env="DRDO_EVAL_JUDGE_KEY",
                         n_bootstrap=100)
        s1, j1 = head_to_head(gen, refs, [("DRDO vs. DPO", "drdo_D_all", "dpo_D_all")], cfg=cfg, judge_model="stub",
                              template="tldr_reference", cache_dir=tmp_path, judge_kwargs=fast)
        n_requests = len(srv.state.requests)
        s2, j2 = head_to_head(gen, refs, [("DRDO vs. DPO", "drdo_D_all", "dpo_D_all")], cfg=cfg, judge_model="stub",
                              template="tldr_reference", cache_dir=tmp_path, judge_kwargs=fast)
        assert len(srv.state.requests) == n_requests == 6
        assert set(srv.state.auth_headers) == {"Bearer sk-local-test"}  # the key named by judge_api_key_env
    assert (s1.loc[0, "wins"], s1.loc[0, "losses"], s1.loc[0, "judged"]) == (4, 2, 6)
    assert j1["winner"].tolist() == ["a"] * 4 + ["b"] * 2 and j2["cached"].all()
    assert j1["swapped"].any()  # seeded random A/B order


def test_eval_config_names_the_key_variable_of_a_non_openai_judge():
    """An LLM judge at another base_url needs judge_api_key_env, checked when the config is built."""
    local = "http://127.0.0.1:8000/v1"
    with pytest.raises(ValueError, match="judge_api_key_env"):
        EvalConfig(judge_model="llama-3", judge_base_url=local)
    with pytest.raises(ValueError, match="judge_api_key_env"):
        EvalConfig(alpaca_judge_model="llama-3", judge_base_url=local)
    cfg = EvalConfig(judge_model="llama-3", judge_base_url=local, judge_api_key_env="LOCAL_JUDGE_KEY")
    assert cfg.judge_connection() == {"base_url": local, "api_key_env": "LOCAL_JUDGE_KEY"}
    EvalConfig(judge_model="gpt-4o")  # api.openai.com: OPENAI_API_KEY by default
    EvalConfig(judge_model="gold", judge_base_url=local)  # offline judges send nothing
    with pytest.raises(ValueError, match="NAME"):
        EvalConfig(judge_model="gpt-4o", judge_api_key_env="sk-abc 123")


# ------------------------------------------------------------------------------------------- Table 1: ties dropped
def test_excl_ties_interval_is_a_ratio_bootstrap_over_judged_pairs():
    from drdo_lib.evaluation import excl_ties_interval

    # 30 wins, 10 losses, 60 ties, 5 discarded: point 0.75 over the 40 decisive pairs
    outcomes = ["a"] * 30 + ["b"] * 10 + ["tie"] * 60 + ["discarded"] * 5
    lo, hi = excl_ties_interval(outcomes, n_boot=4000, level=0.95, seed=0)
    assert lo < 0.75 < hi
    # independent check: the normal approximation over the 40 decisive pairs, half-width 1.96 * sqrt(p(1-p)/40)
    half = 1.96 * np.sqrt(0.75 * 0.25 / 40)
    assert (hi - lo) / 2 == pytest.approx(half, abs=0.03)
    assert excl_ties_interval(["a"] * 5 + ["tie"] * 3, n_boot=200) == (1.0, 1.0)
    assert all(np.isnan(excl_ties_interval(["tie"] * 4 + ["discarded"], n_boot=200)))
    assert all(np.isnan(excl_ties_interval([], n_boot=200)))


def test_head_to_head_reports_win_rate_excl_ties_with_its_own_interval(tmp_path):
    gen = _fake_generations()
    refs = pd.DataFrame({"prompt_id": range(4), "prompt": [f"p{i}" for i in range(4)],
                         "reference": ["long reference text here", "x", "x", "x"]})
    reward = dict(zip(gen.response, gen.oracle_reward))
    reward.update({"long reference text here": 10.0, "x": 0.0})
    cfg = EvalConfig(baselines=("dpo",), splits=("D_all",), temperatures=(0.2, 0.9), head_to_head_temperature=0.9,
                     n_bootstrap=200)
    summary, judged = head_to_head(gen, refs, [("DRDO vs. DPO", "drdo_D_all", "dpo_D_all"),
                                               ("Gold vs. DRDO", "reference", "drdo_D_all")],
                                   cfg=cfg, judge_model="gold", template="tldr_reference", cache_dir=tmp_path,
                                   reward_fn=lambda p, y: reward[y])
    s = summary.set_index("comparison")
    # DRDO vs DPO: 1 win, 3 ties, 0 losses -> 1.0 once ties are dropped (0.625 with ties counted 1/2)
    assert s.loc["DRDO vs. DPO", "win_rate_excl_ties"] == pytest.approx(1.0)
    assert (s.loc["DRDO vs. DPO", "win_rate_excl_ties_ci_low"], s.loc["DRDO vs. DPO", "win_rate_excl_ties_ci_high"]) \
        == (1.0, 1.0)
    # Gold vs DRDO: 1 win, 3 losses -> 0.25, the interval from the judgements (bootstrap of 4 pairs)
    g = s.loc["Gold vs. DRDO"]
    assert g["win_rate_excl_ties"] == pytest.approx(0.25)
    assert 0.0 <= g["win_rate_excl_ties_ci_low"] <= 0.25 <= g["win_rate_excl_ties_ci_high"] <= 1.0
    assert g["win_rate_excl_ties_ci_high"] > g["win_rate_excl_ties_ci_low"]


def test_plot_head_to_head_draws_ours_excl_ties_beside_the_papers():
    import matplotlib

    matplotlib.use("Agg")
    from drdo_lib.plots.evaluation import plot_head_to_head

    ours = pd.DataFrame({"label": ["A", "B"], "win_rate": [0.6, 0.55], "ci_low": [0.5, 0.45], "ci_high": [0.7, 0.65],
                         "win_rate_excl_ties": [0.7, 0.6], "win_rate_excl_ties_ci_low": [0.55, float("nan")],
                         "win_rate_excl_ties_ci_high": [0.85, float("nan")]})
    paper = pd.DataFrame({"label": ["A", "B"], "win_rate": [0.8, 0.79]})
    from matplotlib.container import BarContainer

    ax = plot_head_to_head(ours, paper, label="label").axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    widths = {t.get_text(): [round(b.get_width(), 2) for b in c] for c, t in zip(bars, ax.get_legend().get_texts())}
    assert widths == {"ours, ties ½": [0.6, 0.55], "ours, ties dropped": [0.7, 0.6],
                      "paper (ties dropped)": [0.8, 0.79]}
    ax = plot_head_to_head(ours.drop(columns=["win_rate_excl_ties"]), paper, label="label").axes[0]
    assert len([c for c in ax.containers if isinstance(c, BarContainer)]) == 2


def test_cli_evaluate_stage_writes_the_evaluation(tmp_path):
    import yaml

    from drdo_lib.cli import main
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.run import Run

    runs = tmp_path / "runs"
    prof = {"profile": "p", "seed": 0, "runs_dir": str(runs),
            "data": {"n_train": 50, "n_valid": 20, "n_sft": 20, "n_sft_test": 12, "n_ood": 10},
            "policy": {"methods": ["drdo", "dpo", "edpo"], "splits": ["D_all"]},
            "eval": {"splits": ["D_all"], "n_prompts": 4, "n_ood_prompts": 3, "temperatures": [0.9],
                     "head_to_head_temperature": 0.9, "max_new_tokens": 3, "batch_size": 8, "seeds": [0],
                     "n_bootstrap": 20, "alpaca_prompts": "in_dist", "device": "cpu"}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(prof))
    _fake_run_layout(runs, "p", data_stage.run(Run.create(prof)).testbed)
    assert main(["train", "--config", str(path), "--stage", "evaluate"]) == 0
    out = runs / "p" / "eval"
    summary = _json_load(out / "summary.json")
    assert summary["policies"] == ["dpo_D_all", "drdo_D_all", "edpo_D_all", "sft"] and summary["n_prompts"]["ood"] == 3
    assert (out / "table1.csv").exists() and (out / "win_rates.csv").exists()


def _json_load(path):
    import json

    return json.loads(path.read_text())
