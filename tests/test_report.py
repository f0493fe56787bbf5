"""Tests of drdo_lib.report (notebook 06): verdict rules, merging with the paper's numbers, written files."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from drdo_lib import paper_numbers as pn
from drdo_lib import report


def test_verdict_rules():
    assert report.verdict(0.55, 0.7) == "above"
    assert report.verdict(0.3, 0.45) == "below"
    assert report.verdict(0.45, 0.55) == "inconclusive"
    assert report.verdict(0.5, 0.6) == "inconclusive"  # touching 0.5 is not above it
    assert report.verdict(float("nan"), 0.6) == "n/a"


def _t1():
    rows = [("DRDO vs. e-DPO", "D_all", 30, 5, 5, 0.81, 0.7, 0.9), ("DRDO vs. DPO", "D_all", 10, 5, 25, 0.31, 0.2, 0.45),
            ("DRDO vs. DPO", "D_hc_he", 20, 0, 20, 0.5, 0.4, 0.6), ("Gold vs. DRDO", "D_all", 36, 0, 4, 0.9, 0.8, 0.97)]
    df = pd.DataFrame(rows, columns=["comparison", "split", "wins", "ties", "losses", "win_rate", "ci_low", "ci_high"])
    return df.assign(discarded=0, judged=40, judge="gold")


def test_table1_beside_paper_merges_rows_and_verdicts():
    t = report.table1_beside_paper(_t1()).set_index(["comparison", "split"])
    assert t.loc[("DRDO vs. e-DPO", "D_all"), "paper_win_rate"] == pytest.approx(0.7827)
    assert t.loc[("DRDO vs. DPO", "D_hc_he"), "paper_wins"] == 746
    assert t.loc[("Gold vs. DRDO", "D_all"), "paper_win_rate"] == pytest.approx(0.5282)  # gold rows match by name
    assert t.loc[("DRDO vs. e-DPO", "D_all"), "vs_paper"] == "agrees"
    assert t.loc[("DRDO vs. DPO", "D_all"), "vs_paper"] == "disagrees"
    assert t.loc[("DRDO vs. DPO", "D_hc_he"), "vs_paper"] == "inconclusive"


def test_table2_summary_counts_cells_with_ties_half():
    from drdo_lib.winrates import win_rate

    rows = []
    for t in (0.2, 0.9):
        # 20 wins, 60 ties, 20 losses: win rate 0.2, but ties ½ gives exactly 0.5 -> not "below"
        r = win_rate([1.0] * 20 + [0.0] * 60 + [0.0] * 20, [0.0] * 20 + [0.0] * 60 + [1.0] * 20, n_boot=200)
        rows.append({"reward": "gold_reward", "split": "D_all", "baseline": "sft", "temperature": t, **r})
        r = win_rate([1.0] * 90 + [0.0] * 10, [0.0] * 100, n_boot=200)
        rows.append({"reward": "gold_reward", "split": "D_all", "baseline": "dpo", "temperature": t, **r})
        # 52 wins, 48 losses: the point estimate is above 0.5, its interval is not
        r = win_rate([1.0] * 52 + [0.0] * 48, [0.0] * 52 + [1.0] * 48, n_boot=200)
        rows.append({"reward": "gold_reward", "split": "D_all", "baseline": "edpo", "temperature": t, **r})
    s = report.table2_summary(pd.DataFrame(rows)).set_index("baseline")
    assert s.loc["sft", "ours_mean_win_rate"] == pytest.approx(0.2)
    assert s.loc["sft", "ours_mean_score"] == pytest.approx(0.5)
    assert s.loc["sft", "ours_cells_ci_below_0.5"] == 0 and s.loc["sft", "ours_cells_ci_above_0.5"] == 0
    assert s.loc["dpo", "ours_cells_ci_above_0.5"] == 2
    # counted the paper's way (point estimates) a cell can be "above" while its interval is not
    assert s.loc["edpo", "ours_cells_ci_above_0.5"] == 0 and s.loc["edpo", "ours_cells_point_above_0.5"] == 2
    assert s.loc["sft", "ours_cells_point_above_0.5"] == 0  # exactly 0.5 is not above
    paper = pn.table2_long()
    assert s.loc["dpo", "paper_mean"] == pytest.approx(paper[paper.baseline == "dpo"].win_rate.mean())
    assert s.loc["dpo", "paper_cells_point_above_0.5"] == int((paper[paper.baseline == "dpo"].win_rate > 0.5).sum())
    # the old, ambiguous names are gone: no column says "cells_above_0.5" without saying whose and how counted
    assert not {"cells_above_0.5", "cells_below_0.5", "paper_cells_above_0.5", "mean_win_rate"} & set(s.columns)


def test_oracle_gold_agreement_counts_directions():
    base = {"split": "D_all", "baseline": "sft"}
    wr = pd.DataFrame([
        {**base, "temperature": 0.2, "reward": "oracle_reward", "win_rate": 0.7, "loss_rate": 0.3},
        {**base, "temperature": 0.2, "reward": "gold_reward", "win_rate": 0.5, "loss_rate": 0.2},
        {**base, "temperature": 0.9, "reward": "oracle_reward", "win_rate": 0.4, "loss_rate": 0.6},
        {**base, "temperature": 0.9, "reward": "gold_reward", "win_rate": 0.3, "loss_rate": 0.1},
    ])
    a = report.oracle_gold_agreement(wr)
    assert a["cells"] == 2 and a["same_direction"] == 1


def test_reading_sentences_follow_the_numbers():
    t1 = report.table1_beside_paper(_t1())
    s = report.reading(t1, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {})
    assert "1 agree" in s[0] and "1 disagree" in s[0] and "1 inconclusive" in s[0]
    f4 = pd.DataFrame({"method": ["drdo", "dpo"], "logps_rejected_final": [-9.0, -4.0]})
    s = report.reading(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), f4, {})
    assert "DRDO is lowest, as in the paper" in s[0]
    s = report.reading(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), f4.assign(
        logps_rejected_final=[-1.0, -4.0]), {})
    assert "DPO is lowest and DRDO is 3.00 nats above it, unlike the paper" in s[0]
    s = report.reading(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), f4.assign(
        logps_rejected_final=[-4.05, -4.0]), {})
    assert "neither supported nor contradicted" in s[0]
    t5 = pd.DataFrame({"split": ["D_all", "D_hc_he", "D_lc_le"], "raw_conf": [5.0, 8.3, 3.6],
                       "strength_conf": [5.0, 4.9, 5.0]})
    s = report.reading(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, t5)
    assert "4.70 when the splits are cut on the raw" in s[0] and "the raw cut is closer" in s[0]


def test_results_markdown():
    md = report.results_markdown("mini", [("Table 1", report.table1_beside_paper(_t1()))], ["a sentence"],
                                 "fig3_reward_advantage_oracle.png", ["a note"])
    assert md.startswith("## Results (profile `mini`)") and "![Fig. 3" in md and "- a sentence" in md
    assert "| DRDO vs. e-DPO" in md


def test_load_eval_results_and_training_curves(tmp_path):
    from drdo_lib.run import Run

    run_ = Run.create({"profile": "p"}, runs_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="notebook 05"):
        report.load_eval_results(run_)
    d = tmp_path / "p" / "eval"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"judge_model": "gold"}))
    (d / "config.json").write_text("{}")
    _t1().to_csv(d / "table1.csv", index=False)
    (d / "table3.csv").write_text("\n")
    r = report.load_eval_results(run_)
    assert len(r["table1"]) == 4 and r["table3"].empty and r["win_rates"].empty
    run = tmp_path / "p" / "policy" / "drdo_D_all"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "logps_rejected": -s}) + "\n" for s in (1, 2, 3, 4)))
    curves = report.load_training_curves(run_)
    f = report.fig4_final_metrics(curves, last=2)
    assert f.loc[0, "logps_rejected_final"] == pytest.approx(-3.5) and f.loc[0, "logps_rejected_first"] == -1
    assert (f.loc[0, "method"], f.loc[0, "split"]) == ("drdo", "D_all")


def test_table3_beside_paper_carries_the_length_controlled_win_rate():
    t3 = pd.DataFrame({"comparison": ["DRDO vs. e-DPO", "DRDO vs. DPO"], "win_rate": [70.0, 40.0],
                       "ci_low": [60.0, 30.0], "ci_high": [80.0, 55.0], "lc_win_rate": [64.0, float("nan")],
                       "n_total": [50, 50]})
    t = report.table3_beside_paper(t3).set_index("comparison")
    assert t.loc["DRDO vs. e-DPO", "lc_win_rate"] == pytest.approx(0.64)  # a fraction, like win_rate
    assert pd.isna(t.loc["DRDO vs. DPO", "lc_win_rate"])
    assert t.loc["DRDO vs. e-DPO", "paper_win_rate"] == pytest.approx(0.6203)
    assert list(t["verdict"]) == ["above", "inconclusive"]
    assert "lc_win_rate" not in report.table3_beside_paper(t3.drop(columns="lc_win_rate"))


# ------------------------------------------------------------------------------------------------ reading
def test_table1_shows_win_rate_excl_ties_beside_the_papers():
    t1 = _t1().assign(win_rate_excl_ties=[30 / 35, 10 / 35, 0.5, 0.9], win_rate_excl_ties_ci_low=[0.7, 0.1, 0.3, 0.8],
                      win_rate_excl_ties_ci_high=[0.95, 0.45, 0.7, 1.0])
    t = report.table1_beside_paper(t1)
    cols = list(t.columns)
    # ours-with-ties-dropped sits right before the paper's rate (which dropped ties: its denominators are 926-943)
    assert cols.index("paper_win_rate") == cols.index("win_rate_excl_ties_ci_high") + 1
    assert cols.index("win_rate_excl_ties") == cols.index("ci_high") + 1
    t = t.set_index(["comparison", "split"])
    assert t.loc[("DRDO vs. e-DPO", "D_all"), "win_rate_excl_ties"] == pytest.approx(30 / 35)
    assert t.loc[("DRDO vs. e-DPO", "D_all"), "paper_judged"] == round(731 / 0.7827)  # the paper's denominator
    assert t.loc[("DRDO vs. DPO", "D_all"), "vs_paper_excl_ties"] == "disagrees"
    assert t.loc[("DRDO vs. DPO", "D_hc_he"), "vs_paper_excl_ties"] == "inconclusive"
    # an older table1.csv without the column: the point estimate from the counts, no interval
    old = report.table1_beside_paper(_t1()).set_index(["comparison", "split"])
    assert old.loc[("DRDO vs. DPO", "D_all"), "win_rate_excl_ties"] == pytest.approx(10 / 35)
    assert pd.isna(old.loc[("DRDO vs. DPO", "D_all"), "win_rate_excl_ties_ci_low"])


def _wr_both_rewards(gold_dpo_wins: int = 90):
    from drdo_lib.winrates import win_rate

    rows = []
    for t in (0.2, 0.9):
        r = win_rate([1.0] * gold_dpo_wins + [0.0] * (100 - gold_dpo_wins),
                     [0.0] * gold_dpo_wins + [1.0] * (100 - gold_dpo_wins), n_boot=200)
        rows.append({"reward": "gold_reward", "split": "D_all", "baseline": "dpo", "temperature": t, **r})
        r = win_rate([0.0] * 80 + [1.0] * 20, [1.0] * 80 + [0.0] * 20, n_boot=200)
        rows.append({"reward": "oracle_reward", "split": "D_all", "baseline": "dpo", "temperature": t, **r})
    # oracle rows first, as the evaluation writes them: the reading must still lead with r*
    return pd.DataFrame(rows).sort_values("reward", ascending=False, kind="stable")


def _fig3_both():
    rows = []
    for reward, adv in (("oracle_reward", -0.4), ("gold_reward", 0.3)):
        for vs in ("sft", "reference"):
            for t in (0.2, 0.9):
                rows.append({"method": "drdo", "split": "D_all", "versus": vs, "temperature": t, "advantage": adv,
                             "ci_low": adv - 0.1, "ci_high": adv + 0.1, "n": 40, "reward": reward})
    return pd.DataFrame(rows)


def _kind(sentence: str) -> str:
    return "gold" if sentence.startswith("r*") else "oracle" if sentence.startswith("Oracle") else "other"


def test_reading_leads_with_the_true_reward_then_the_oracle():
    wr = _wr_both_rewards()
    s = report.reading(report.table1_beside_paper(_t1()), report.table2_summary(wr), pd.DataFrame(), _fig3_both(),
                       pd.DataFrame(), report.oracle_gold_agreement(wr))
    kinds = [_kind(x) for x in s]
    assert kinds[0] == "gold", s[0]
    gold_idx = [i for i, k in enumerate(kinds) if k == "gold"]
    oracle_idx = [i for i, k in enumerate(kinds) if k == "oracle"]
    assert gold_idx and oracle_idx and max(gold_idx) < min(oracle_idx)
    # Table 1 judged by r* ("gold" judge) is an r* reading; Table 2 and Fig. 3 appear under both rewards
    assert any("Table 1" in s[i] for i in gold_idx) and any("Table 2" in s[i] for i in gold_idx)
    assert any("Fig. 3" in s[i] for i in gold_idx) and any("Fig. 3" in s[i] for i in oracle_idx)
    assert any("Table 2" in s[i] for i in oracle_idx)
    assert any("points the same way as r*" in s[i] for i in oracle_idx)  # the agreement sentence is the oracle's
    # the numbers drive the words: r*'s Fig. 3 advantage (+0.30) and the oracle's (-0.40) are where they belong
    assert any("+0.30" in s[i] for i in gold_idx if "Fig. 3" in s[i])
    assert any("-0.40" in s[i] for i in oracle_idx if "Fig. 3" in s[i])
    g2 = next(s[i] for i in gold_idx if "Table 2" in s[i])
    assert "2/2 cells with the 95 % interval above 0.5" in g2
    s2 = report.reading(pd.DataFrame(), report.table2_summary(_wr_both_rewards(50)), pd.DataFrame(), pd.DataFrame(),
                        pd.DataFrame(), {})
    g2b = next(x for x in s2 if _kind(x) == "gold" and "Table 2" in x)
    assert "0/2 cells with the 95 % interval above 0.5" in g2b and g2b != g2


def test_reading_without_a_true_reward_says_so_and_leads_with_the_judge_and_oracle():
    wr = _wr_both_rewards()
    wr = wr[wr["reward"] == "oracle_reward"]
    t1 = report.table1_beside_paper(_t1().assign(judge="gpt-4o"))
    fig3 = _fig3_both()
    s = report.reading(t1, report.table2_summary(wr), pd.DataFrame(), fig3[fig3["reward"] == "oracle_reward"],
                       pd.DataFrame(), {})
    assert "no true reward r*" in s[0]
    assert not any(_kind(x) == "gold" for x in s)
    assert "Table 1" in s[1] and "gpt-4o" in s[1]
    assert any(_kind(x) == "oracle" and "Table 2" in x for x in s)


def test_reading_table1_sentence_uses_the_papers_numbers_and_ours_excl_ties():
    t1 = report.table1_beside_paper(_t1())
    s = report.reading(t1, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {})
    h2h = pn.TABLE1[~pn.TABLE1["comparison"].str.startswith("Gold")]["win_rate"]
    assert f"{100 * h2h.min():.0f}–{100 * h2h.max():.0f} %" in s[0]
    assert f"{10 / 35:.2f} excluding ties" in s[0]  # DRDO vs. DPO on D_all: 10 wins, 25 losses


def test_fig4_panel_b_is_not_called_the_papers_oracle_reward_advantage():
    from drdo_lib.plots.training import FIG4_PANELS, FIG4_COLUMNS

    label = FIG4_PANELS["oracle_reward_advantage"]  # the logged key stays (metrics.jsonl, policy summaries)
    assert "oracle reward advantage" not in label.lower() and "training pairs" in label
    curves = {"drdo_D_all": pd.DataFrame({"step": [1, 2], "oracle_reward_advantage": [0.1, 0.3]})}
    f = report.fig4_final_metrics(curves, last=1)
    stem = FIG4_COLUMNS["oracle_reward_advantage"]
    assert f.loc[0, f"{stem}_final"] == pytest.approx(0.3) and "oracle_reward_advantage_final" not in f
    assert "oracle_reward_advantage" not in stem
