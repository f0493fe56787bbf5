"""Figures of the robustness study (notebook 07, :mod:`drdo_lib.study`), each from the cell records alone.

* :func:`plot_gold_vs_noise`: gold r* gain over SFT vs noise level per method (one panel per oracle kind; methods
  without an Oracle appear in every panel), the seed-level interval and each seed's mean as dots;
* :func:`plot_frontier`: the r*–KL(π‖π_SFT) frontier, one point per cell (colour = method, marker = noise level);
* :func:`plot_pyl_collapse`: change of log π(y_l) (solid) and log π(y_w) (dashed) from SFT vs p*, one panel per
  noise level;
* :func:`plot_tie_margin`: margin growth on p* = ½ pairs vs training step (the trainer callback's measurements),
  one panel per noise level, mean over seeds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from drdo_lib.plots import METHOD_COLORS, save_figure

__all__ = ["plot_gold_vs_noise", "plot_frontier", "plot_pyl_collapse", "plot_tie_margin", "plot_all",
           "variant_color"]

_EXTRA = ["#66a61e", "#e6ab02", "#a6761d", "#1f78b4", "#b15928", "#6a3d9a", "#fb9a99"]
_LINESTYLE = {"trained": "-", "true_reward": "--", "noisy_true_reward": "-.", "none": ":"}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def variant_color(variant: str, cfg) -> str:
    """The method's colour for the first variant of each method (e.g. DRDO's for ``drdo_head``), others in turn."""
    if variant == "sft":
        return METHOD_COLORS["sft"]
    method = cfg.variants[variant]["method"]
    first = next(v for v in cfg.selected if cfg.variants[v]["method"] == method) if variant in cfg.selected else None
    if variant == first and method in METHOD_COLORS:
        return METHOD_COLORS[method]
    others = [v for v in cfg.selected if v != next(w for w in cfg.selected if cfg.variants[w]["method"] ==
                                                     cfg.variants[v]["method"])]
    return _EXTRA[others.index(variant) % len(_EXTRA)] if variant in others else "#333333"


def _records_by(records):
    return {(r["cell"]["variant"], r["cell"]["noise"], r["cell"]["oracle"], r["cell"]["seed"]): r for r in records}


def plot_gold_vs_noise(summary, cfg, *, which: str = "greedy"):
    """r* gain over SFT vs noise level per method, from :func:`drdo_lib.study.summary_table` (the intervals and
    per-seed estimates it computed once)."""
    import matplotlib.pyplot as plt

    col, lo_col, hi_col, seeds_col = (("Δr*_greedy vs SFT", "Δ greedy low", "Δ greedy high", "_seeds_greedy")
                                      if which == "greedy" else
                                      ("Δr*_sample vs SFT", "Δ sample low", "Δ sample high", "_seeds_sample"))
    kinds = [k for k in cfg.oracle_kinds]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 3.6), squeeze=False, sharey=True)
    xs = np.arange(len(cfg.noise_levels))
    for ax, kind in zip(axes[0], kinds):
        for j, v in enumerate(cfg.selected):
            o = kind if cfg.variants[v]["method"] in ("drdo", "edpo") else "none"
            rows = summary[(summary["variant"] == v) & (summary["oracle"] == o)].set_index("noise")
            pts = [rows.loc[cfg.noise_name(int(n))] if cfg.noise_name(int(n)) in rows.index else None for n in xs]
            if not any(p is not None for p in pts):
                continue
            nan = float("nan")
            off = (j - len(cfg.selected) / 2) * 0.03
            y = np.array([p[col] if p is not None else nan for p in pts], dtype=float)
            lo = np.array([p[lo_col] if p is not None else nan for p in pts], dtype=float)
            hi = np.array([p[hi_col] if p is not None else nan for p in pts], dtype=float)
            c = variant_color(v, cfg)
            ax.errorbar(xs + off, y, yerr=[y - lo, hi - y], color=c, ls=_LINESTYLE.get(o, "-"), marker="o", ms=4,
                        capsize=2, lw=1.3, label=cfg.label(v) + ("" if o == "none" else f" ({o})"))
            for n, p in zip(xs, pts):
                seeds = list(p[seeds_col].values()) if p is not None else []
                ax.scatter([n + off] * len(seeds), seeds, color=c, s=8, alpha=0.45, lw=0)
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_xticks(xs, [cfg.noise_name(i) for i in xs], fontsize=8)
        ax.set_title(f"Oracle: {kind} (DPO/IPO: no Oracle)", fontsize=10)
        ax.set_xlabel("noise level (least → most noisy)")
    axes[0][0].set_ylabel(f"r* ({which}) − SFT, held-out prompts")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Gold reward vs label noise ({cfg.level:.0%} seed-level interval; dots: seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_frontier(records: Sequence[Mapping], cfg, *, which: str = "greedy"):
    import matplotlib.pyplot as plt

    idx = _records_by(records)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    key = "gold_greedy" if which == "greedy" else "gold_sample"
    seen = set()
    for r in records:
        c = r["cell"]
        base = idx.get(("sft", c["noise"], "none", c["seed"]))
        if base is None:
            continue
        v = c["variant"]
        lab = cfg.label(v) + ("" if c["oracle"] == "none" else f" ({c['oracle']})")
        ax.scatter(r["metrics"]["kl"], r["metrics"][key] - base["metrics"][key], color=variant_color(v, cfg),
                   marker=_MARKERS[c["noise"] % len(_MARKERS)], s=28,
                   facecolors="none" if c["oracle"] == "true_reward" else None,
                   label=lab if lab not in seen else None)
        seen.add(lab)
    for i in range(len(cfg.noise_levels)):
        ax.scatter([], [], color="#555555", marker=_MARKERS[i % len(_MARKERS)], label=f"noise: {cfg.noise_name(i)}")
    ax.axhline(0, color="#999999", lw=0.8)
    ax.set_xlabel("KL(π‖π_SFT), Monte-Carlo from ancestral samples (nats)")
    ax.set_ylabel(f"r* ({which}) − SFT")
    ax.set_title("r*–KL frontier (one point per cell; hollow: true_reward Oracle)", fontsize=10)
    ax.legend(fontsize=6.5, loc="best", ncol=2)
    fig.tight_layout()
    return fig


def _mean_bins(records, cfg, variant, oracle, noise):
    acc: dict[tuple, list] = {}
    for r in records:
        c = r["cell"]
        if (c["variant"], c["oracle"], c["noise"]) != (variant, oracle, noise):
            continue
        for b in r.get("p_star_bins", []):
            acc.setdefault((b["p_low"], b["p_high"]), []).append(b)
    rows = []
    for (lo, hi), bs in sorted(acc.items()):
        n = sum(b["n"] for b in bs)
        rows.append(((lo + hi) / 2, sum(b["dlogp_l"] * b["n"] for b in bs) / n,
                     sum(b["dlogp_w"] * b["n"] for b in bs) / n, n))
    return rows


def plot_pyl_collapse(records: Sequence[Mapping], cfg):
    import matplotlib.pyplot as plt

    n_lv = len(cfg.noise_levels)
    fig, axes = plt.subplots(1, n_lv, figsize=(4.4 * n_lv, 3.5), squeeze=False, sharey=True)
    combos = sorted({(r["cell"]["variant"], r["cell"]["oracle"]) for r in records if r["cell"]["variant"] != "sft"})
    for n, ax in enumerate(axes[0]):
        for v, o in combos:
            rows = _mean_bins(records, cfg, v, o, n)
            if not rows:
                continue
            x, dl, dw, _ = zip(*rows)
            c = variant_color(v, cfg)
            lab = cfg.label(v) + ("" if o == "none" else f" ({o})")
            ax.plot(x, dl, color=c, marker="o", ms=3, lw=1.3, ls=_LINESTYLE.get(o, "-"), label=lab)
            ax.plot(x, dw, color=c, lw=0.8, ls=(0, (2, 2)), alpha=0.7)
        ax.axhline(0, color="#999999", lw=0.8)
        ax.axvline(0.5, color="#cccccc", lw=0.8)
        ax.set_title(f"noise: {cfg.noise_name(n)}", fontsize=10)
        ax.set_xlabel("p* of the labelled pair (bin centre)")
    axes[0][0].set_ylabel("Δ log π(y_l) from SFT (thin dashed: y_w)")
    axes[0][-1].legend(fontsize=6.5, loc="best")
    fig.suptitle("π(y_l) collapse vs p* (training pairs; mean over seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_tie_margin(records: Sequence[Mapping], cfg):
    import matplotlib.pyplot as plt

    n_lv = len(cfg.noise_levels)
    fig, axes = plt.subplots(1, n_lv, figsize=(4.4 * n_lv, 3.5), squeeze=False, sharey=True)
    combos = sorted({(r["cell"]["variant"], r["cell"]["oracle"]) for r in records if r["cell"]["variant"] != "sft"})
    for n, ax in enumerate(axes[0]):
        for v, o in combos:
            curves = [r["margin_curve"] for r in records if (r["cell"]["variant"], r["cell"]["oracle"],
                                                             r["cell"]["noise"]) == (v, o, n) and r.get("margin_curve")]
            if not curves:
                continue
            steps = sorted(set.intersection(*[{s for s, _ in c} for c in curves]))
            ys = [np.mean([dict((int(s), m) for s, m in c)[st] for c in curves]) for st in steps]
            ax.plot(steps, ys, color=variant_color(v, cfg), ls=_LINESTYLE.get(o, "-"), lw=1.3,
                    label=cfg.label(v) + ("" if o == "none" else f" ({o})"))
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_title(f"noise: {cfg.noise_name(n)}", fontsize=10)
        ax.set_xlabel("training step")
    axes[0][0].set_ylabel("margin growth on p* = ½ pairs (nats)")
    axes[0][-1].legend(fontsize=6.5, loc="best")
    fig.suptitle("Margin on p* = ½ pairs vs step: [log π(y_w) − log π(y_l)] − same under SFT", fontsize=11)
    fig.tight_layout()
    return fig


def plot_all(records: Sequence[Mapping], cfg, out_dir: str | Path, *, summary) -> list[Path]:
    """Draw and save every study figure (PNG + PDF) under ``out_dir`` as ``study_*``; returns the paths.
    ``summary`` is :func:`drdo_lib.study.summary_table` of the same records."""
    import matplotlib.pyplot as plt

    out = []
    if not records:
        return out
    for name, fn in (("study_gold_vs_noise", lambda: plot_gold_vs_noise(summary, cfg, which=cfg.gold)),
                     ("study_frontier", lambda: plot_frontier(records, cfg, which=cfg.gold)),
                     ("study_pyl_collapse", lambda: plot_pyl_collapse(records, cfg)),
                     ("study_tie_margin", lambda: plot_tie_margin(records, cfg))):
        fig = fn()
        out += save_figure(fig, Path(out_dir) / name)
        plt.close(fig)
    return out
