"""The robustness study's reading: one row per claim of the paper, computed from the cell records
(:mod:`drdo_lib.study`), with training seeds as the unit of replication (:mod:`drdo_lib.stats`).

Claims are a table: :data:`CLAIM_FAMILIES` holds functions ``cfg -> [Claim, ...]``; a :class:`Claim` names the
paper's statement, the quantity tested, the predicted sign and how to form its per-(seed, unit) values from the
records (a weighted sum of cells, paired on seed and prompt: :func:`contrast`). Adding a claim is adding a
``Claim`` (or a family function) to the table. :func:`reading` computes, per claim:

* the effect (mean of the per-seed means) and every seed's estimate;
* the seed-level t interval and the hierarchical bootstrap (seeds, then prompts or pairs inside each drawn seed),
  and the interval the verdict uses (``study.interval``: the wider of the two by default), its two-sided p-value
  and half-width (the smallest effect the design could have told from 0);
* the raw verdict (p < 1 − level and the interval excludes 0, on the predicted side: "supports", on the other:
  "contradicts", else "cannot tell") and the Holm–Bonferroni-adjusted one over every claim of the reading (one
  family), side by side. A failed sanity gate turns every verdict into "cannot tell".

Facts about the testbed are measured from the generated data, not copied from its settings (:func:`label_facts`,
applied to each level and seed by the study runner): per noise level and seed, the share of training pairs whose two
responses have exactly equal r* (the generator's ``tie_fraction`` builds some; r* is discrete, so others tie by
chance), the flip rate on decided pairs (the label goes against r*) and the label ceiling — the accuracy against
the labels of a predictor that orders every pair as r* does and flips a fair coin on ties:
``(1 − tied) · (1 − flip) + tied · ½``. On decided pairs the r*-winner is the Bayes-optimal guess (the labels are
Bradley–Terry on r*, so P(label = r*-winner) = σ(|Δr*|/T) > ½), and on tied pairs no predictor beats ½
(p* = ½), so no reward model can expect more against these labels. :func:`reading_markdown` writes all of it,
with each seed's SFT attempts and the seeds left out and why, as ``study_reading.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from drdo_lib.stats import _p, holm, seed_effect, verdict

if TYPE_CHECKING:  # pragma: no cover
    from drdo_lib.study import StudyConfig

__all__ = ["Claim", "CLAIM_FAMILIES", "claims", "contrast", "reading", "reading_sentences", "reading_table",
           "label_facts", "testbed_markdown", "seed_notes", "reading_markdown", "HELDOUT_FIELDS", "ORACLE_METHODS",
           "student_oracle_gap", "frontier", "kl_matched_gain"]

#: Per-prompt fields measured on the held-out prompts (the same prompts at every noise level of a seed, checked by
#: their hash): pooled over levels as one value per prompt (the mean over levels), so a prompt is one unit.
HELDOUT_FIELDS = ("r_greedy", "r_sample", "kl")
#: The methods that learn from an Oracle (or an ensemble): their cells exist per Oracle kind.
ORACLE_METHODS = ("drdo", "edpo")

#: A term of a contrast: (variant, oracle kind, noise level index, weight).
Term = tuple[str, str, int, float]


def _index(records: Sequence[Mapping]) -> dict[tuple, Mapping]:
    return {(r["cell"]["variant"], r["cell"]["noise"], r["cell"]["oracle"], r["cell"]["seed"]): r for r in records}


@dataclass(frozen=True)
class Claim:
    """One claim of the reading. ``values(index, cfg)`` returns seed -> per-unit values (paired contrasts) from the
    record index ``{(variant, noise, oracle, seed): record}``; ``sign`` is the sign the paper predicts."""

    claim: str  # the paper's statement, as the reading names it
    test: str  # short name of the tested quantity (tables)
    what: str  # the tested quantity in words (the sentence)
    sign: int
    values: Callable[[Mapping, "StudyConfig"], dict[int, np.ndarray]]
    unit: str = "prompt"  # what is resampled inside a seed: prompt | pair


def contrast(levels: Sequence[Sequence[Term]], field: str, kind: str = "per_prompt"
             ) -> Callable[[Mapping, "StudyConfig"], dict[int, np.ndarray]]:
    """Per seed, Σ weight · (the field's per-unit values of a cell) for each noise level's terms, paired on seed and
    unit (prompt or pair): a level counts for a seed only when every cell of its terms exists, their value arrays
    have one length and (per-prompt fields) the cells were measured on the same held-out prompts. Levels are pooled
    per seed: :data:`HELDOUT_FIELDS` as the mean over levels per prompt when every level used the same prompts,
    anything else concatenated."""

    def values(idx: Mapping, cfg) -> dict[int, np.ndarray]:
        out = {}
        for s in cfg.seeds:
            parts, hashes = [], set()
            for terms in levels:
                keys = [(v, n, o, s) for v, o, n, _ in terms]
                if not all(k in idx for k in keys):
                    continue
                arrs = [np.asarray(idx[k][kind][field], dtype=float) for k in keys]
                if len({len(a) for a in arrs}) != 1:
                    continue
                if kind == "per_prompt":
                    hs = {idx[k].get("metrics", {}).get("heldout_prompts") for k in keys}
                    if len(hs) != 1:
                        continue
                    hashes |= hs
                parts.append(sum(w * a for (_, _, _, w), a in zip(terms, arrs)))
            if not parts:
                continue
            same = kind == "per_prompt" and field in HELDOUT_FIELDS and len(hashes) == 1 \
                and len({len(p) for p in parts}) == 1
            out[s] = np.mean(parts, axis=0) if same and len(parts) > 1 else np.concatenate(parts)
        return out

    return values


def _variants_of(cfg, method: str) -> list[str]:
    return [v for v in cfg.selected if cfg.variants[v]["method"] == method]


def _noises(cfg) -> list[int]:
    return list(range(len(cfg.noise_levels)))


def _dpo_lemma1(cfg) -> list[Claim]:
    """Lemma 1 on the first DPO variant: (b) the margin on p* = ½ pairs grows, (c) π(y_l) falls and the mass
    moves off the responses ever seen as preferred."""
    out = []
    for v in _variants_of(cfg, "dpo")[:1]:
        lab, ns = cfg.label(v), _noises(cfg)
        out += [
            Claim("Lemma 1b (DPO's margin on p* = ½ pairs grows)", f"{lab} margin growth on p* = ½ pairs",
                  f"{lab}'s margin growth on p* = ½ pairs, nats, all noise levels", +1,
                  contrast([[(v, "none", n, 1.0)] for n in ns], "tie_margin_growth", "per_pair"), "pair"),
            Claim("Lemma 1c (DPO drives π(y_l) down)", f"{lab} Δlog π(y_l) vs SFT",
                  f"{lab}'s change of log π(y_l) from SFT on training pairs, nats", -1,
                  contrast([[(v, "none", n, 1.0)] for n in ns], "dlogp_l", "per_pair"), "pair"),
            Claim("Lemma 1c (DPO moves mass off the preferred responses)", f"{lab} Δlog π(W(x)) vs SFT",
                  f"{lab}'s change from SFT of log π(W(x)), the exact mass on the responses ever seen as preferred "
                  "(a fall is a rise of the mass on never-preferred responses), training prompts", -1,
                  contrast([[(v, "none", n, 1.0), ("sft", "none", n, -1.0)] for n in ns], "log_preferred_mass")),
        ]
    return out


def _edpo_lemma2(cfg) -> list[Claim]:
    """Lemma 2 on the first e-DPO variant with a trained ensemble (reward models learnt from the labels)."""
    out = []
    for v in _variants_of(cfg, "edpo")[:1]:
        for kind in [k for k in cfg.oracle_kinds if k == "trained"][:1]:
            lab, ns = cfg.label(v), _noises(cfg)
            out += [
                Claim("Lemma 2 (e-DPO's margin on p* = ½ pairs grows)",
                      f"{lab} ({kind} ensemble) margin growth on p* = ½ pairs",
                      f"{lab} ({kind} ensemble)'s margin growth on p* = ½ pairs, nats", +1,
                      contrast([[(v, kind, n, 1.0)] for n in ns], "tie_margin_growth", "per_pair"), "pair"),
                Claim("Lemma 2 (e-DPO moves mass off the preferred responses)",
                      f"{lab} ({kind}) Δlog π(W(x)) vs SFT",
                      f"{lab} ({kind} ensemble)'s change from SFT of log π(W(x)), the mass on the responses ever "
                      "seen as preferred", -1,
                      contrast([[(v, kind, n, 1.0), ("sft", "none", n, -1.0)] for n in ns], "log_preferred_mass")),
            ]
    return out


def _robustness(cfg) -> list[Claim]:
    """Per student × baseline: "more robust to noisy preferences" (the r* change from the least to the most noisy
    level, student minus baseline), the r* difference at the most noisy level, and Sec. 5's "earns more reward"
    (r* difference pooled over the levels)."""
    out: list[Claim] = []
    ns = _noises(cfg)
    if len(ns) < 2:
        return out
    field = "r_greedy" if cfg.gold == "greedy" else "r_sample"
    lo, hi = ns[0], ns[-1]
    for st in [cfg.student] if isinstance(cfg.student, str) else list(cfg.student):
        if st not in cfg.selected:
            continue
        so = cfg.reading_oracle
        for b in cfg.baselines:
            if b not in cfg.selected:
                continue
            bo = so if cfg.variants[b]["method"] in ORACLE_METHODS else "none"
            S, B = cfg.label(st), cfg.label(b)
            out += [
                Claim(f"Robustness ({S} vs {B})",
                      f"difference in r* change from {cfg.noise_name(lo)} to {cfg.noise_name(hi)}",
                      f"[{S} ({so}) − {B}] in r* ({cfg.gold}) change from the least to the most noisy level "
                      f"({cfg.noise_name(lo)} → {cfg.noise_name(hi)}), positive = {S} loses less", +1,
                      contrast([[(st, so, hi, 1.0), (st, so, lo, -1.0), (b, bo, hi, -1.0), (b, bo, lo, 1.0)]],
                               field)),
                Claim(f"Robustness ({S} vs {B}, most noisy level)", f"r* difference at {cfg.noise_name(hi)}",
                      f"r* ({cfg.gold}) of {S} ({so}) minus {B} at {cfg.noise_name(hi)}", +1,
                      contrast([[(st, so, hi, 1.0), (b, bo, hi, -1.0)]], field)),
                Claim(f"Sec. 5 ({S} earns more r* than {B})", "r* difference, every noise level",
                      f"r* ({cfg.gold}) of {S} ({so}) minus {B}, mean over the {len(ns)} noise levels per prompt",
                      +1, contrast([[(st, so, n, 1.0), (b, bo, n, -1.0)] for n in ns], field)),
            ]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Per-seed values of the claims on the student's reward fit and on the r*-KL frontier (for the reading)
# ---------------------------------------------------------------------------------------------------------------
def student_oracle_gap(records: Sequence[Mapping], variant: str, noise: int, oracle: str = "trained", *,
                       against: str = "true") -> dict[int, float]:
    """"The DRDO student is as good a reward model as its Oracle": per seed, the student's held-out pairwise
    accuracy minus its Oracle's on the same pairs (``against="true"``: vs r*, ``"labels"``: vs the labels), from the
    cells' ``reward_fit``. 0 is "as good"; the reading chooses the margin. Seeds without a fit are left out."""
    key = {"true": ("acc_true", "oracle_acc_true"), "labels": ("acc_labels", "oracle_acc_labels")}[against]
    out = {}
    for r in records:
        c = r["cell"]
        fit = r.get("reward_fit")
        if (c["variant"], c["noise"], c["oracle"]) == (variant, noise, oracle) and fit:
            out[int(c["seed"])] = float(fit[key[0]]) - float(fit[key[1]])
    return dict(sorted(out.items()))


def frontier(record: Mapping, sft_record: Mapping | None = None, *, gold: str = "greedy") -> list[tuple[float, float]]:
    """The (KL, r*) points of one cell along training (``checkpoints``), sorted by step, starting with the SFT
    point (KL 0) when ``sft_record`` (the ``sft`` cell of the same noise level and seed) is given."""
    field_ = f"gold_{gold}"
    pts = [(0.0, float(p[field_])) for p in (sft_record or {}).get("checkpoints", [])[:1]]
    pts += [(float(p["kl"]), float(p[field_])) for p in sorted(record.get("checkpoints", []), key=lambda p: p["step"])]
    return pts


def _interp_at(points: Sequence[tuple[float, float]], kl: float) -> float:
    """r* at ``kl`` by linear interpolation along a trajectory's points in step order (the first crossing of ``kl``);
    NaN when the trajectory never reaches it."""
    for (k0, r0), (k1, r1) in zip(points, points[1:]):
        lo, hi = min(k0, k1), max(k0, k1)
        if lo <= kl <= hi:
            return r0 if k1 == k0 else r0 + (r1 - r0) * (kl - k0) / (k1 - k0)
    if points and points[0][0] == kl:
        return points[0][1]
    return float("nan")


def kl_matched_gain(records: Sequence[Mapping], variant: str, baseline: str, noise: int, *, oracle: str = "trained",
                    baseline_oracle: str | None = None, kl: float | None = None, gold: str = "greedy"
                    ) -> dict[int, dict[str, float]]:
    """"At equal KL, ``variant`` earns more r* than ``baseline``": per seed, both cells' r* interpolated on their
    own (KL, r*) frontier (:func:`frontier`, from the SFT point) at one KL, and the difference. The KL is ``kl`` or,
    by default, the largest KL both trajectories reach (the smaller of their largest KLs). ``baseline_oracle``
    defaults to ``none`` for a method without an Oracle. Returns ``{seed: {kl, r_variant, r_baseline, diff}}``."""
    idx = _index(records)
    seeds = sorted({int(r["cell"]["seed"]) for r in records})
    out = {}
    for seed in seeds:
        v = idx.get((variant, noise, oracle, seed))
        b = None
        for bo in ([baseline_oracle] if baseline_oracle else ["none", oracle]):
            b = b or idx.get((baseline, noise, bo, seed))
        if v is None or b is None or not v.get("checkpoints") or not b.get("checkpoints"):
            continue
        sft = idx.get(("sft", noise, "none", seed))
        fv, fb = frontier(v, sft, gold=gold), frontier(b, sft, gold=gold)
        at = kl if kl is not None else min(max(k for k, _ in fv), max(k for k, _ in fb))
        rv, rb = _interp_at(fv, at), _interp_at(fb, at)
        out[seed] = {"kl": float(at), "r_variant": rv, "r_baseline": rb, "diff": rv - rb}
    return out



def _students(cfg) -> list[str]:
    return [st for st in ([cfg.student] if isinstance(cfg.student, str) else list(cfg.student)) if st in cfg.selected]


def _per_seed(fn) -> Callable[[Mapping, "StudyConfig"], dict[int, np.ndarray]]:
    """Claim values from a function of the records returning ``{seed: [value per noise level]}``: one value per
    seed (the mean over the levels it has), so the interval is a seed-level one."""

    def values(idx: Mapping, cfg) -> dict[int, np.ndarray]:
        per = fn(list(idx.values()), cfg)
        return {s: np.asarray([np.nanmean(v)]) for s, v in sorted(per.items())
                if len(v) and np.isfinite(v).any()}

    return values


def _student_reward_model(cfg) -> list[Claim]:
    """The paper's title claim, measured: each DRDO student (with the trained Oracle) is as good a reward model as
    its Oracle — held-out pairwise accuracy against r*, student minus Oracle, on the same pairs (positive = the
    student orders pairs like r* more often than its Oracle; a narrow interval around 0 reads "as good")."""
    if "trained" not in cfg.oracle_kinds:
        return []
    out = []
    for st in _students(cfg):
        if cfg.variants[st]["method"] != "drdo":
            continue

        def gaps(records, cfg, st=st):
            per: dict[int, list[float]] = {}
            for n in _noises(cfg):
                for seed, g in student_oracle_gap(records, st, n, "trained").items():
                    per.setdefault(seed, []).append(g)
            return per

        lab = cfg.label(st)
        out.append(Claim(f"Title claim ({lab} is as good a reward model as its Oracle)",
                         "student − Oracle pairwise accuracy vs r*",
                         f"{lab}'s held-out pairwise accuracy against r* minus its trained Oracle's on the same pairs, "
                         "mean over the noise levels", +1, _per_seed(gaps), "seed"))
    return out


def _kl_matched(cfg) -> list[Claim]:
    """Each student against each baseline at equal KL(π‖π_SFT), at the most noisy level: both cells' r* read off
    their own r*–KL trajectory (checkpoints along training, from the SFT point) at the largest KL both reach."""
    ns = _noises(cfg)
    if not ns:
        return []
    hi = ns[-1]
    out = []
    for st in _students(cfg):
        for b in cfg.baselines:
            if b not in cfg.selected:
                continue
            so = cfg.reading_oracle
            bo = so if cfg.variants[b]["method"] in ORACLE_METHODS else "none"

            def diffs(records, cfg, st=st, b=b, so=so, bo=bo):
                got = kl_matched_gain(records, st, b, hi, oracle=so, baseline_oracle=bo, gold=cfg.gold)
                return {seed: [d["diff"]] for seed, d in got.items()}

            S, B = cfg.label(st), cfg.label(b)
            out.append(Claim(f"At equal KL ({S} vs {B}, most noisy level)", f"r* difference at equal KL, "
                             f"{cfg.noise_name(hi)}", f"r* ({cfg.gold}) of {S} ({so}) minus {B} at the same "
                             f"KL(π‖π_SFT) (the largest both reach, per seed) at {cfg.noise_name(hi)}", +1,
                             _per_seed(diffs), "seed"))
    return out


#: The reading's claims, family by family (each ``cfg -> [Claim]``); append a function to add claims.
CLAIM_FAMILIES: list[Callable[["StudyConfig"], list[Claim]]] = [_dpo_lemma1, _edpo_lemma2, _robustness,
                                                                 _student_reward_model, _kl_matched]


def claims(cfg) -> list[Claim]:
    """Every claim of the reading for the grid ``cfg``, in order."""
    return [c for fam in CLAIM_FAMILIES for c in fam(cfg)]


def _seeds_text(per_seed: Mapping[int, float], sign: int) -> str:
    if not per_seed:
        return "—"
    k = sum(1 for v in per_seed.values() if (v > 0 if sign >= 0 else v < 0))
    return (", ".join(f"seed {s} {v:+.3f}" for s, v in sorted(per_seed.items()))
            + f" ({k} of {len(per_seed)} on the predicted side)")


def reading(records: Sequence[Mapping], cfg, *, gate_results: Sequence[Mapping] | None = None
            ) -> list[dict[str, Any]]:
    """One row per claim (:func:`claims`), computed from the cell records (pure: no model is loaded): ``claim,
    test, effect, ci_low, ci_high, method, half_width, p, p_holm, per_seed, n_seeds, n, t_low, t_high, t_p,
    boot_low, boot_high, boot_p, verdict, why, verdict_holm, why_holm, sentence``. Holm–Bonferroni runs over every
    claim with a p-value (one family). A failed sanity gate turns every verdict into ``cannot tell``."""
    idx = _index(records)
    lvl = f"{cfg.level:.0%}"
    interval = getattr(cfg, "interval", "wider")
    gate_failed = [g for g in (gate_results or []) if g and g.get("status") == "failed"]
    rows: list[dict[str, Any]] = []
    for i, c in enumerate(claims(cfg)):
        est = seed_effect(c.values(idx, cfg), level=cfg.level, n_boot=cfg.n_bootstrap, seed=i, interval=interval)
        rows.append({"claim": c.claim, "test": c.what, "short": c.test, "sign": c.sign, "unit": c.unit,
                     **{k: est[k] for k in ("effect", "ci_low", "ci_high", "method", "half_width", "p", "per_seed",
                                            "n_seeds", "n", "t_low", "t_high", "t_p", "boot_low", "boot_high",
                                            "boot_p")}, "_est": est})
    p_adj = holm([r["p"] for r in rows])
    m = int(np.isfinite([r["p"] for r in rows]).sum()) if rows else 0
    for r, pa in zip(rows, p_adj):
        est = r.pop("_est")
        r["p_holm"] = float(pa)
        v, why = verdict(est, r["sign"], min_seeds=cfg.min_seeds)
        va, why_a = verdict(est, r["sign"], min_seeds=cfg.min_seeds, p=r["p_holm"])
        if gate_failed:
            v = va = "cannot tell"
            why = why_a = (f"the sanity gate failed for {len(gate_failed)} seed(s): the testbed cannot show an "
                           "improvement over SFT")
        r.update(verdict=v, why=why, verdict_holm=va, why_holm=why_a)
        if not r["n"]:
            r.update(verdict="cannot tell", verdict_holm="cannot tell")
            r["sentence"] = f"{r['claim']}: cannot tell — {r['test']}: no finished cells in the grid."
            continue
        other = ("hierarchical bootstrap", r["boot_low"], r["boot_high"]) if r["method"].startswith("seed") else \
            ("seed-level t", r["t_low"], r["t_high"])
        other_txt = f"; {other[0]}: [{other[1]:+.3f}, {other[2]:+.3f}]" if np.isfinite(other[1]) else ""
        r["sentence"] = (
            f"{r['claim']}: {r['verdict']} (Holm over {m} claims: {r['verdict_holm']}) — {r['test']} = "
            f"{r['effect']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] ({lvl} interval: {r['method']}, "
            f"{r['n_seeds']} seed(s), {r['n']} seed×{r['unit']} values{other_txt}); p = {_p(r['p'])}, Holm p = "
            f"{_p(r['p_holm'])}; smallest detectable |effect| ≈ {r['half_width']:.3f}; per seed: "
            f"{_seeds_text(r['per_seed'], r['sign'])}; {r['why']}.")
    return rows


def reading_sentences(records: Sequence[Mapping], cfg, **kw) -> list[str]:
    """The reading as sentences (one per claim), computed from the numbers."""
    return [r["sentence"] for r in reading(records, cfg, **kw)]


def reading_table(rows: Sequence[Mapping]):
    """The reading as a table (``study_reading_table``): claim, raw and Holm verdicts side by side, effect, interval
    and its kind, detectable effect, p-values, per-seed estimates."""
    import pandas as pd

    return pd.DataFrame([{
        "claim": r["claim"], "verdict": r["verdict"], "verdict (Holm)": r["verdict_holm"], "effect": r["effect"],
        "ci_low": r["ci_low"], "ci_high": r["ci_high"], "interval": r["method"], "detectable |effect|":
        r["half_width"], "p": r["p"], "p (Holm)": r["p_holm"], "seeds": r["n_seeds"],
        "per seed": " / ".join(f"{v:+.3f}" for _, v in sorted(r["per_seed"].items())) or "—", "why": r["why"]}
        for r in rows])


# ---------------------------------------------------------------------------------------------------------------
# Facts about the testbed, measured from the generated data
# ---------------------------------------------------------------------------------------------------------------
def label_facts(r_chosen: Sequence[float], r_rejected: Sequence[float], temperature: float | None = None
                ) -> dict[str, float]:
    """From the r* of each pair's labelled winner and loser: ``pairs``, ``tied`` (share with exactly equal r*),
    ``flip`` (share of decided pairs whose label goes against r*), ``ceiling`` = (1 − tied)(1 − flip) + tied/2
    (the accuracy against these labels of a predictor that orders each pair as r* does and flips a fair coin on
    ties: module docstring) and, given the Bradley–Terry ``temperature``, ``flip_expected`` = the mean over
    decided pairs of σ(−|Δr*|/T) (the flip rate the labelling model predicts)."""
    rc, rr = np.asarray(r_chosen, dtype=float), np.asarray(r_rejected, dtype=float)
    if rc.shape != rr.shape:
        raise ValueError(f"r_chosen and r_rejected differ in shape: {rc.shape} vs {rr.shape}")
    d = rc - rr
    n = len(d)
    nan = float("nan")
    if n == 0:
        return {"pairs": 0, "tied": nan, "flip": nan, "ceiling": nan, "flip_expected": nan}
    tied = d == 0
    dec = d[~tied]
    t = float(tied.mean())
    flip = float((dec < 0).mean()) if len(dec) else nan
    out = {"pairs": int(n), "tied": t, "flip": flip,
           "ceiling": (1 - t) * (1 - flip) + 0.5 * t if len(dec) else 0.5, "flip_expected": nan}
    if temperature is not None and len(dec):
        out["flip_expected"] = float(np.mean(1.0 / (1.0 + np.exp(np.abs(dec) / float(temperature)))))
    return out


def testbed_markdown(facts) -> list[str]:
    """The measured testbed facts (``drdo_lib.study.testbed_facts``) as Markdown lines: per noise level, the mean over seeds
    and every seed's value."""
    if facts is None or len(facts) == 0:
        return []
    out = ["## The testbed, measured (training pairs of every cell's data)", "",
           "Tied = share of training pairs whose two responses have exactly equal r* (the generator's "
           "`tie_fraction` builds some on purpose; r* is discrete, so others tie by chance); flip = share of the "
           "other (decided) pairs whose label goes against r* (expected from the Bradley–Terry model in brackets); "
           "label ceiling = (1 − tied)·(1 − flip) + ½·tied, the accuracy against these labels of a predictor "
           "that orders every pair as r* does (a coin on ties): no reward model can expect more.", "",
           "| noise level | generator tie_fraction | seeds | pairs per seed | tied (per seed) | flip on decided "
           "(per seed) [expected] | label ceiling (per seed) |", "|---|---|---|---|---|---|---|"]
    for n, g in facts.groupby("noise", sort=True):
        per = lambda col: " / ".join(f"{x:.3f}" for x in g[col])  # noqa: E731
        out.append(f"| {g['noise_name'].iloc[0]} | {g['tie_fraction'].iloc[0]:g} | "
                   f"{', '.join(str(s) for s in g['seed'])} | {int(g['pairs'].mean())} | {g['tied'].mean():.3f} "
                   f"({per('tied')}) | {g['flip'].mean():.3f} ({per('flip')}) [{g['flip_expected'].mean():.3f}] | "
                   f"{g['ceiling'].mean():.3f} ({per('ceiling')}) |")
    return out + [""]


# ---------------------------------------------------------------------------------------------------------------
# Seeds: SFT attempts, gates, seeds left out
# ---------------------------------------------------------------------------------------------------------------
def seed_notes(cfg, sft_histories: Mapping[int, Sequence[Mapping]], gates: Mapping[int, Mapping] | None = None,
               records: Sequence[Mapping] = ()) -> list[str]:
    """One line per training seed: its SFT attempts (init seed, last loss, r* on training prompts, kept or not under
    the restart rule ``study.sft_min_reward``), its sanity gate, and whether its cells are in the reading; then the
    seeds left out of the grid (``study.dropped_seeds``) with the reason, and the seeds whose SFT never passed the
    restart rule (kept, the gate decided)."""
    gates = gates or {}
    with_cells = {r["cell"]["seed"] for r in records}
    lines = []
    for s in cfg.seeds:
        att = list(sft_histories.get(s) or [])
        parts = [f"seed {s}:"]
        if att:
            tried = "; ".join(
                f"init seed {a['init_seed']}: loss {a.get('train_loss_last') or float('nan'):.2f}"
                + (f", r* {a['train_prompt_reward']:.2f} on training prompts"
                   + ("" if a.get("accepted") else " (below study.sft_min_reward)")
                   if "train_prompt_reward" in a else "") for a in att)
            stuck = cfg.sft_min_reward is not None and att and not att[-1].get("accepted", True)
            parts.append(f"SFT in {len(att)} attempt(s) ({tried})"
                         + ("; no attempt reached the restart threshold, the last was kept" if stuck else ""))
        else:
            parts.append("SFT history not recorded")
        g = gates.get(s)
        if g:
            parts.append(f"sanity gate {g.get('status')} (DPO on clean labels minus SFT on r*: "
                         f"{g.get('advantage', float('nan')):+.3f} [{g.get('ci_low', float('nan')):+.3f}, "
                         f"{g.get('ci_high', float('nan')):+.3f}])")
        parts.append("cells in the reading" if s in with_cells else "no finished cells: not in the reading")
        lines.append("- " + parts[0] + " " + "; ".join(parts[1:]) + ".")
    for s, why in sorted((getattr(cfg, "dropped_seeds", None) or {}).items()):
        lines.append(f"- seed {s}: left out of the grid before any preference training — {why}.")
    return lines


def reading_markdown(title: str, header: str, rows: Sequence[Mapping], cfg, *, seed_lines: Sequence[str] = (),
                     facts=None) -> str:
    """``study_reading.md``: the header line, the seeds (SFT attempts, gates, seeds left out), the measured testbed
    facts, the claims table (raw and Holm verdicts side by side) and one sentence per claim."""
    n_seeds = max((r["n_seeds"] for r in rows), default=0)
    lvl = f"{cfg.level:.0%}"
    text = [f"# {title}", "", header, "", "## Training seeds", "", *seed_lines, "", *testbed_markdown(facts),
            "## Claims", "",
            f"Seeds are the unit of replication: each claim's {lvl} interval is the wider of a seed-level t interval "
            "(over the per-seed estimates) and a hierarchical bootstrap (seeds, then prompts or pairs inside each "
            "drawn seed)" + ("" if getattr(cfg, "interval", "wider") == "wider" else
                            f" (here: `study.interval: {cfg.interval}`)")
            + f"; contrasts are paired on seed and prompt. Raw verdict: p < {1 - cfg.level:g} and the interval "
            f"excludes 0; Holm: the same with Holm–Bonferroni-adjusted p over the {len(rows)} claims. Detectable = "
            f"the interval's half-width, the smallest effect {n_seeds} seed(s) could tell from 0. Fewer than "
            f"{cfg.min_seeds} seeds: cannot tell.", "",
            "| claim | verdict | Holm | effect [interval] | detectable | p / Holm p | per seed |",
            "|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = " / ".join(f"{v:+.3f}" for _, v in sorted(r["per_seed"].items())) or "—"
        iv = f"{r['effect']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if r["n"] else "—"
        hw = f"±{r['half_width']:.3f}" if np.isfinite(r["half_width"]) else "—"
        text.append(f"| {r['claim']} | {r['verdict']} | {r['verdict_holm']} | {iv} | {hw} | {_p(r['p'])} / "
                    f"{_p(r['p_holm'])} | {seeds} |")
    text += ["", *[f"- {r['sentence']}" for r in rows]]
    return "\n".join(text) + "\n"
