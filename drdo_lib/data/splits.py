"""The paper's data splits D_all, D_hc,he and D_lc,le (Sec. 5, Table 5) and their report.

Given normalised preference rows (:mod:`drdo_lib.data.loaders`), with c the *confidence measure* and e the
normalised edit distance of each row:

* ``confidence_mode="strength"`` (default, what the paper intends): c = strength = |confidence − 5| ∈ {1,2,3,4};
* ``confidence_mode="raw"`` (paper-faithful, reproduces Table 5's means 5.01 / 7.31 / 2.67): c = the raw directional
  1–9 confidence, so "high" mostly means "summary 1 won" (the confound shown in notebook 01).

Medians m_c and m_e are taken over all rows passed in that have the value (rows without a confidence are excluded
from the confidence splits and counted as ``null_confidence``). Then::

    D_all   = every row
    D_hc_he = rows with c > m_c and e > m_e         ("high" = strictly above the median)
    D_lc_le = rows with c ≤ m_c and e ≤ m_e         ("low"  = at or below the median)

Rows whose ``split`` is "train" count as train, "valid1"/"valid2" (or "validation"/"valid") as validation; any
other split value is kept in the datasets and counted in the report (``n_other``).
"""
from __future__ import annotations

import hashlib

import logging
from typing import Any

import numpy as np
import pandas as pd

from drdo_lib.data.loaders import dropped_counts

logger = logging.getLogger(__name__)

__all__ = ["build_splits", "split_indices", "split_masks", "CONFIDENCE_MODES", "SPLIT_NAMES", "TRAIN_SPLITS", "VALID_SPLITS",
           "PAPER_TABLE5"]

CONFIDENCE_MODES = ("strength", "raw")
SPLIT_NAMES = ("D_all", "D_hc_he", "D_lc_le")
TRAIN_SPLITS = frozenset({"train"})
VALID_SPLITS = frozenset({"valid1", "valid2", "valid", "validation"})

#: The paper's Table 5 (TL;DR comparisons): mean (raw) confidence, mean edit distance, train / validation counts.
PAPER_TABLE5 = pd.DataFrame(
    {
        "split": list(SPLIT_NAMES),
        "mean_confidence": [5.01, 7.31, 2.67],
        "mean_edit_distance": [0.12, 0.15, 0.09],
        "n_train": [44_709, 10_136, 10_000],
        "n_valid": [86_086, 1_127, 1_112],
    }
)


def _columns(rows: Any) -> pd.DataFrame:
    """The four columns build_splits needs, read once through Arrow (nulls become NaN)."""
    df = rows.select_columns(["confidence", "strength", "edit_distance", "split"]).to_pandas()
    for col in ("confidence", "strength", "edit_distance"):
        df[col] = pd.to_numeric(df[col], errors="raise").astype(np.float64)
    return df


