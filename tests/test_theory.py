"""Tests of drdo_lib.theory (notebook 00's simulations), each against an independent computation or a closed form."""
from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from drdo_lib.config import build_config, load_profile
from drdo_lib.theory import (
    PreferenceData,
    TheoryConfig,
    bt_mle_margin,
    dropped_term_table,
    fig2_curves,
    finite_sample_table,
    focal_grad_analytic,
    focal_grad_autograd,
    focal_gradient_profile,
    focal_only_effect,
    focal_step_decomposition,
    gradient_check,
    init_logits,
    logp_reduction_table,
    make_scenario,
    prop1_table,
    response_logps,
    run_method,
    tie_gradients,
    train_reward_models,
)

FAST = dict(steps=400, log_every=5)


def _single_pair(cfg: TheoryConfig, n_ab: int, n_ba: int, gap: float = 0.0) -> PreferenceData:
    """One pair (y0, y1) seen n_ab times as y0 ≻ y1 and n_ba times as y1 ≻ y0; y0/y1 differ in every position."""
    L = cfg.response_length
    resp = torch.stack([torch.zeros(L, dtype=torch.long), torch.ones(L, dtype=torch.long)])
    obs = [(0, 1)] * n_ab + [(1, 0)] * n_ba
    w, l_ = (torch.tensor(c, dtype=torch.long) for c in zip(*obs))
    return PreferenceData(
        responses=resp, winners=w, losers=l_, pair=torch.zeros(len(obs), dtype=torch.long),
        pair_members=[(0, 1)], pair_names=["pair"], true_reward=torch.tensor([gap, 0.0], dtype=torch.float64),
    )


def _focal_numpy(zw: float, zl: float, alpha: float, gamma: float) -> float:
    """Independent float64 value of −α(1 − σ(z_w − z_l))^γ (z_w − log(1 − e^{z_l}))."""
    p_w = 1.0 / (1.0 + math.exp(-(zw - zl)))
    return -alpha * (1.0 - p_w) ** gamma * (zw - math.log1p(-math.exp(zl)))


# --------------------------------------------------------------------------------------------------------------- config

def test_config_profiles_and_validation():
    for profile in ("mini", "sample"):
        cfg = build_config(TheoryConfig, load_profile(profile).get("theory") or {})
        assert isinstance(cfg.fig2_gammas, tuple) and set(cfg.fig2_gammas) == {0, 1, 2, 5}
    for bad in (dict(beta=0), dict(gamma=-1), dict(logp_reduction="max"), dict(student_reward="x"),
                dict(nd_counts=(3, 0)), dict(fig2_pi_rejected=1.0), dict(n_actions=1)):
        with pytest.raises(ValueError):
            TheoryConfig(**bad)
    with pytest.raises(ValueError, match="unknown setting"):
        build_config(TheoryConfig, {"alpah": 0.1})


# --------------------------------------------------------------------------------------------------------------- policy

