"""Figures of notebook 00 (theory sanity checks). Each function returns a matplotlib Figure; saving is the caller's
(``drdo_lib.plots.save_figure``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from drdo_lib.plots import METHOD_COLORS, METHOD_NAMES

PAIR_STYLES = {"deterministic": "-", "nd_both_orders": ":", "nd_one_sided": "--"}
PAIR_LABELS = {
    "deterministic": "deterministic pair",
    "nd_both_orders": "p*=½, both orders seen",
    "nd_one_sided": "p*=½, one order seen",
}


def plot_fig2(curves: Mapping[Any, Any], highlight_gamma: float | None = None, ax=None):
    """Fig. 2: DRDO preference loss vs the log-unlikelihood ratio log(π_w / (1 − π_l)), one line per γ."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 3.6))
    cmap = plt.get_cmap("viridis")
    gammas = curves["gammas"]
    for i, g in enumerate(gammas):
        c = curves[g]
        lw = 2.8 if highlight_gamma is not None and float(g) == float(highlight_gamma) else 1.6
        ax.plot(c["x"], c["loss"], color=cmap(i / max(len(gammas) - 1, 1)), lw=lw, label=f"γ = {g:g}")
    ax.set_xlabel(r"log-unlikelihood ratio  $\log\,\pi(y_w)\,/\,(1-\pi(y_l))$")
    ax.set_ylabel(r"$-\alpha(1-p_w)^\gamma \log\,\pi(y_w)/(1-\pi(y_l))$")
    ax.set_title(f"DRDO preference loss (α = {curves.get('alpha', 1.0):g}, π(y_l) = {curves['pi_rejected']:g})")
    xmin = max(float(np.min(curves[gammas[0]]["x"])), -6.0)
    ax.set_xlim(left=xmin, right=0.05)
    top = max(float(np.max(np.asarray(curves[g]["loss"])[np.asarray(curves[g]["x"]) >= xmin], initial=0.0)) for g in gammas)
    ax.set_ylim(bottom=-0.05 * max(top, 1e-3), top=1.05 * max(top, 1e-3))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return fig


def plot_dynamics(runs: Mapping[str, Any], beta: float, title: str | None = None):
    """Bandit dynamics: implicit-reward margin per pair (log step axis), mass on dispreferred responses, and mass on
    responses never seen as preferred, for each method."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for m, h in runs.items():
        color = METHOD_COLORS.get(m, None)
        steps = np.maximum(h.steps, 1)
        for pair, vals in h.margins.items():
            axes[0].plot(steps, vals, PAIR_STYLES.get(pair, "-"), color=color, lw=1.6)
        axes[1].plot(steps, h.mass_dispreferred, color=color, lw=1.6, label=METHOD_NAMES.get(m, m))
        axes[2].plot(steps, h.mass_never_preferred, color=color, lw=1.6, label=METHOD_NAMES.get(m, m))
    axes[0].set_xscale("log")
    axes[0].set_xlabel("gradient step")
    axes[0].set_ylabel(r"margin  $\beta[(z-z^{ref})-(z'-z'^{ref})]$")
    axes[0].set_title(f"implicit reward margin (β = {beta:g})")
    handles = [plt.Line2D([], [], color="k", ls=PAIR_STYLES[p], label=PAIR_LABELS[p]) for p in PAIR_STYLES]
    handles += [plt.Line2D([], [], color=METHOD_COLORS[m], label=METHOD_NAMES.get(m, m)) for m in runs
                if m in METHOD_COLORS]
    axes[0].legend(handles=handles, frameon=False, fontsize=7)
    axes[1].set_title(r"mass on dispreferred responses  $\pi(\mathcal{C}(y_l))$")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("gradient step")
    axes[2].set_title("mass on responses never seen as preferred")
    axes[2].set_xlabel("gradient step")
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].legend(frameon=False)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_lemma2(rows: Sequence[Mapping[str, float]]):
    """Lemma 2: e-DPO margin follows the reward models' gap, which grows with their training on a one-sided pair."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    steps = [r["rm_steps"] for r in rows]
    for pair in ("nd_one_sided", "nd_both_orders", "deterministic"):
        ax.plot(steps, [r[f"rm_gap_{pair}"] for r in rows], "o", color="0.5", ms=7, mfc="none")
        ax.plot(steps, [r[f"edpo_margin_{pair}"] for r in rows], PAIR_STYLES[pair], marker=".", label=PAIR_LABELS[pair])
    ax.set_xscale("log")
    ax.set_xlabel("reward-model training steps")
    ax.set_ylabel("e-DPO margin  (circles: reward gap)")
    ax.set_title("Lemma 2: e-DPO distils the reward models' gap")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_focal_profile(profile: Mapping[Any, Any]):
    """Focal weight (1 − p_w)^γ and the focal-term gradient norm vs p_w, with DPO's σ(−h) for comparison."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    p = profile["p_w"]
    cmap = plt.get_cmap("viridis")
    gammas = profile["gammas"]
    for i, g in enumerate(gammas):
        c = cmap(i / max(len(gammas) - 1, 1))
        axes[0].plot(p, profile[g]["weight"], color=c, label=f"γ = {g:g}")
        axes[1].plot(p, profile[g]["grad_norm"], color=c, label=f"γ = {g:g}")
    axes[0].plot(p, profile["dpo_scale"], "k--", lw=1, label="DPO σ(−h) (β = 1)")
    axes[0].set_title("focal weight  $(1-p_w)^\\gamma$")
    axes[1].set_title(f"‖∇ focal term‖ w.r.t. (z_w, z_l), z_l = {profile['logp_rejected']:g}")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("$p_w = \\sigma(z_w - z_l)$")
        ax.axvline(0.5, color="0.7", lw=0.8)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_logp_reduction(rows: Sequence[Mapping[str, float]]):
    """log(1 − π(y_l|x)) vs response length for sum and mean reductions, one line per per-token log-prob."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    token_logps = sorted({r["token_logp"] for r in rows}, reverse=True)
    cmap = plt.get_cmap("plasma")
    for i, u in enumerate(token_logps):
        sub = [r for r in rows if r["token_logp"] == u]
        L = [r["tokens"] for r in sub]
        c = cmap(i / max(len(token_logps), 1))
        ax.plot(L, [-r["log1m_pi_sum"] for r in sub], "-o", color=c, label=f"sum, token logp {u:g}")
        ax.plot(L, [-r["log1m_pi_mean"] for r in sub], "--s", color=c, label=f"mean, token logp {u:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-12, 10)
    ax.axhspan(1e-12, 1.2e-7, color="0.9", zorder=0)
    ax.text(0.98, 0.03, "shaded: < float32 eps, lost when added to z_w (|z_w| ≥ 1); < 1e-12 off the axis",
            transform=ax.transAxes, ha="right", fontsize=7, color="0.35")
    ax.set_xlabel("response length (tokens)")
    ax.set_ylabel(r"$-\log(1-\pi(y_l|x))$")
    ax.set_title("the unlikelihood term vanishes with sum-reduced log-probs")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7, ncol=2)
    return fig