def split_masks(confidence: np.ndarray, edit: np.ndarray) -> tuple[dict[str, np.ndarray], float, float]:
    """Boolean masks of the three splits from per-row confidence measure (NaN = missing) and edit distance.

    Returns ``(masks, median_confidence, median_edit_distance)``; NaN confidence rows are in D_all only.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    edit = np.asarray(edit, dtype=np.float64)
    has_c = ~np.isnan(confidence)
    if not has_c.any():
        raise ValueError("build_splits: no row has a confidence value, cannot form D_hc_he / D_lc_le")
    med_c = float(np.median(confidence[has_c]))
    med_e = float(np.median(edit))
    masks = {
        "D_all": np.ones(len(edit), dtype=bool),
        "D_hc_he": has_c & (confidence > med_c) & (edit > med_e),
        "D_lc_le": has_c & (confidence <= med_c) & (edit <= med_e),
    }
    return masks, med_c, med_e


def build_splits(rows: Any, confidence_mode: str = "strength") -> tuple[dict[str, Any], pd.DataFrame]:
    """Split normalised preference rows into D_all, D_hc_he, D_lc_le and report Table-5 statistics.

    Args:
        rows: a ``datasets.Dataset`` of normalised preference rows (needs ``confidence``, ``strength``,
            ``edit_distance``, ``split``).
        confidence_mode: "strength" (|confidence − 5|, default) or "raw" (the directional 1–9 value).

    Returns:
        ``(splits, report)``: ``splits`` maps "D_all", "D_hc_he", "D_lc_le" to ``datasets.Dataset``; ``report`` is a
        DataFrame with one row per split: ``split, confidence_mode, n_rows, n_train, n_valid, n_other,
        mean_confidence`` (raw 1–9, as Table 5), ``mean_strength, mean_edit_distance, median_confidence_measure,
        median_edit_distance`` and ``dropped_<reason>`` columns (rows the loader dropped, same for every split, plus
        ``dropped_null_confidence`` for the two confidence splits).
    """
    indices, report = split_indices(rows, confidence_mode)
    return {name: rows if name == "D_all" else rows.select(idx) for name, idx in indices.items()}, report


def split_indices(rows: Any, confidence_mode: str = "strength") -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """:func:`build_splits` without materialising the subsets: ``({split: row indices}, report)`` (the data stage
    stores the indices)."""
    if confidence_mode not in CONFIDENCE_MODES:
        raise ValueError(f"build_splits: confidence_mode must be one of {CONFIDENCE_MODES}, got {confidence_mode!r}")
    missing = {"confidence", "strength", "edit_distance", "split"} - set(rows.column_names)
    if missing:
        raise ValueError(f"build_splits: rows lack column(s) {sorted(missing)}; load them with a drdo_lib loader")
    if len(rows) == 0:
        raise ValueError("build_splits: no rows")
    cols = _columns(rows)
    raw = cols["confidence"].to_numpy()
    strength = cols["strength"].to_numpy()
    measure = strength if confidence_mode == "strength" else raw
    edit = cols["edit_distance"].to_numpy()
    if not np.isfinite(edit).all():
        raise ValueError("build_splits: edit_distance has non-finite values")
    masks, med_c, med_e = split_masks(measure, edit)
    split_col = cols["split"].to_numpy(dtype=object)
    is_train = np.isin(split_col, list(TRAIN_SPLITS))
    is_valid = np.isin(split_col, list(VALID_SPLITS))
    n_null = int(np.isnan(measure).sum())
    loader_drops = dropped_counts(rows)

    def _mean(x: np.ndarray) -> float:
        x = x[~np.isnan(x)]
        return float(x.mean()) if len(x) else float("nan")

    splits, records = {}, []
    for name in SPLIT_NAMES:
        m = masks[name]
        idx = np.flatnonzero(m)
        splits[name] = idx
        rec = {
            "split": name, "confidence_mode": confidence_mode, "n_rows": int(m.sum()),
            "n_train": int((m & is_train).sum()), "n_valid": int((m & is_valid).sum()),
            "n_other": int((m & ~is_train & ~is_valid).sum()),
            "mean_confidence": _mean(raw[m]), "mean_strength": _mean(strength[m]),
            "mean_edit_distance": float(edit[m].mean()) if m.any() else float("nan"),
            "median_confidence_measure": med_c, "median_edit_distance": med_e,
        }
        for reason, count in sorted(loader_drops.items()):
            rec[f"dropped_{reason}"] = count
        rec["dropped_null_confidence"] = 0 if name == "D_all" else n_null
        records.append(rec)
        logger.info("%s (%s): %d rows (%d train, %d valid)", name, confidence_mode, rec["n_rows"], rec["n_train"],
                    rec["n_valid"])
    return splits, pd.DataFrame.from_records(records)


def select_split(rows: Any, split: str, confidence_mode: str = "strength") -> Any:
    """The rows of one split: ``D_all`` is every row (no confidence needed: UltraFeedback has none), the two
    confidence × edit-distance splits come from :func:`build_splits`."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; available: {sorted(SPLIT_NAMES)}")
    if split == "D_all":
        return rows
    return build_splits(rows, confidence_mode)[0][split]


def id_fraction(key: Any) -> float:
    """A stable pseudo-random number in [0, 1) from a row's id (blake2b, 1e-4 steps): ``id_fraction(id) < f`` puts
    a deterministic fraction ``f`` of the rows aside, whatever their order or the machine."""
    h = int.from_bytes(hashlib.blake2b(str(key).encode(), digest_size=8).digest(), "little")
    return (h % 10_000) / 10_000
