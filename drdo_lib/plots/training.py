"""Training-stage figures: SFT and reward-model curves (notebooks 02, 03), oracle reward vs true reward.

Each function takes plain data (lists of metric rows as written to ``metrics.jsonl``, arrays) and returns a
matplotlib ``Figure``; save it with :func:`drdo_lib.plots.save_figure`. (Fig. 4, the policy-training curves, is
added here by the policy stage.)
"""
from __future__ import annotations

from typing import Mapping, Sequence

from drdo_lib.plots import METHOD_COLORS, METHOD_NAMES

__all__ = ["plot_metric_curves", "plot_reward_vs_true", "plot_fig4_training_curves", "FIG4_PANELS", "FIG4_COLUMNS"]


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


#: The four panels of our Fig. 4 (metric key in metrics.jsonl → panel title); the one list of Fig. 4's metrics
#: (also read by :func:`drdo_lib.report.fig4_final_metrics`).
#:
#: Panel (b) is *not* the paper's "oracle reward advantage": the paper's Fig. 3/4 compare rewards of sampled
#: generations with the preferred reference on evaluation prompts, while the trainer's ``oracle_reward_advantage``
#: is, on the *training pairs* of each logged batch, the Oracle's reward (precomputed ``oracle_chosen_reward``;
#: r* itself only under ``oracle.kind: true_reward``) of the response the student's implicit reward prefers minus
#: that of the other one. So it is displayed as an "implicit-preference oracle margin (training pairs)"; the logged
#: key keeps its name because ``policy.SUMMARY_METRICS``, notebook 04's tables, the trainer tests and every
#: existing ``metrics.jsonl`` read it (tests/fixtures/trajectories.json does not pin it).
FIG4_PANELS = {
    "bt_accuracy": "(a) BT implicit-reward accuracy",
    "oracle_reward_advantage": "(b) implicit-preference oracle margin (training pairs)",
    "logps_chosen": "(c) log π(y_w|x)",
    "logps_rejected": "(d) log π(y_l|x)",
}

#: Column stem under which each Fig. 4 metric appears in tables (:func:`drdo_lib.report.fig4_final_metrics`);
#: the logged key unless it would be read as a different quantity.
FIG4_COLUMNS = {k: k for k in FIG4_PANELS} | {"oracle_reward_advantage": "implicit_pref_oracle_margin_train"}


def _ema(ys, weight: float):
    out, acc = [], None
    for y in ys:
        acc = y if acc is None else weight * acc + (1 - weight) * y
        out.append(acc)
    return out


def plot_fig4_training_curves(
    curves: Mapping[tuple[str, str], Sequence[Mapping[str, float]]],
    *,
    methods: Sequence[str],
    splits: Sequence[str],
    panels: Mapping[str, str] | None = None,
    smooth: float = 0.6,
    suptitle: str | None = None,
):
    """The paper's Fig. 4: one row per split, one column per panel (BT accuracy, the implicit-preference oracle margin
    on training pairs (see :data:`FIG4_PANELS`: not the paper's oracle reward advantage), chosen and rejected
    log-probs vs step), one line per method.

    ``curves`` maps ``(method, split)`` to its ``metrics.jsonl`` rows; ``smooth`` is an exponential-moving-average
    weight in [0, 1) applied to each line (0: raw values; the raw values are drawn faintly behind).
    """
    import matplotlib.pyplot as plt

    panels = dict(panels or FIG4_PANELS)
    fig, axes = plt.subplots(len(splits), len(panels), figsize=(3.3 * len(panels), 2.5 * len(splits) + 0.4),
                             squeeze=False)
    for i, split in enumerate(splits):
        for j, (metric, title) in enumerate(panels.items()):
            ax = axes[i, j]
            for method in methods:
                rows = [r for r in curves.get((method, split), []) if metric in r]
                if not rows:
                    continue
                xs, ys = [r["step"] for r in rows], [r[metric] for r in rows]
                color = METHOD_COLORS.get(method)
                if smooth > 0:
                    ax.plot(xs, ys, color=color, alpha=0.2, lw=0.8)
                ax.plot(xs, _ema(ys, smooth) if smooth > 0 else ys, color=color, lw=1.5,
                        label=METHOD_NAMES.get(method, method))
            if i == 0:
                ax.set_title(title, fontsize=10)
            if j == 0:
                ax.set_ylabel(split, fontsize=10)
            if i == len(splits) - 1:
                ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, bbox_to_anchor=(0.5, -0.01))
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
