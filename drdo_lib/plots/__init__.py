"""Plotting helpers; one module per area (theory, data, training, evaluation). All figures are saved as PNG + PDF."""
from __future__ import annotations

from pathlib import Path

from drdo_lib.paper_numbers import METHOD_NAMES

__all__ = ["save_figure", "METHOD_COLORS", "METHOD_NAMES"]

#: One colour per method in every figure (notebooks 00, 04, 05, 06); names come from
#: :data:`drdo_lib.paper_numbers.METHOD_NAMES`. Methods not listed get matplotlib's next colour.
METHOD_COLORS = {"drdo": "#1b9e77", "dpo": "#d95f02", "edpo": "#7570b3", "ipo": "#e7298a", "sft": "#666666"}


def save_figure(fig, path_stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``<path_stem>.png`` (150 dpi) and ``<path_stem>.pdf``; returns both paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext, kw in ((".png", {"dpi": 150}), (".pdf", {})):
        p = stem.with_suffix(ext)
        # PDF metadata without a creation date keeps reruns byte-stable where matplotlib allows it.
        meta = {"CreationDate": None} if ext == ".pdf" else {"Software": None}
        fig.savefig(p, bbox_inches="tight", metadata=meta, **kw)
        out.append(p)
    return out
