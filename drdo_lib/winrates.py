"""Paired win rates and reward advantages with percentile-bootstrap intervals that resample *prompts* (clusters),
so several samples of one prompt move together. Used by :mod:`drdo_lib.evaluation` (Table 2 form, Fig. 3)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["bootstrap_ci", "win_rate", "mean_advantage"]


def _clusters(n: int, groups: Sequence[Any] | None) -> list[np.ndarray]:
    if groups is None:
        return [np.array([i]) for i in range(n)]
    codes, _ = pd.factorize(pd.Series(list(groups)))
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def bootstrap_ci(values: np.ndarray, *, groups: Sequence[Any] | None = None, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (shape (N,) or (N, k) for k means at once).

    With ``groups`` (e.g. prompt ids) whole groups are resampled (cluster bootstrap), so repeated samples of one
    prompt are not treated as independent. Returns ``(low, high)`` (arrays of shape (k,) for 2-D input).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] == 0:
        return (float("nan"), float("nan"))
    v2 = v.reshape(len(v), -1)
    clusters = _clusters(len(v2), groups)
    sums = np.stack([v2[c].sum(axis=0) for c in clusters])  # (G, k)
    counts = np.array([len(c) for c in clusters], dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(clusters), size=(n_boot, len(clusters)))
    boot = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)[:, None]  # (n_boot, k)
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    if v.ndim == 1:
        return float(lo[0]), float(hi[0])
    return lo, hi


def win_rate(r_a: Sequence[float], r_b: Sequence[float], *, groups: Sequence[Any] | None = None,
             tie_tolerance: float = 0.0, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Win/tie/loss rates of a over b from paired rewards (Table 2 form: a win is ``r_a > r_b``; ties separate).

    Returns ``n, wins, ties, losses, win_rate, tie_rate, loss_rate``, ``score = (wins + ties / 2) / n`` (the
    ties-as-half win rate, comparable to 0.5 and to judges that never tie) and bootstrap intervals
    ``win_rate_ci_low/high``, ``tie_rate_ci_low/high``, ``score_ci_low/high`` (prompt-clustered when ``groups``
    is given).
    """
    a, b = np.asarray(r_a, dtype=np.float64), np.asarray(r_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"r_a and r_b must be 1-D of the same length, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("rewards must be finite")
    d = a - b
    win, tie = d > tie_tolerance, np.abs(d) <= tie_tolerance
    n = len(d)
    out: dict[str, Any] = {"n": n, "wins": int(win.sum()), "ties": int(tie.sum()),
                           "losses": int(n - win.sum() - tie.sum())}
    if n == 0:
        nan = float("nan")
        out.update(win_rate=nan, tie_rate=nan, loss_rate=nan, score=nan, win_rate_ci_low=nan, win_rate_ci_high=nan,
                   tie_rate_ci_low=nan, tie_rate_ci_high=nan, score_ci_low=nan, score_ci_high=nan)
        return out
    out.update(win_rate=out["wins"] / n, tie_rate=out["ties"] / n, loss_rate=out["losses"] / n,
               score=(out["wins"] + out["ties"] / 2) / n)
    lo, hi = bootstrap_ci(np.stack([win, tie, win + 0.5 * tie], axis=1).astype(float), groups=groups,
                          n_boot=n_boot, level=level, seed=seed)
    out.update(win_rate_ci_low=float(lo[0]), win_rate_ci_high=float(hi[0]), tie_rate_ci_low=float(lo[1]),
               tie_rate_ci_high=float(hi[1]), score_ci_low=float(lo[2]), score_ci_high=float(hi[2]))
    return out


def mean_advantage(r_a: Sequence[float], r_b: Sequence[float], *, groups: Sequence[Any] | None = None,
                   n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Mean paired difference ``E[r_a − r_b]`` with a (prompt-clustered) bootstrap interval."""
    a, b = np.asarray(r_a, dtype=np.float64), np.asarray(r_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"r_a and r_b must be 1-D of the same length, got {a.shape} and {b.shape}")
    d = a - b
    lo, hi = bootstrap_ci(d, groups=groups, n_boot=n_boot, level=level, seed=seed)
    return {"n": len(d), "advantage": float(d.mean()) if len(d) else float("nan"), "ci_low": lo, "ci_high": hi}
