"""Statistics with training seeds as the unit of replication (the robustness study's reading, :mod:`drdo_lib.study`).

A study cell yields one value per held-out prompt (or per training pair) for one training seed. Values of one seed
share that seed's SFT policy, testbed draw and training run, so they are *not* independent replicates of the
experiment: pooling (seed, prompt) values and resampling them measures prompt noise only. Here the seed is the
outer level of every interval:

* :func:`seed_t_interval`: a t interval over the per-seed means (S − 1 degrees of freedom) and its two-sided
  one-sample t-test p-value;
* :func:`hierarchical_bootstrap`: resample seeds with replacement, then units (prompts or pairs) with replacement
  inside each drawn seed; the statistic is the mean over the drawn seeds of their resampled means (every seed
  weighs the same); percentile interval and the two-sided bootstrap p-value (twice the smaller tail share at 0,
  the smallest α at which the percentile interval would exclude 0);
* :func:`seed_effect`: both, and the interval the reading uses (``interval="wider"``: the wider of the two, the
  conservative choice; its p-value goes with it), the per-seed estimates, and the half-width of the chosen
  interval, i.e. the smallest effect the design could have told from 0;
* :func:`holm`: Holm–Bonferroni adjusted p-values for a family of claims;
* :func:`verdict`: "supports" / "contradicts" / "cannot tell" from the p-value and the interval.

Contrasts (method A − method B, noise level 0 − level 2, a policy − its SFT policy) are formed *before* these
functions, per seed and prompt, so they are paired on seed and prompt.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["seed_t_interval", "hierarchical_bootstrap", "seed_effect", "holm", "verdict", "INTERVALS",
           "VERDICTS"]

#: Which interval :func:`seed_effect` reports: the wider of the two, or one of them.
INTERVALS = ("wider", "t", "bootstrap")
VERDICTS = ("supports", "contradicts", "cannot tell")
_NAMES = {"t": "seed-level t", "bootstrap": "hierarchical bootstrap"}


def _clean(values_by_seed: Mapping[Any, Sequence[float]]) -> dict[Any, np.ndarray]:
    out = {}
    for s, v in values_by_seed.items():
        a = np.asarray(v, dtype=float).ravel()
        a = a[np.isfinite(a)]
        if len(a):
            out[s] = a
    return out


def seed_t_interval(seed_means: Sequence[float], *, level: float = 0.95) -> dict[str, float]:
    """t interval of the mean of per-seed estimates (S − 1 df) and the two-sided t-test p-value of mean = 0.
    Fewer than 2 seeds: nan (no seed-level spread to measure). Seeds that agree exactly: a zero-width interval,
    p = 0 unless the mean is 0."""
    from scipy import stats as st

    m = np.asarray(seed_means, dtype=float)
    m = m[np.isfinite(m)]
    nan = float("nan")
    if len(m) < 2:
        return {"low": nan, "high": nan, "p": nan, "mean": float(m.mean()) if len(m) else nan}
    mean, se = float(m.mean()), float(m.std(ddof=1) / math.sqrt(len(m)))
    q = float(st.t.ppf(0.5 + level / 2, len(m) - 1))
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * st.t.sf(abs(mean) / se, len(m) - 1))
    return {"low": mean - q * se, "high": mean + q * se, "p": p, "mean": mean}


def hierarchical_bootstrap(values_by_seed: Mapping[Any, Sequence[float]], *, level: float = 0.95,
                           n_boot: int = 2000, seed: int = 0, chunk: int = 2_000_000) -> dict[str, float]:
    """Two-level percentile bootstrap of the mean of per-seed means: each resample draws S seeds with replacement
    and, independently for every draw (a seed drawn twice gets two within-seed resamples), that seed's units with
    replacement. Returns ``low, high`` (percentile interval), ``p`` (two-sided: 2·min(share ≤ 0, share ≥ 0) with
    the +1 correction, at most 1) and ``mean`` (of the seed means). ``chunk`` bounds the random indices drawn at
    once (memory)."""
    vals = list(_clean(values_by_seed).values())
    nan = float("nan")
    if not vals:
        return {"low": nan, "high": nan, "p": nan, "mean": nan}
    rng = np.random.default_rng(seed)
    S = len(vals)
    pick = rng.integers(0, S, size=(n_boot, S))
    total = np.zeros(n_boot)
    for s, v in enumerate(vals):
        rows = np.nonzero(pick == s)[0]  # one entry per (resample, draw) of seed s
        n = len(v)
        step = max(1, chunk // n)
        means = np.empty(len(rows))
        for a in range(0, len(rows), step):
            k = min(step, len(rows) - a)
            means[a:a + k] = v[rng.integers(0, n, size=(k, n))].mean(axis=1)
        np.add.at(total, rows, means)
    boot = total / S
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    p = min(1.0, 2 * min((np.sum(boot <= 0) + 1) / (n_boot + 1), (np.sum(boot >= 0) + 1) / (n_boot + 1)))
    return {"low": float(lo), "high": float(hi), "p": float(p), "mean": float(np.mean([x.mean() for x in vals]))}


def seed_effect(values_by_seed: Mapping[Any, Sequence[float]], *, level: float = 0.95, n_boot: int = 2000,
                seed: int = 0, interval: str = "wider") -> dict[str, Any]:
    """The effect of per-(seed, unit) values with seeds as the unit of replication.

    ``values_by_seed``: seed -> values (one per prompt or pair, already paired contrasts). Returns ``effect`` (the
    mean of the per-seed means), ``ci_low, ci_high, p`` of the chosen interval (``interval``: ``wider`` of the two,
    or ``t`` / ``bootstrap``), ``method`` (its name), ``half_width`` (the smallest |effect| the interval could
    have told from 0), ``t_low, t_high, t_p`` and ``boot_low, boot_high, boot_p`` (both intervals), ``per_seed``
    (seed -> mean), ``n_seeds``, ``n`` (values in all), ``level``. With one seed only the bootstrap exists (it
    then resamples units only, and the method says so)."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    vals = _clean(values_by_seed)
    nan = float("nan")
    per_seed = {s: float(v.mean()) for s, v in vals.items()}
    out: dict[str, Any] = {"effect": nan, "ci_low": nan, "ci_high": nan, "p": nan, "method": "none",
                           "half_width": nan, "t_low": nan, "t_high": nan, "t_p": nan, "boot_low": nan,
                           "boot_high": nan, "boot_p": nan, "per_seed": per_seed, "n_seeds": len(vals),
                           "n": int(sum(len(v) for v in vals.values())), "level": level}
    if not vals:
        return out
    t = seed_t_interval(list(per_seed.values()), level=level)
    b = hierarchical_bootstrap(vals, level=level, n_boot=n_boot, seed=seed)
    out.update(effect=float(np.mean(list(per_seed.values()))), t_low=t["low"], t_high=t["high"], t_p=t["p"],
               boot_low=b["low"], boot_high=b["high"], boot_p=b["p"])
    if interval == "bootstrap" or not np.isfinite(t["low"]):
        pick = "bootstrap"
    elif interval == "t":
        pick = "t"
    else:
        pick = "t" if (t["high"] - t["low"]) >= (b["high"] - b["low"]) else "bootstrap"
    src = t if pick == "t" else b
    out.update(ci_low=src["low"], ci_high=src["high"], p=src["p"], half_width=(src["high"] - src["low"]) / 2,
               method=_NAMES[pick] + (" (1 seed: units only)" if len(vals) == 1 else ""))
    return out


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1) over the finite entries of
    ``pvalues``; nan stays nan and does not count in the family. Reject claim i at family-wise level α when
    adjusted p_i < α."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def verdict(est: Mapping[str, Any], predicted_sign: int = 1, *, min_seeds: int = 1, p: float | None = None,
            level: float | None = None) -> tuple[str, str]:
    """``(verdict, why)``: ``supports`` when the effect lies on the predicted side of 0 — the p-value (``p``, default
    ``est["p"]``; pass a Holm-adjusted one for the family-wise verdict) is below 1 − level *and* the interval
    excludes 0 —, ``contradicts`` when it lies on the other side by the same test, else ``cannot tell``; fewer than
    ``min_seeds`` seeds always read ``cannot tell``."""
    lo, hi = est.get("ci_low", float("nan")), est.get("ci_high", float("nan"))
    p = est.get("p", float("nan")) if p is None else p
    alpha = 1 - (level if level is not None else est.get("level", 0.95))
    n_seeds = est.get("n_seeds", len(est.get("per_seed", {}) or {}))
    if not (np.isfinite(lo) and np.isfinite(hi)) or not n_seeds:
        return "cannot tell", "no data"
    if n_seeds < min_seeds:
        return "cannot tell", f"{n_seeds} seed(s), fewer than {min_seeds}"
    s = 1 if predicted_sign >= 0 else -1
    lo_s, hi_s = sorted((s * lo, s * hi))
    side = 1 if lo_s > 0 else (-1 if hi_s < 0 else 0)
    if side == 0:
        return "cannot tell", "interval includes 0"
    if not (np.isfinite(p) and p < alpha):
        return "cannot tell", f"p = {_p(p)} ≥ {alpha:g}"
    if side > 0:
        return "supports", f"p = {_p(p)} < {alpha:g}, on the predicted side"
    return "contradicts", f"p = {_p(p)} < {alpha:g}, on the other side"


def _p(p: float) -> str:
    return "nan" if not np.isfinite(p) else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")
