"""Figures of the evaluation (notebooks 05 and 06): Fig. 3 reward advantage, Table 2 win rates vs temperature,
judged head-to-heads beside the paper's numbers (Fig. 4 is :func:`drdo_lib.plots.training.plot_fig4_training_curves`).
Every function returns a matplotlib Figure; save it with :func:`drdo_lib.plots.save_figure`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from drdo_lib.plots import METHOD_COLORS, METHOD_NAMES

__all__ = ["plot_reward_advantage", "plot_win_rates", "plot_head_to_head"]


def _errorbars(df: pd.DataFrame, value: str, lo: str, hi: str) -> np.ndarray:
    return np.vstack([df[value] - df[lo], df[hi] - df[value]]).clip(min=0)


def plot_reward_advantage(adv: pd.DataFrame, *, title: str = "", reward_label: str = "oracle reward"):
    """Fig. 3: expected (normalised) reward advantage per temperature; left over SFT, right over the references.

    ``adv`` is :func:`drdo_lib.evaluation.reward_advantage_grid` output restricted to one prompt set, one reward
    and one split (one row per method × temperature × versus). Bars: methods; error bars: bootstrap CI.
    """
    import matplotlib.pyplot as plt

    panels = [v for v in ("sft", "reference") if v in set(adv["versus"])]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.2 * max(len(panels), 1), 3.4), squeeze=False,
                             sharey=True)
    methods = [m for m in METHOD_COLORS if m in set(adv["method"])]
    temps = sorted(set(adv["temperature"]))
    width = 0.8 / max(len(methods), 1)
    for ax, vs in zip(axes[0], panels):
        for k, m in enumerate(methods):
            d = adv[(adv["versus"] == vs) & (adv["method"] == m)].set_index("temperature").reindex(temps)
            x = np.arange(len(temps)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(x, d["advantage"], width, color=METHOD_COLORS[m], label=METHOD_NAMES.get(m, m),
                   yerr=_errorbars(d, "advantage", "ci_low", "ci_high"), capsize=2, error_kw={"lw": 0.8})
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(np.arange(len(temps)), [f"T={t:g}" for t in temps])
        ax.set_title(f"advantage over {'SFT' if vs == 'sft' else 'reference summaries'}")
        ax.set_ylabel(f"Δ {reward_label}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_win_rates(grid: pd.DataFrame, *, title: str = "", paper: pd.DataFrame | None = None):
    """Table 2 as curves: the student's win rate (ties excluded from wins) against each baseline vs temperature, one
    panel per baseline, one line per training split, CI band; ``paper`` (``paper_numbers.table2_long()``) adds the
    paper's per-model values as thin grey lines."""
    import matplotlib.pyplot as plt

    bases = [b for b in ("sft", "dpo", "edpo", "ipo") if b in set(grid["baseline"])]
    fig, axes = plt.subplots(1, max(len(bases), 1), figsize=(3.6 * max(len(bases), 1), 3.2), squeeze=False,
                             sharey=True)
    for ax, b in zip(axes[0], bases):
        if paper is not None:
            for model, d in paper[paper["baseline"] == b].groupby("model"):
                ax.plot(d["temperature"], d["win_rate"], color="0.75", lw=0.8, zorder=1)
            ax.plot([], [], color="0.75", lw=0.8, label="paper (per model)")
        for split, d in grid[grid["baseline"] == b].groupby("split"):
            d = d.sort_values("temperature")
            line, = ax.plot(d["temperature"], d["win_rate"], marker="o", label=f"ours: {split}")
            ax.fill_between(d["temperature"], d["win_rate_ci_low"], d["win_rate_ci_high"], color=line.get_color(),
                            alpha=0.15)
            ax.plot(d["temperature"], d["win_rate"] + d["tie_rate"], ls=":", color=line.get_color(), lw=0.8)
        ax.axhline(0.5, color="black", lw=0.6)
        ax.set_title(f"vs {METHOD_NAMES.get(b, b)}")
        ax.set_xlabel("temperature")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("win rate (dotted: win + tie)")
    axes[0][-1].legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_head_to_head(ours: pd.DataFrame, paper: pd.DataFrame | None = None, *, label: str = "comparison",
                      title: str = ""):
    """Horizontal bars of judged win rates of the first-named side: ours with ties counted ½ (with CI), ours with
    ties dropped (``win_rate_excl_ties``, with ``win_rate_excl_ties_ci_low/high`` where given; drawn when the column
    exists), and the paper's (when given), whose denominators (926–943 of ~1,000) imply that ties were dropped, so
    its bar is compared with the ties-dropped one. Both frames need a column ``label`` naming each row and
    ``win_rate`` in [0, 1]; ours also ``ci_low``/``ci_high``."""
    import matplotlib.pyplot as plt

    labels = list(ours[label])
    y = np.arange(len(labels))
    series = [("ours, ties ½", ours["win_rate"], _errorbars(ours, "win_rate", "ci_low", "ci_high"),
               METHOD_COLORS["drdo"], None)]
    if "win_rate_excl_ties" in ours:
        err = (np.nan_to_num(_errorbars(ours, "win_rate_excl_ties", "win_rate_excl_ties_ci_low",
                                        "win_rate_excl_ties_ci_high"))
               if {"win_rate_excl_ties_ci_low", "win_rate_excl_ties_ci_high"} <= set(ours) else None)
        series.append(("ours, ties dropped", ours["win_rate_excl_ties"], err, "white", "//"))
    if paper is not None:
        p = paper.set_index(label).reindex(labels)
        series.append(("paper (ties dropped)", p["win_rate"].to_numpy(), None, "0.7", None))
    fig, ax = plt.subplots(figsize=(6.4, 0.25 * len(series) * len(labels) + 1.4))
    h = 0.8 / len(series)
    for k, (name, values, err, color, hatch) in enumerate(series):
        ax.barh(y + (k - (len(series) - 1) / 2) * h, values, h, color=color, hatch=hatch, label=name,
                edgecolor=METHOD_COLORS["drdo"] if hatch else None, xerr=err, capsize=2, error_kw={"lw": 0.8})
    ax.axvline(0.5, color="black", lw=0.6)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("win rate of the first-named side")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