def test_response_logps_match_enumeration():
    cfg = TheoryConfig(n_actions=3, response_length=3, init_scale=1.0)
    logits = init_logits(cfg)
    probs = torch.softmax(logits, -1).numpy()
    all_y = torch.tensor(list(itertools.product(range(3), repeat=3)))
    z = response_logps(logits, all_y, "sum").numpy()
    by_hand = np.array([np.prod([probs[t, y[t]] for t in range(3)]) for y in all_y.tolist()])
    np.testing.assert_allclose(np.exp(z), by_hand, rtol=1e-12)
    assert abs(by_hand.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(response_logps(logits, all_y, "mean").numpy(), z / 3, rtol=1e-12)


# --------------------------------------------------------------------------------------------------------------- Lemma 1

def test_dpo_deterministic_pair_margin_grows_and_loser_vanishes():
    cfg = TheoryConfig(**FAST)
    h = run_method("dpo", cfg, make_scenario(cfg))
    m = h.margins["deterministic"]
    assert np.all(np.diff(m[1:]) > 0), "DPO margin on a deterministic pair must keep increasing"
    # no finite optimum: the margin still grows in the second half of the run by a sizeable amount
    assert m[-1] - m[len(m) // 2] > 0.2
    pi_l = h.probs[:, 1]
    assert np.all(np.diff(pi_l[5:]) < 0) and pi_l[-1] < 1e-3 * pi_l[0]
    assert h.mass_dispreferred[-1] < 1e-6
    # most of the mass ends on responses never seen as preferred (Lemma 1c; here: sequences absent from the data)
    assert h.mass_never_preferred[-1] > 0.5


def test_dpo_both_orders_converges_to_logit_of_empirical_preference():
    cfg = TheoryConfig(steps=3000, log_every=50, response_length=2, lr=2.0)
    h = run_method("dpo", cfg, _single_pair(cfg, 3, 2))
    assert abs(h.margins["pair"][-1] - math.log(3 / 2)) < 2e-3  # β·h* = logit(p̂) (independent closed form)
    # equal counts: DPO's gradients cancel exactly, the policy never moves
    h2 = run_method("dpo", cfg, _single_pair(cfg, 2, 2))
    assert np.abs(h2.margins["pair"]).max() < 1e-12
    np.testing.assert_allclose(h2.probs[-1], h2.probs[0], rtol=1e-12)


def test_bt_reward_models_and_finite_samples():
    cfg = TheoryConfig()
    assert bt_mle_margin(3, 2) == pytest.approx(math.log(1.5)) and bt_mle_margin(1, 0) == math.inf
    data = make_scenario(cfg)
    gaps = []
    for steps in (10, 100, 1000):
        rm = train_reward_models(data, steps, cfg.rm_lr, 2, cfg.seed)
        gaps.append(float((rm[:, 4] - rm[:, 5]).mean()))  # the one-sided p* = ½ pair
        both = (rm[:, 2] - rm[:, 3]).numpy()
    assert gaps[0] < gaps[1] < gaps[2] and gaps[2] - gaps[1] > 1.0  # no finite optimum
    np.testing.assert_allclose(both, math.log(1.5), atol=1e-6)  # BT MLE for counts (3, 2)
    for row in finite_sample_table(TheoryConfig(n_trials=4000)):
        p, n = row["p_one_sided_exact"], 4000
        assert p == pytest.approx(0.5 ** (row["n_labels"] - 1))
        assert abs(row["p_one_sided_simulated"] - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_prop1_zero_gap_at_half():
    rows = prop1_table((0.5, 0.8))
    assert abs(rows[0]["delta_r_solved"]) < 1e-9
    assert rows[1]["delta_r_solved"] == pytest.approx(math.log(4.0), abs=1e-9)


# --------------------------------------------------------------------------------------------------------------- Lemma 2

def test_edpo_fits_reward_gap_exactly():
    cfg = TheoryConfig(steps=600, log_every=50)
    data = make_scenario(cfg)
    rms = torch.tensor([[2.0, 0.0, 0.7, 0.0, 5.0, 0.0]], dtype=torch.float64)  # K = 1: plain distillation
    h = run_method("edpo", cfg, data, oracle_rewards=rms)
    for name, gap in (("deterministic", 2.0), ("nd_both_orders", 0.7), ("nd_one_sided", 5.0)):
        assert h.margins[name][-1] == pytest.approx(gap, abs=1e-3)


def test_drdo_margin_bounded_by_oracle_gap():
    cfg = TheoryConfig(**FAST)
    h = run_method("drdo", cfg, make_scenario(cfg))
    # r̂ = β·z regressed on Δr*: margins settle near Δr* (3 for the deterministic pair, 0 for p* = ½ pairs)
    assert abs(h.margins["deterministic"][-1] - cfg.oracle_reward_gap) < 0.1
    assert abs(h.margins["nd_one_sided"][-1]) < 0.6
    assert abs(h.margins["deterministic"][-1] - h.margins["deterministic"][-20]) < 0.02
    hd = run_method("drdo", cfg.replace(student_reward="head"), make_scenario(cfg))
    assert np.isfinite(hd.loss).all()


# --------------------------------------------------------------------------------------------------------------- focal term

def test_focal_weight_and_gradient_fade_at_confident_pairs():
    prof = focal_gradient_profile((0.0, 1.0, 2.0, 5.0), alpha=0.1)
    p = prof["p_w"]
    i_half, i_one = int(np.abs(p - 0.5).argmin()), len(p) - 1
    for g in (1.0, 2.0, 5.0):
        assert prof[g]["weight"][i_one] < prof[g]["weight"][i_half]
        assert prof[g]["grad_norm"][i_one] < 0.01 * prof[g]["grad_norm"][i_half]
        np.testing.assert_allclose(prof[g]["weight"], (1 - p) ** g, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(prof[0.0]["weight"], 1.0)


def test_tie_gradients_dpo_cancels_drdo_does_not():
    cfg = TheoryConfig()
    t = tie_gradients(cfg, logp=-2.0)
    assert t["dpo_grad_y"] == 0.0 and t["dpo_grad_y'"] == 0.0
    # independent: each order contributes −α 2^{−γ}(1 − …) ; check the sum by central differences of the numpy loss
    eps = 1e-6
    f = lambda a, b: _focal_numpy(a, b, cfg.alpha, cfg.gamma) + _focal_numpy(b, a, cfg.alpha, cfg.gamma)
    fd = (f(-2.0 + eps, -2.0) - f(-2.0 - eps, -2.0)) / (2 * eps)
    assert t["drdo_grad_y"] == pytest.approx(fd, rel=1e-4)
    assert t["drdo_grad_y"] < 0


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 5.0])
def test_eq32_33_matches_autograd_and_finite_differences(reduction, gamma):
    g = torch.Generator().manual_seed(3)
    L, V, alpha = 3, 4, 0.3
    for _ in range(3):
        logits = 1.5 * torch.randn(L, V, generator=g, dtype=torch.float64)
        y = torch.randint(V, (2, L), generator=g)
        if torch.equal(y[0], y[1]):
            continue
        a = focal_grad_analytic(logits, y[0], y[1], alpha, gamma, reduction)
        b = focal_grad_autograd(logits, y[0], y[1], alpha, gamma, reduction).double()
        assert float((a - b).abs().max()) < 1e-6 * max(1.0, float(a.abs().max()))

        def loss(th):
            z = response_logps(th, y, reduction)
            return _focal_numpy(float(z[0]), float(z[1]), alpha, gamma)

        fd = torch.zeros_like(logits)
        eps = 1e-6
        for i in range(L):
            for j in range(V):
                e = torch.zeros_like(logits)
                e[i, j] = eps
                fd[i, j] = (loss(logits + e) - loss(logits - e)) / (2 * eps)
        assert float((a - fd).abs().max()) < 1e-6


def test_gradient_check_rows_small():
    rows = gradient_check(TheoryConfig(), n_cases=4)
    assert len(rows) == 2 * 4 and max(r["max_abs_diff"] for r in rows) < 1e-5


def test_eq33_pi_l_part_raises_log_pi_l():
    logits = torch.zeros(1, 4, dtype=torch.float64)
    yw, yl = torch.tensor([0]), torch.tensor([1])
    d = focal_step_decomposition(logits, yw, yl, alpha=1.0, gamma=0.0)
    # uniform 4-armed bandit: ∇z_l = e_l − π, π_l = ¼ ⇒ the Eq. 33 π_l part moves z_l by (π_l/(1−π_l))·‖e_l − π‖² = 1/4
    assert d["dzl_eq33_pi_l"] == pytest.approx(0.25)
    assert d["dzl_eq33_pi_w"] == pytest.approx(-0.25)  # raising z_w lowers z_l through the softmax: ⟨e_w−π, e_l−π⟩ = −¼
    total = -focal_grad_analytic(logits, yw, yl, 1.0, 0.0)
    gl = torch.nn.functional.one_hot(yl, 4).double() - 0.25
    assert d["dzl_total"] == pytest.approx(float((gl * total).sum()), abs=1e-12)
    eff = focal_only_effect(TheoryConfig(), response_length=1, gamma=2.0, steps=50)
    assert eff["p_w_end"] > eff["p_w_start"]


# --------------------------------------------------------------------------------------------------------------- Fig. 2, reduction

def test_fig2_curves():
    c = fig2_curves((0.0, 2.0, 5.0), pi_rejected=0.3, alpha=1.0, n=50)
    np.testing.assert_allclose(c[0.0]["loss"], -c[0.0]["x"], rtol=1e-5, atol=1e-6)
    assert np.all(c[0.0]["x"] <= 1e-6)
    assert np.all(c[5.0]["loss"] <= c[2.0]["loss"] + 1e-7) and np.all(c[2.0]["loss"] <= c[0.0]["loss"] + 1e-7)
    i = 25
    assert c[2.0]["loss"][i] == pytest.approx(
        _focal_numpy(float(np.log(np.exp(c[2.0]["x"][i]) * 0.7)), math.log(0.3), 1.0, 2.0), rel=1e-4
    )


def test_logp_reduction_table_against_math():
    rows = logp_reduction_table([10, 100], [-1.0, -2.0])
    for r in rows:
        L, u = r["tokens"], r["token_logp"]
        assert r["log1m_pi_sum"] == pytest.approx(math.log1p(-math.exp(L * u)), rel=1e-9, abs=1e-300)
        assert r["log1m_pi_mean"] == pytest.approx(math.log1p(-math.exp(u)), rel=1e-9)
        assert r["dlog1m_dz_mean"] == pytest.approx(-math.exp(u) / (1 - math.exp(u)), rel=1e-9)
        assert abs(r["log1m_pi_sum"]) < 1e-4 < abs(r["log1m_pi_mean"])


# --------------------------------------------------------------------------------------------------------------- widgets, plots

def test_widgets_static_switch_and_build(monkeypatch):
    from drdo_lib import widgets

    monkeypatch.setenv("DRDO_STATIC", "1")
    assert widgets.interactive_enabled() is False
    monkeypatch.delenv("DRDO_STATIC")
    pytest.importorskip("ipywidgets")
    assert widgets.interactive_enabled() is True
    box = widgets.theory_explorer(TheoryConfig(steps=20, rm_steps=20), steps=10)
    sliders = box.children[0].children + box.children[1].children
    assert [s.description.split()[0] for s in sliders] == ["α", "γ", "β", "logp_reduction"]
    sliders[1].value = 1.0  # triggers a redraw; must not raise
    sliders[3].value = "mean"


def test_plots_write_png_pdf(tmp_path):
    from drdo_lib.plots import save_figure
    from drdo_lib.plots import theory as tp

    cfg = TheoryConfig(steps=30, log_every=10)
    data = make_scenario(cfg)
    runs = {"dpo": run_method("dpo", cfg, data), "drdo": run_method("drdo", cfg, data)}
    figs = {
        "fig2": tp.plot_fig2(fig2_curves((0, 2), n=20), highlight_gamma=2),
        "dyn": tp.plot_dynamics(runs, beta=cfg.beta),
        "focal": tp.plot_focal_profile(focal_gradient_profile((0, 2), n=11)),
        "red": tp.plot_logp_reduction(logp_reduction_table([10, 30], [-1.0])),
        "l2": tp.plot_lemma2([{"rm_steps": s, **{f"{k}_{p}": 1.0 for k in ("rm_gap", "edpo_margin")
                                                for p in ("nd_one_sided", "nd_both_orders", "deterministic")}}
                              for s in (10, 100)]),
    }
    for name, fig in figs.items():
        paths = save_figure(fig, tmp_path / name)
        assert all(p.exists() and p.stat().st_size > 0 for p in paths)


# ---------------------------------------------------------------------------------------------------------------
# the term App. A.5 drops (Eq. 32) and the `mean` reduction at pretrained-LM log-probs
# ---------------------------------------------------------------------------------------------------------------
def test_dropped_term_numbers_match_the_design_reference_and_the_closed_forms():
    """Reference numbers (drdo_loss with α 0.1, γ 2): at z_w = z_l = −16, ∂L/∂z_w = −0.425 and
    ∂L/∂z_l = +0.40; with γ = 0, ∂L/∂z_l = 0; at z_w = z_l = −0.15, ∂L/∂z_w = +0.02, ∂L/∂z_l = −0.20."""
    rows = {(r["z_w"], r["gamma"]): r for r in dropped_term_table(alpha=0.1, gammas=(2.0, 0.0))}
    s2, s0, m2 = rows[(-16.0, 2.0)], rows[(-16.0, 0.0)], rows[(-0.15, 2.0)]
    assert s2["dL_dzw"] == pytest.approx(-0.425, abs=1e-6) and s2["dL_dzl"] == pytest.approx(0.40, abs=1e-6)
    assert abs(s0["dL_dzl"]) < 1e-7
    assert m2["dL_dzw"] == pytest.approx(0.02, abs=1e-3) and m2["dL_dzl"] == pytest.approx(-0.20, abs=1e-3)
    # the dropped (Eq. 32) part is γ·p_w·|X| = 16 times the kept (Eq. 33) part on z_w at the summed-log-prob tie
    assert s2["ratio_eq32_eq33_zw"] == pytest.approx(2 * 0.5 * 16.0, rel=1e-6)
    # the two parts add up to autograd, everywhere
    for r in rows.values():
        assert r["eq32_dzw"] + r["eq33_dzw"] == pytest.approx(r["dL_dzw"], abs=1e-6)
        assert r["eq32_dzl"] + r["eq33_dzl"] == pytest.approx(r["dL_dzl"], abs=1e-6)
    # descent directions: sum reduction raises z_w and lowers z_l (the contrastive force is Eq. 32's);
    # mean reduction at −0.15 lowers z_w and raises z_l
    assert (s2["descent_z_w"], s2["descent_z_l"]) == ("up", "down")
    assert (m2["descent_z_w"], m2["descent_z_l"]) == ("down", "up")


def test_dropped_term_by_hand_at_another_point():
    """An independent hand computation at z_w = −2, z_l = −3, α = 0.5, γ = 1 (no drdo_lib formula involved)."""
    zw, zl, a, g = -2.0, -3.0, 0.5, 1.0
    p = 1 / (1 + math.exp(-(zw - zl)))
    w = (1 - p) ** g
    x = zw - math.log(1 - math.exp(zl))
    want_w = a * g * w * p * x - a * w
    want_l = -a * g * w * p * x - a * w * math.exp(zl) / (1 - math.exp(zl))
    (r,) = dropped_term_table(points=(("hand", zw, zl),), alpha=a, gammas=(g,))
    assert r["dL_dzw"] == pytest.approx(want_w, rel=1e-6) and r["dL_dzl"] == pytest.approx(want_l, rel=1e-6)
