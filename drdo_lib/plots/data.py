"""Figures of notebook 01: strength and edit-distance histograms per split, and the choice × confidence heatmap."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["split_histograms", "contingency_heatmap"]


def split_histograms(splits: Mapping[str, Any], title: str = ""):
    """Two panels: strength |confidence − 5| (bars at 1–4) and normalised edit distance, one series per split."""
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_e) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(splits)
    width = 0.8 / max(1, len(names))
    bins = np.linspace(0.0, 1.0, 21)
    for i, name in enumerate(names):
        s = np.array([v for v in splits[name]["strength"] if v is not None], dtype=float)
        counts = np.array([(s == k).sum() for k in (1, 2, 3, 4)], dtype=float)
        frac = counts / counts.sum() if counts.sum() else counts
        ax_s.bar(np.arange(1, 5) + (i - (len(names) - 1) / 2) * width, frac, width=width,
                 label=f"{name} (n={len(splits[name])})")
        e = np.asarray(splits[name]["edit_distance"], dtype=float)
        ax_e.hist(e, bins=bins, histtype="step", linewidth=1.6, density=True, label=name)
    ax_s.set_xticks([1, 2, 3, 4])
    ax_s.set_xlabel("strength |confidence − 5|")
    ax_s.set_ylabel("fraction of rows")
    ax_e.set_xlabel("normalised edit distance (chosen vs rejected)")
    ax_e.set_ylabel("density")
    ax_s.legend(fontsize=8)
    ax_e.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def contingency_heatmap(table, title: str = "choice × raw confidence"):
    """Heatmap of :func:`drdo_lib.data.stats.choice_confidence_table` with the counts written in the cells."""
    import matplotlib.pyplot as plt

    values = table.to_numpy()
    fig, ax = plt.subplots(figsize=(7, 2.4))
    im = ax.imshow(values, cmap="Blues", aspect="auto")
    ax.set_xticks(range(values.shape[1]), list(table.columns))
    ax.set_yticks(range(values.shape[0]), [f"choice {c}" for c in table.index])
    ax.set_xlabel("raw extra.confidence (1 = surely summary 0, 9 = surely summary 1)")
    vmax = values.max() if values.size else 0
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > vmax / 2 else "black")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig
