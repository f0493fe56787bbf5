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
    s = report.table2_summary(pd.DataFrame(rows)).set_index("baseline")
    assert s.loc["sft", "mean_win_rate"] == pytest.approx(0.2) and s.loc["sft", "mean_score"] == pytest.approx(0.5)
    assert s.loc["sft", "cells_below_0.5"] == 0 and s.loc["sft", "cells_above_0.5"] == 0
    assert s.loc["dpo", "cells_above_0.5"] == 2
    paper = pn.table2_long()
    assert s.loc["dpo", "paper_mean"] == pytest.approx(paper[paper.baseline == "dpo"].win_rate.mean())
    assert s.loc["dpo", "paper_cells_above_0.5"] == int((paper[paper.baseline == "dpo"].win_rate > 0.5).sum())


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
