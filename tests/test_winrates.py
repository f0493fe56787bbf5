"""Tests of drdo_lib.winrates: win/tie/loss counts by hand, the bootstrap against the normal approximation and the
cluster bootstrap against the bootstrap of cluster means; the judge's and AlpacaEval's intervals are this bootstrap."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from drdo_lib.winrates import bootstrap_ci, mean_advantage, win_rate


def test_win_rate_hand_count_and_ties():
    a = [1.0, 2.0, 3.0, 0.5, 2.0, 7.0]
    b = [0.0, 2.0, 4.0, 0.5, 1.95, 1.0]
    r = win_rate(a, b, n_boot=200)
    assert (r["n"], r["wins"], r["ties"], r["losses"]) == (6, 3, 2, 1)
    assert r["win_rate"] == pytest.approx(3 / 6) and r["tie_rate"] == pytest.approx(2 / 6)
    assert r["win_rate"] + r["tie_rate"] + r["loss_rate"] == pytest.approx(1.0)
    assert r["score"] == pytest.approx((3 + 2 / 2) / 6)
    assert r["score_ci_low"] <= r["score"] <= r["score_ci_high"]
    r = win_rate(a, b, tie_tolerance=0.1, n_boot=200)  # 2.0 vs 1.95 becomes a tie
    assert (r["wins"], r["ties"], r["losses"]) == (2, 3, 1)
    assert r["win_rate_ci_low"] <= r["win_rate"] <= r["win_rate_ci_high"]
    with pytest.raises(ValueError):
        win_rate([1.0], [float("nan")])
    with pytest.raises(ValueError):
        win_rate([1.0, 2.0], [1.0])


def test_bootstrap_ci_matches_normal_approximation_for_a_large_sample():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=4000)
    lo, hi = bootstrap_ci(x, n_boot=2000, level=0.95, seed=0)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)


def test_cluster_bootstrap_equals_bootstrap_of_cluster_means_when_clusters_are_copies():
    rng = np.random.default_rng(2)
    x = rng.normal(size=50)
    rep = np.repeat(x, 4)  # every prompt sampled four times with identical outcome
    groups = np.repeat(np.arange(50), 4)
    assert bootstrap_ci(rep, groups=groups, n_boot=500, seed=3) == pytest.approx(bootstrap_ci(x, n_boot=500, seed=3))
    # treating the copies as independent understates the uncertainty by about a factor 2
    naive = bootstrap_ci(rep, n_boot=500, seed=3)
    clustered = bootstrap_ci(rep, groups=groups, n_boot=500, seed=3)
    assert (clustered[1] - clustered[0]) > 1.6 * (naive[1] - naive[0])


def test_mean_advantage():
    r = mean_advantage([3.0, 1.0, 2.0], [1.0, 1.0, 0.5], n_boot=100)
    assert r["advantage"] == pytest.approx((2 + 0 + 1.5) / 3)
    assert r["ci_low"] <= r["advantage"] <= r["ci_high"] and r["n"] == 3


def test_judge_and_alpaca_intervals_are_this_bootstrap():
    """judge.win_rate_summary and alpaca_eval.head_to_head_table call bootstrap_ci (one implementation)."""
    from drdo_lib.alpaca_eval import head_to_head_table
    from drdo_lib.judge import win_rate_summary

    outcome = ["a"] * 7 + ["b"] * 4 + ["tie"] * 3 + ["discarded"] * 2
    s = win_rate_summary(pd.DataFrame({"outcome": outcome}), n_boot=300, ci=0.9, seed=4)
    scores = np.array([1.0] * 7 + [0.0] * 4 + [0.5] * 3)
    assert (s["ci_low"], s["ci_high"]) == bootstrap_ci(scores, n_boot=300, level=0.9, seed=4)
    assert s["win_rate"] == pytest.approx(scores.mean()) and s["judged"] == 14 and s["discarded"] == 2
    prefs = np.array([2.0, 1.0, 1.5, 1.8, np.nan, 1.2])
    t = head_to_head_table({("m", "b"): pd.DataFrame({"preference": prefs, "weighted_preference": prefs})},
                           n_boot=300, level=0.8, seed=5)
    x = (prefs[~np.isnan(prefs)] - 1) * 100
    assert (t.loc[0, "ci_low"], t.loc[0, "ci_high"]) == pytest.approx(bootstrap_ci(x, n_boot=300, level=0.8, seed=5))


def test_table3_interval_of_a_comparison_does_not_depend_on_the_other_rows():
    """Each row is bootstrapped with the same seed; a shared generator made a row's interval depend on the rows
    before it (the bug fixed when the three bootstraps became one)."""
    from drdo_lib.alpaca_eval import head_to_head_table

    rng = np.random.default_rng(0)
    ann = {k: pd.DataFrame({"preference": p, "weighted_preference": p})
           for k, p in ((("drdo", "dpo"), rng.choice([1.0, 1.5, 2.0], 60)),
                        (("drdo", "edpo"), rng.choice([1.0, 2.0], 40)))}
    alone = head_to_head_table({("drdo", "edpo"): ann[("drdo", "edpo")]}, n_boot=200, seed=1)
    both = head_to_head_table(ann, n_boot=200, seed=1)
    assert (both.loc[1, "ci_low"], both.loc[1, "ci_high"]) == (alone.loc[0, "ci_low"], alone.loc[0, "ci_high"])
