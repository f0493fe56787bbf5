"""Training-stage figures: SFT and reward-model curves (notebooks 02, 03), oracle reward vs true reward.

Each function takes plain data (lists of metric rows as written to ``metrics.jsonl``, arrays) and returns a
matplotlib ``Figure``; save it with :func:`drdo_lib.plots.save_figure`. (Fig. 4, the policy-training curves, is
added here by the policy stage.)
"""
from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["plot_metric_curves", "plot_reward_vs_true"]


def plot_metric_curves(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    metrics: Sequence[str],
    *,
    titles: Mapping[str, str] | None = None,
    suptitle: str | None = None,
    x: str = "step",
    ncols: int | None = None,
):
    """One panel per metric; one line per run (``curves`` maps a run label to its metric rows).

    Rows missing a metric are skipped, so a panel shows only the runs that log it.
    """
    import matplotlib.pyplot as plt

    ncols = ncols or min(len(metrics), 4)
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for label, rows in curves.items():
            pts = [(r[x], r[metric]) for r in rows if metric in r and x in r]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=label, lw=1.4)
        ax.set_title((titles or {}).get(metric, metric), fontsize=10)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(curves) > 1 and handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8,
                   bbox_to_anchor=(0.5, -0.02))
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout(rect=(0, 0.06 if len(curves) > 1 else 0, 1, 1))
    return fig


def plot_reward_vs_true(learned_diff, true_diff, *, learned_label: str = "oracle r(x, y_w) − r(x, y_l)",
                        true_label: str = "true r*(x, y_w) − r*(x, y_l)", title: str | None = None):
    """Scatter of learned vs true reward differences on held-out pairs, with the zero lines (agreement quadrants)."""
    import matplotlib.pyplot as plt
    import numpy as np

    a, b = np.asarray(learned_diff, dtype=float), np.asarray(true_diff, dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.scatter(b, a, s=6, alpha=0.4)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel(true_label)
    ax.set_ylabel(learned_label)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
