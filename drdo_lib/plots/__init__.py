"""Plotting helpers; one module per area (theory, data, training, evaluation). All figures are saved as PNG + PDF."""
from __future__ import annotations

from pathlib import Path


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
