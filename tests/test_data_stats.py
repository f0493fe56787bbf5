"""Notebook-01 statistics (Table 5 side by side, contingency, worker agreement, r* agreement) and data plots."""
from __future__ import annotations

import datasets
import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from drdo_lib.data import SyntheticTestbed, build_splits  # noqa: E402
from drdo_lib.data.stats import (  # noqa: E402
    choice_confidence_table,
    reference_rewards,
    table5_comparison,
    true_reward_agreement,
    worker_agreement,
)
from drdo_lib.plots import data as dplots  # noqa: E402
from drdo_lib.plots import save_figure  # noqa: E402


def rows_from(records):
    cols = {k: [r[k] for r in records] for k in records[0]}
    return datasets.Dataset.from_dict(cols)


def pref(pair_id, worker, chosen, conf, choice=None, split="train", edit=0.5, prompt="p", rejected="x"):
    choice = (0 if conf < 5 else 1) if choice is None and conf is not None else (choice or 0)
    return {"pair_id": pair_id, "worker": worker, "chosen": chosen, "rejected": rejected, "confidence": conf,
            "strength": None if conf is None else float(abs(conf - 5)), "choice": choice, "split": split,
            "edit_distance": edit, "prompt": prompt}


def test_worker_agreement_hand_count():
    rows = rows_from([
        pref("A", "w1", "s1", 2), pref("A", "w2", "s1", 1), pref("A", "w3", "s2", 8),  # 3 comparisons, 1 agrees
        pref("A", "w1", "s2", 6),  # w1 again: compared with w2, w3 only -> (w1', w2) no, (w1', w3) yes
        pref("B", "w4", "t1", 3), pref("B", "w4", "t1", 3),  # one worker twice: no comparison
        pref("C", "w5", "u1", 9),  # single label
    ])
    summary, by = worker_agreement(rows)
    s = summary.iloc[0]
    assert s.pairs_with_2plus_workers == 1 and s.label_comparisons == 5 and s.agreements == 2
    assert s.agreement_rate == pytest.approx(2 / 5)
    # min strengths: (w1:3,w2:4)->3 agree; (w1:3,w3:3)->3 no; (w2:4,w3:3)->3 no; (w1':1,w2)->1 no; (w1':1,w3)->1 yes
    by = by.set_index("min_strength")
    assert by.loc[3.0, "label_comparisons"] == 3 and by.loc[3.0, "agreement_rate"] == pytest.approx(1 / 3)
    assert by.loc[1.0, "label_comparisons"] == 2 and by.loc[1.0, "agreement_rate"] == pytest.approx(1 / 2)


def test_choice_confidence_table():
    rows = rows_from([pref("A", "w", "a", 1), pref("B", "w", "a", 1), pref("C", "w", "a", 7),
                      pref("D", "w", "a", None, choice=1)])
    tab = choice_confidence_table(rows)
    assert list(tab.columns) == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "null"]
    assert tab.loc[0, "1"] == 2 and tab.loc[1, "7"] == 1 and tab.loc[1, "null"] == 1
    assert int(tab.to_numpy().sum()) == 4


def test_table5_comparison_matches_build_splits():
    recs = [pref(str(i), "w", "a", c, edit=e, split=s) for i, (c, e, s) in
            enumerate([(1, .9, "train"), (9, .1, "train"), (2, .8, "valid1"), (6, .2, "valid2"), (7, .5, "train"),
                       (4, .6, "train"), (8, .75, "valid1"), (3, .5, "train")])]
    rows = rows_from(recs)
    t5 = table5_comparison(rows).set_index("split")
    assert t5.loc["D_hc_he", "paper_conf"] == 7.31 and t5.loc["D_all", "paper_valid"] == 86_086
    for mode in ("strength", "raw"):
        _, rep = build_splits(rows, mode)
        rep = rep.set_index("split")
        for name in ("D_all", "D_hc_he", "D_lc_le"):
            assert t5.loc[name, f"{mode}_conf"] == pytest.approx(rep.loc[name, "mean_confidence"], nan_ok=True)
            assert t5.loc[name, f"{mode}_train"] == rep.loc[name, "n_train"]


def test_true_reward_agreement_and_reference_rewards():
    tb = SyntheticTestbed()
    post = "SUBREDDIT: r/pets\nTITLE: dog\nPOST: i have a dog and a cat so the vet said no\nTL;DR:"
    rows = rows_from([
        pref("A", "w", " dog cat vet", 1, rejected=" dog", prompt=post),  # strength 4, agrees (4 > 1.33)
        pref("B", "w", " dog", 2, rejected=" dog cat", prompt=post),  # strength 3, disagrees
        pref("C", "w", " cat", 4, rejected=" dog", prompt=post),  # strength 1, tie
    ])
    tra = true_reward_agreement(rows, tb).set_index("strength")
    assert tra.loc[4, "agree_rate"] == 1.0 and tra.loc[3, "agree_rate"] == 0.0
    assert tra.loc[1, "ties"] == 1 and pd.isna(tra.loc[1, "agree_rate"])
    assert tra.loc[4, "mean_abs_reward_gap"] == pytest.approx(4 - 4 / 3)
    sft = datasets.Dataset.from_dict({"prompt": [post, post], "response": [" dog cat vet", " dog"],
                                      "split": ["train", "test"]})
    refs = reference_rewards(sft, tb)
    assert refs["n"] == 1 and refs["reference_mean_reward"] == pytest.approx(4.0)
    assert refs["ideal_mean_reward"] == pytest.approx(4.0)


def test_data_plots(tmp_path):
    recs = [pref(str(i), "w", "a", c, edit=e) for i, (c, e) in enumerate([(1, .9), (9, .1), (6, .2), (3, .7)])]
    rows = rows_from(recs)
    splits, _ = build_splits(rows)
    fig = dplots.split_histograms(splits, title="t")
    assert len(fig.axes) == 2
    paths = save_figure(fig, tmp_path / "hist")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    fig = dplots.contingency_heatmap(choice_confidence_table(rows))
    assert fig.axes[0].get_title()
