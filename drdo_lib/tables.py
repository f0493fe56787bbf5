"""Writing tables: every table a notebook writes under ``figures/<profile>/`` goes through :func:`write_table`
(CSV for machines, GitHub Markdown for people)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["write_table", "flat_columns"]


def flat_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with MultiIndex columns joined into one level (``(0.2, "sft")`` → ``"0.2 sft"``); else ``df`` itself."""
    if not isinstance(df.columns, pd.MultiIndex):
        return df
    flat = df.copy()
    flat.columns = [" ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in c) for c in df.columns]
    return flat


def write_table(df: pd.DataFrame, stem: str | Path, *, index: bool | None = None,
                floatfmt: str = ".3f") -> list[Path]:
    """Write ``df`` as ``<stem>.csv`` and ``<stem>.md`` (GitHub Markdown via tabulate); returns both paths.

    ``index=None`` writes the index unless it is a plain RangeIndex (0, 1, 2, ...); MultiIndex columns are joined
    into one header row (:func:`flat_columns`).
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    if index is None:
        index = not isinstance(df.index, pd.RangeIndex)
    flat = flat_columns(df)
    flat.to_csv(csv, index=index)
    md.write_text(flat.to_markdown(index=index, floatfmt=floatfmt) + "\n")
    return [csv, md]
