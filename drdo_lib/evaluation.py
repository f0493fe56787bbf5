"""Evaluation of trained policies: oracle and gold win rates, reward advantage, judged head-to-heads (paper Sec. 6).

What is computed (each with a percentile-bootstrap confidence interval that resamples *prompts*, so several
samples of one prompt move together, and over several sampling seeds where the profile asks for them):

- **Win rate against a baseline (Table 2 form)**: a student's response and a baseline's response to the same prompt
  (same temperature, seed and sample index) are scored by a reward r; following the paper (and Lambert et al.
  2024) the student *wins* when ``r(x, y_student) > r(x, y_baseline)``. Ties (``|Δr| <= tie_tolerance``) are
  reported separately: ``win_rate = wins / n``, ``tie_rate = ties / n``, ``loss_rate = losses / n``.
  With r = the oracle this is the paper's oracle win rate; with r = the synthetic testbed's true reward r* it is
  the **gold win rate** (the quantity the oracle and the LLM judge try to estimate).
- **Expected reward advantage (Fig. 3)**: ``E[r(x, y_policy)] − E[r(x, y_base)]`` with y_base the SFT policy's
  response (Fig. 3 left) or the human/reference summary (Fig. 3 right). Rewards are normalised before the difference
  (``reward_normalization="zscore"``: centred and scaled by the mean and standard deviation of every reward scored
  on that prompt set — all policies, temperatures and the references — the paper says only "normalized").
- **Judged head-to-heads (Tables 1 and 3)** go through :func:`drdo_lib.judge.judge_pairs` (an LLM judge, or a
  reward-function judge offline) and :func:`drdo_lib.judge.win_rate_summary`.

The notebook-level pipeline (:func:`discover_policies`, :func:`generate_all`, :func:`score_generations`,
:func:`win_rate_grid`, :func:`reward_advantage_grid`, :func:`head_to_head`) writes everything under
``runs/<profile>/eval/`` so that notebook 06 can rebuild the tables without a model in memory. The statistics
live in :mod:`drdo_lib.winrates` and reward-model scoring in :mod:`drdo_lib.scoring` (both re-exported here).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from drdo_lib import provenance
from drdo_lib.generation import GenerationConfig
from drdo_lib.paper_numbers import METHOD_NAMES, PAPER_TEMPERATURES
from drdo_lib.scoring import RewardScorer
from drdo_lib.winrates import bootstrap_ci, mean_advantage, win_rate

logger = logging.getLogger(__name__)

__all__ = [
    "EvalConfig",
    "METHODS",
    "discover_policies",
    "generate_all",
    "score_generations",
    "paired",
    "win_rate_grid",
    "table2_form",
    "reward_advantage_grid",
    "head_to_head",
    "excl_ties_interval",
    "JUDGE_OFFLINE",
    "eval_prompt_sets",
    "build_scorers",
    "judge_reward_fn",
    "run",
    "policy_reward_table",
    "table1_comparisons",
]

#: Preference methods evaluated against each other (DRDO is the student of Tables 1–3).
METHODS = ("drdo", "dpo", "edpo", "ipo")
#: ``judge_model`` values that need no network: "gold" (the testbed's r*) and "oracle" (the trained oracle).
JUDGE_OFFLINE = ("gold", "oracle")


@dataclass(frozen=True)
class EvalConfig:
    """Settings of notebook 05 (the ``eval:`` section of a profile)."""

    student: str = "drdo"  # the method whose win rates are reported (the rows of Tables 1-3)
    baselines: tuple[str, ...] = ("dpo", "edpo")  # preference baselines it is compared with (SFT is always added)
    splits: tuple[str, ...] = ("D_all", "D_hc_he", "D_lc_le")  # training splits whose policies are evaluated
    n_prompts: int = 500  # held-out in-distribution prompts (Table 2 oracle/gold win rates); at most the set's size
    n_ood_prompts: int = 1000  # out-of-distribution prompts (Table 1 judge, Fig. 3 advantage); paper: 1,000 CNN/DM
    n_alpaca: int = 805  # Table 3 prompts at most (AlpacaEval has 805 instructions)
    prompt_template: str = "tldr"  # "tldr" | "chat" | "raw": how prompts are formatted (drdo_lib.data.tokenize)
    temperatures: tuple[float, ...] = PAPER_TEMPERATURES  # sampling temperatures (paper: 0.2, 0.5, 0.7, 0.9)
    top_p: float = 0.8  # nucleus sampling (paper: 0.8)
    max_new_tokens: int = 256  # generation cap (paper: 256)
    max_prompt_length: int = 512  # prompt tokens kept (the end of longer prompts)
    max_length: int = 1024  # prompt + response tokens given to the reward model (the end is kept)
    batch_size: int = 16  # generation and scoring batch size
    samples_per_prompt: int = 1  # completions per prompt, temperature and seed
    seeds: tuple[int, ...] = (0,)  # sampling seeds (independent replicates; spread across seeds is reported)
    head_to_head_temperature: float = 0.7  # temperature of the samples judged in Tables 1 and 3 (not in the paper)
    tie_tolerance: float = 0.0  # |r_a - r_b| <= tie_tolerance counts as a tie
    reward_normalization: str = "zscore"  # "zscore" | "none": rewards before the Fig. 3 advantage
    n_bootstrap: int = 1000  # bootstrap resamples of prompts for every confidence interval
    ci_level: float = 0.95  # confidence level of the intervals
    judge_model: str = "gold"  # "gold" (true reward r*, synthetic testbed), "oracle" (trained oracle), or an LLM id
    judge_base_url: str | None = None  # OpenAI-compatible endpoint of an LLM judge (None = api.openai.com)
    judge_api_key_env: str | None = None  # NAME of the environment variable with the judge's key; None means
    #   OPENAI_API_KEY and is allowed only for api.openai.com (another judge_base_url must name its variable)
    judge_order: str = "random"  # "random" (one seeded A/B order per pair, as the paper) | "both"
    judge_max_concurrency: int = 8  # LLM judge requests in flight
    judge_max_cost: float | None = None  # USD; refuse an LLM-judged run whose estimated cost is higher
    alpaca_judge_model: str = "gold"  # judge of Table 3 (paper: gpt-4-turbo); "gold"/"oracle" work offline
    alpaca_prompts: str = "alpaca_eval"  # Table 3 prompts: "alpaca_eval" (805 instructions: data_dir/alpaca_eval
    #   or the hub), "in_dist" (the in-distribution prompts: the protocol on the testbed), "none" (skip Table 3)
    alpaca_source: str = "tatsu-lab/alpaca_eval"  # hub id or local file/folder (used when alpaca_prompts=alpaca_eval)
    alpaca_split: str = "D_all"  # which split's policies answer the Table 3 prompts
    ood_template: str = "SUBREDDIT: r/news\nTITLE: {title}\nPOST: {article}\nTL;DR:"  # OOD prompt ({title} = first
    #   ood_title_words words of the article); the paper's Table 4 shows "Summarize this news article ..." instead
    ood_title_words: int = 4  # words of the article used as its title
    ood_max_article_words: int = 400  # articles are cut to this many words before formatting
    device: str = "auto"  # "auto" | "cpu" | "cuda" ...
    dtype: str = "auto"  # "auto" (bf16 on cuda) | "float32" | "bfloat16" | "float16"
    seed: int = 0  # seeds the bootstrap and the judge's A/B order

    def __post_init__(self) -> None:
        for name in ("baselines", "splits", "temperatures", "seeds"):
            v = getattr(self, name)
            object.__setattr__(self, name, tuple(v) if not isinstance(v, str) else (v,))
        if self.student not in METHODS:
            raise ValueError(f"EvalConfig.student must be one of {METHODS}, got {self.student!r}")
        bad = [b for b in self.baselines if b not in METHODS or b == self.student]
        if bad:
            raise ValueError(f"EvalConfig.baselines must be methods of {METHODS} other than the student; bad: {bad}")
        if not self.splits:
            raise ValueError("EvalConfig.splits must name at least one split")
        for name in ("n_prompts", "n_ood_prompts", "n_alpaca", "n_bootstrap"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"EvalConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.prompt_template not in ("tldr", "chat", "raw"):
            raise ValueError(f"EvalConfig.prompt_template must be tldr|chat|raw, got {self.prompt_template!r}")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"EvalConfig.ci_level must be in (0, 1), got {self.ci_level}")
        if self.tie_tolerance < 0:
            raise ValueError(f"EvalConfig.tie_tolerance must be >= 0, got {self.tie_tolerance}")
        if self.reward_normalization not in ("zscore", "none"):
            raise ValueError(f"EvalConfig.reward_normalization must be zscore|none, got {self.reward_normalization!r}")
        if float(self.head_to_head_temperature) not in {float(t) for t in self.temperatures}:
            raise ValueError(f"EvalConfig.head_to_head_temperature {self.head_to_head_temperature} must be one of "
                             f"temperatures {self.temperatures} (the judged samples are reused from the grid)")
        if self.judge_order not in ("random", "both"):
            raise ValueError(f"EvalConfig.judge_order must be random|both, got {self.judge_order!r}")
        if {self.judge_model, self.alpaca_judge_model} - set(JUDGE_OFFLINE):  # an LLM judges: check the key route
            from drdo_lib.judge import JudgeSettings

            try:
                JudgeSettings(template="alpaca", model="llm", **self.judge_connection())
            except ValueError as e:
                raise ValueError(f"EvalConfig: {e}") from None
        if self.alpaca_prompts not in ("alpaca_eval", "in_dist", "none"):
            raise ValueError(f"EvalConfig.alpaca_prompts must be alpaca_eval|in_dist|none, got {self.alpaca_prompts!r}")
        if "{article}" not in self.ood_template:
            raise ValueError("EvalConfig.ood_template must contain {article}")
        if self.ood_title_words < 0 or self.ood_max_article_words < 1:
            raise ValueError("EvalConfig.ood_title_words must be >= 0 and ood_max_article_words >= 1")
        if self.max_length <= self.max_prompt_length:
            raise ValueError("EvalConfig.max_length must be larger than max_prompt_length")
        self.generation_config()  # validates the sampling settings

    def __repr__(self) -> str:  # a password in judge_base_url is never shown (notebook 05 prints the config)
        from drdo_lib.errors import redacted_repr

        return redacted_repr(self)

    def judge_connection(self) -> dict[str, Any]:
        """``base_url`` and ``api_key_env`` of the LLM judge, as keyword arguments of
        :func:`drdo_lib.judge.judge_pairs` / :func:`drdo_lib.alpaca_eval.head_to_head`."""
        return {"base_url": self.judge_base_url, "api_key_env": self.judge_api_key_env}

    def generation_config(self) -> GenerationConfig:
        """The :class:`~drdo_lib.generation.GenerationConfig` of these settings."""
        return GenerationConfig(temperatures=self.temperatures, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                                max_prompt_length=self.max_prompt_length, batch_size=self.batch_size,
                                samples_per_prompt=self.samples_per_prompt, seeds=self.seeds, device=self.device,
                                dtype=self.dtype)


# ------------------------------------------------------------------------------------------------ pipeline
def discover_policies(run, cfg: EvalConfig, splits: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The trained policies of a run: ``{"sft": {...}, "drdo_D_all": {...}, ...}`` → ``{dir, method, split}``.

    Reads ``runs/<profile>/sft/final`` and ``runs/<profile>/policy/<method>_<split>/final`` for the student and the
    baselines on ``splits`` (default ``cfg.splits``). Missing ones are logged and left out.
    """
    found: dict[str, dict[str, Any]] = {}
    sft = run.sft_model
    if sft.is_dir():
        found["sft"] = {"dir": sft, "method": "sft", "split": None}
    else:
        logger.warning("no SFT policy at %s", sft)
    for split in (splits or cfg.splits):
        for method in (cfg.student, *cfg.baselines):
            d = run.policy_dir(method, split, create=False) / "final"
            if d.is_dir():
                found[f"{method}_{split}"] = {"dir": d, "method": method, "split": split}
            else:
                logger.warning("no %s policy for split %s at %s", method, split, d)
    return found


def generate_all(policies: Mapping[str, Mapping[str, Any]], prompts: pd.DataFrame, cfg: EvalConfig,
                 out_dir: str | Path, *, name: str, progress: bool = True,
                 gen_cfg: GenerationConfig | None = None) -> pd.DataFrame:
    """Sample every policy on ``prompts`` (columns ``prompt_id``, ``prompt``) → one DataFrame of completions.

    Completions go to ``<out_dir>/<name>/<policy>.jsonl`` (see :func:`drdo_lib.generation.generate_policy_samples`,
    which reuses files whose settings, model and prompts are unchanged). ``gen_cfg`` overrides the sampling grid.
    """
    from drdo_lib.generation import generate_policy_samples, load_generations, load_policy
    from drdo_lib.hf import model_fingerprint

    gen_cfg = gen_cfg or cfg.generation_config()
    paths = []
    for pname, info in tqdm(list(policies.items()), desc=f"policies ({name})", disable=not progress):
        model, tok = load_policy(info["dir"], device=cfg.device, dtype=cfg.dtype)
        paths.append(generate_policy_samples(
            pname, model, tok, list(prompts["prompt"]), list(prompts["prompt_id"]), gen_cfg, Path(out_dir) / name,
            extra={"method": info["method"], "split": info["split"], "model": str(info["dir"])},
            fingerprint=model_fingerprint(info["dir"]), progress=False))
        del model
    return load_generations(paths)


def score_generations(gen: pd.DataFrame, scorers: Mapping[str, Callable[[Sequence[str], Sequence[str]], np.ndarray]],
                      references: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Add one reward column per scorer (``{"oracle_reward": scorer, "gold_reward": r*}``) to the completions and,
    when given, to the reference summaries (``references`` with ``prompt_id``, ``prompt``, ``reference``).

    Each distinct (prompt, response) pair is scored once (policies and low temperatures repeat many completions)."""
    gen = gen.copy()
    refs = references.copy() if references is not None else None
    for col, fn in scorers.items():
        gen[col] = _score_unique(fn, gen["prompt"], gen["response"])
        if refs is not None:
            refs[col] = _score_unique(fn, refs["prompt"], refs["reference"])
    return gen, refs


def _score_unique(fn: Callable, prompts: pd.Series, responses: pd.Series) -> np.ndarray:
    pairs = pd.DataFrame({"p": list(prompts), "r": list(responses)})
    codes, uniq = pd.factorize(pd.MultiIndex.from_frame(pairs))
    scores = np.asarray(fn([u[0] for u in uniq], [u[1] for u in uniq]), dtype=np.float64)
    logger.info("scored %d distinct of %d (prompt, response) pairs", len(uniq), len(pairs))
    return scores[codes]


_KEY = ["prompt_id", "temperature", "seed", "sample"]


def paired(gen: pd.DataFrame, policy_a: str, policy_b: str, column: str) -> pd.DataFrame:
    """Rows of ``gen`` of two policies matched on (prompt, temperature, seed, sample): columns ``a``, ``b``."""
    a = gen.loc[gen["policy"] == policy_a, _KEY + [column]].rename(columns={column: "a"})
    b = gen.loc[gen["policy"] == policy_b, _KEY + [column]].rename(columns={column: "b"})
    m = a.merge(b, on=_KEY, how="inner", validate="one_to_one")
    if len(m) != len(a) or len(m) != len(b):
        logger.warning("pairing %s with %s: %d of %d / %d completions matched", policy_a, policy_b, len(m), len(a),
                       len(b))
    return m


def win_rate_grid(gen: pd.DataFrame, cfg: EvalConfig, column: str) -> pd.DataFrame:
    """Win rates of the student against SFT and each baseline, per split and temperature (long form).

    One row per (split, baseline, temperature): pooled over seeds (with a prompt-clustered bootstrap interval), plus
    ``seed_mean`` / ``seed_sd`` of the per-seed win rates and ``n_seeds``.
    """
    rows = []
    policies = set(gen["policy"])
    for split in cfg.splits:
        student = f"{cfg.student}_{split}"
        if student not in policies:
            continue
        for base in ("sft", *cfg.baselines):
            base_name = "sft" if base == "sft" else f"{base}_{split}"
            if base_name not in policies:
                continue
            pairs = paired(gen, student, base_name, column)
            for t, g in pairs.groupby("temperature"):
                res = win_rate(g["a"], g["b"], groups=g["prompt_id"], tie_tolerance=cfg.tie_tolerance,
                               n_boot=cfg.n_bootstrap, level=cfg.ci_level, seed=cfg.seed)
                per_seed = [win_rate(s["a"], s["b"], tie_tolerance=cfg.tie_tolerance, n_boot=1)["win_rate"]
                            for _, s in g.groupby("seed")]
                rows.append({"reward": column, "split": split, "student": cfg.student, "baseline": base,
                             "temperature": float(t), **res, "seed_mean": float(np.mean(per_seed)),
                             "seed_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
                             "n_seeds": len(per_seed)})
    return pd.DataFrame(rows)


def table2_form(grid: pd.DataFrame, value: str = "win_rate") -> pd.DataFrame:
    """The paper's Table 2 layout: one row per student (here: per training split), columns (T, baseline)."""
    if grid.empty:
        return pd.DataFrame()
    wide = grid.pivot_table(index="split", columns=["temperature", "baseline"], values=value, aggfunc="first")
    order = [b for b in ("sft", "dpo", "edpo", "ipo") if b in set(grid["baseline"])]
    cols = [(t, b) for t in sorted(set(grid["temperature"])) for b in order if (t, b) in wide.columns]
    return wide.reindex(columns=pd.MultiIndex.from_tuples(cols, names=["T", "baseline"]))


def _normalise(gen: pd.DataFrame, refs: pd.DataFrame | None, column: str, how: str
               ) -> tuple[pd.Series, pd.Series | None]:
    if how == "none":
        return gen[column], (refs[column] if refs is not None else None)
    pool = pd.concat([gen[column]] + ([refs[column]] if refs is not None else []))
    mu, sd = float(pool.mean()), float(pool.std(ddof=0)) or 1.0
    return (gen[column] - mu) / sd, ((refs[column] - mu) / sd if refs is not None else None)


def reward_advantage_grid(gen: pd.DataFrame, refs: pd.DataFrame | None, cfg: EvalConfig, column: str) -> pd.DataFrame:
    """Fig. 3: expected (normalised) reward advantage of every preference policy over SFT and over the references.

    One row per (policy, temperature, versus ∈ {"sft", "reference"}) with ``advantage``, ``ci_low``, ``ci_high``,
    ``n``, and the mean normalised rewards of both sides.
    """
    g = gen.copy()
    r = refs.copy() if refs is not None else None
    g["_r"], rr = _normalise(g, r, column, cfg.reward_normalization)
    if r is not None:
        r["_r"] = rr
    rows = []
    for pname in sorted(set(g["policy"]) - {"sft"}):
        sub = g[g["policy"] == pname]
        method, split = sub["method"].iloc[0], sub["split"].iloc[0]
        versus = []
        if "sft" in set(g["policy"]):
            p = paired(g, pname, "sft", "_r")
            versus.append(("sft", p))
        if r is not None:
            p = sub[_KEY + ["_r"]].rename(columns={"_r": "a"}).merge(
                r[["prompt_id", "_r"]].rename(columns={"_r": "b"}), on="prompt_id", how="inner")
            versus.append(("reference", p))
        for vs, p in versus:
            for t, q in p.groupby("temperature"):
                res = mean_advantage(q["a"], q["b"], groups=q["prompt_id"], n_boot=cfg.n_bootstrap,
                                     level=cfg.ci_level, seed=cfg.seed)
                rows.append({"reward": column, "policy": pname, "method": method, "split": split, "versus": vs,
                             "temperature": float(t), **res, "mean_policy": float(q["a"].mean()),
                             "mean_versus": float(q["b"].mean())})
    return pd.DataFrame(rows)


def head_to_head(gen: pd.DataFrame, refs: pd.DataFrame | None, comparisons: Sequence[tuple[str, str, str]], *,
                 cfg: EvalConfig, judge_model: str, template: str, cache_dir: str | Path | None,
                 reward_fn: Callable[[str, str], float] | None = None, judge_kwargs: Mapping[str, Any] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judged win rates (Table 1 / Table 3 form) through :func:`drdo_lib.judge.judge_pairs`.

    ``comparisons`` are ``(label, policy_a, policy_b)``; ``policy_a = "reference"`` compares the human/reference
    summary with a policy (the paper's "Gold vs. X" rows, judged with the Fig. 6 prompt ``vs_human``). Samples are
    those at ``cfg.head_to_head_temperature``, seed ``cfg.seeds[0]``, sample 0. An offline judge ("gold"/"oracle")
    needs ``reward_fn``. Returns ``(summary, judgements)``: one summary row per comparison (wins, losses, ties,
    discarded, win rate with ties counted ½ and its bootstrap CI, from :func:`drdo_lib.judge.win_rate_summary`; and
    ``win_rate_excl_ties`` = wins / (wins + losses), the paper's Table 1 form, with its own interval
    ``win_rate_excl_ties_ci_low/high`` from :func:`excl_ties_interval`) and every judgement.
    """
    from drdo_lib.judge import judge_pairs, win_rate_summary

    sel = gen[(gen["temperature"] == float(cfg.head_to_head_temperature)) & (gen["seed"] == cfg.seeds[0])
              & (gen["sample"] == 0)]
    ref_map = dict(zip(refs["prompt_id"], refs["reference"])) if refs is not None else {}
    offline = judge_model in JUDGE_OFFLINE
    summaries, judged = [], []
    for label, pa, pb in comparisons:
        b = sel[sel["policy"] == pb].set_index("prompt_id")
        if pa == "reference":
            if not ref_map:
                raise ValueError(f"{label}: comparing with the reference needs reference summaries")
            ids = [i for i in b.index if i in ref_map]
            resp_a, tmpl = [ref_map[i] for i in ids], ("vs_human" if template != "alpaca" else template)
        else:
            a = sel[sel["policy"] == pa].set_index("prompt_id")
            ids = [i for i in a.index if i in b.index]
            resp_a, tmpl = list(a.loc[ids, "response"]), template
        if not ids:
            logger.warning("%s: no completions of both %s and %s; skipped", label, pa, pb)
            continue
        prompts, resp_b = list(b.loc[ids, "prompt"]), list(b.loc[ids, "response"])
        references = [ref_map.get(i, "") for i in ids] if ref_map else None
        df = judge_pairs(prompts, resp_a, resp_b, references, template=tmpl, model="gold" if offline else judge_model,
                         **({"base_url": None} if offline else cfg.judge_connection()), cache_dir=cache_dir,
                         order=cfg.judge_order, seed=cfg.seed, max_concurrency=cfg.judge_max_concurrency,
                         reward_fn=reward_fn, tie_tol=cfg.tie_tolerance, **(judge_kwargs or {}),
                         **({} if offline or cfg.judge_max_cost is None else {"max_cost": cfg.judge_max_cost}))
        df.insert(0, "comparison", label)
        df["prompt_id"], df["policy_a"], df["policy_b"] = ids, pa, pb
        judged.append(df)
        s = win_rate_summary(df, n_boot=cfg.n_bootstrap, ci=cfg.ci_level, seed=cfg.seed)
        # the paper's Table 1 denominators (926-943 of ~1,000) imply ties were dropped: wins / (wins + losses),
        # with its own interval from the same judgements
        s["win_rate_excl_ties_ci_low"], s["win_rate_excl_ties_ci_high"] = excl_ties_interval(
            df["outcome"], n_boot=cfg.n_bootstrap, level=cfg.ci_level, seed=cfg.seed)
        summaries.append({"comparison": label, "policy_a": pa, "policy_b": pb, "judge": judge_model,
                          "template": tmpl, **s})
    return pd.DataFrame(summaries), (pd.concat(judged, ignore_index=True) if judged else pd.DataFrame())


def excl_ties_interval(outcomes: Sequence[str], *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                       ) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``wins / (wins + losses)`` from judge outcomes (``"a"`` win, ``"b"`` loss,
    ``"tie"``, ``"discarded"``; :func:`drdo_lib.judge.judge_pairs`).

    Judged pairs (wins, losses and ties; discarded ones never enter) are resampled and the ratio is recomputed in
    each resample, so the interval carries the randomness of how many pairs were decisive; resamples without a
    decisive pair are skipped. ``(nan, nan)`` when no pair was decisive.
    """
    o = np.asarray([x for x in outcomes if x in ("a", "b", "tie")], dtype=object)
    w, l_ = (o == "a").astype(np.float64), (o == "b").astype(np.float64)
    if w.sum() + l_.sum() == 0:
        return (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(o), size=(n_boot, len(o)))
    wins, decisive = w[idx].sum(axis=1), (w + l_)[idx].sum(axis=1)
    ratio = wins[decisive > 0] / decisive[decisive > 0]
    lo, hi = np.quantile(ratio, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def save_eval_config(cfg: EvalConfig, path: str | Path) -> Path:
    """Write the resolved :class:`EvalConfig` as JSON (beside the evaluation outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from drdo_lib.errors import redact_obj

    path.write_text(json.dumps(redact_obj(dataclasses.asdict(cfg)), indent=2, sort_keys=True, default=str))
    return path


# ------------------------------------------------------------------------------------------------ prompt sets
def _take(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows, a seeded random subset in a stable order (the paper samples its 1,000 prompts)."""
    if len(df) <= n:
        return df.reset_index(drop=True)
    return df.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def ood_prompt(article: str, cfg: EvalConfig) -> str:
    """An OOD (news) prompt from an article with ``cfg.ood_template``."""
    words = article.split()
    return cfg.ood_template.format(article=" ".join(words[:cfg.ood_max_article_words]),
                                   title=" ".join(words[:cfg.ood_title_words]))


def highlights_summary(highlights: str) -> str:
    """CNN/DailyMail highlights (one sentence per line, each ending in a detached " .") as one reference summary:
    lines joined by spaces, the detached periods dropped (under the testbed's r* they would count as invented
    words)."""
    return " ".join(re.sub(r"\s+\.$", "", line.strip()) for line in highlights.splitlines() if line.strip())


def eval_prompt_sets(data, cfg: EvalConfig, *, tokenizer=None, data_dir: str | Path | None = None
                     ) -> dict[str, pd.DataFrame]:
    """The prompt sets of an evaluation from a :class:`drdo_lib.data.ProfileData`.

    - ``"in_dist"``: held-out in-distribution prompts with their human/reference summary — the SFT rows of split
      "test" (else "valid"), else the unique prompts of the validation/test preference rows (reference = the chosen
      response; e.g. UltraFeedback's test prompts for Table 2);
    - ``"ood"``: OOD articles (CNN/DailyMail or the testbed's) formatted with ``cfg.ood_template``, reference =
      the highlights (Table 1 and Fig. 3);
    - ``"alpaca"`` (``cfg.alpaca_prompts == "alpaca_eval"``): the AlpacaEval instructions with a reference output.

    Each is a DataFrame with ``prompt_id``, ``prompt`` (formatted with ``cfg.prompt_template``), ``reference`` and
    ``instruction`` (the unformatted text). Subsets are seeded (``cfg.seed``).
    """
    from drdo_lib.data.tokenize import format_prompt

    def fmt(texts):
        return [format_prompt(t, tokenizer, cfg.prompt_template) for t in texts]

    sets: dict[str, pd.DataFrame] = {}
    sft = data.sft.to_pandas() if data.sft is not None else pd.DataFrame()
    held = pd.DataFrame()
    for split in ("test", "valid"):
        if len(sft) and (sft["split"] == split).any():
            held = sft[sft["split"] == split]
            held = pd.DataFrame({"prompt_id": held["id"], "instruction": held["prompt"],
                                 "reference": held["response"].str.strip()})
            break
    if held.empty and data.preferences is not None:
        pref = data.preferences.to_pandas()
        pref = pref[pref["split"].astype(str).str.startswith(("valid", "test"))].drop_duplicates("prompt")
        held = pd.DataFrame({"prompt_id": pref["id"], "instruction": pref["prompt"],
                             "reference": pref["chosen"].str.strip()})
    if held.empty:
        raise ValueError("no held-out prompts: the data has neither SFT test/valid rows nor validation comparisons")
    held = _take(held.drop_duplicates("prompt_id"), cfg.n_prompts, cfg.seed)
    held["prompt"] = fmt(held["instruction"])
    sets["in_dist"] = held
    if data.ood is not None and len(data.ood):
        ood = data.ood.to_pandas()
        ood = _take(pd.DataFrame({"prompt_id": ood["id"], "instruction": [ood_prompt(a, cfg) for a in ood["article"]],
                                  "reference": [highlights_summary(h) for h in ood["highlights"]]}),
                    cfg.n_ood_prompts, cfg.seed)
        ood["prompt"] = fmt(ood["instruction"])
        sets["ood"] = ood
    else:
        logger.warning("the profile's data has no OOD set: Table 1 and Fig. 3 use the in-distribution prompts")
    if cfg.alpaca_prompts == "alpaca_eval":
        from drdo_lib.data import load_alpaca_eval

        src = cfg.alpaca_source
        if data_dir is not None and (Path(data_dir) / "alpaca_eval").is_dir():
            src = Path(data_dir) / "alpaca_eval"
        al = load_alpaca_eval(src).to_pandas()
        al = _take(pd.DataFrame({"prompt_id": al["id"], "instruction": al["instruction"],
                                 "reference": al["reference_output"]}), cfg.n_alpaca, cfg.seed)
        al["prompt"] = fmt(al["instruction"])
        sets["alpaca"] = al
    return sets


def build_scorers(run, data, cfg: EvalConfig, *, progress: bool = True) -> dict[str, Callable]:
    """Reward functions of an evaluation: ``oracle_reward`` (the run's trained oracle when it exists, or the
    testbed's exact / noisy r* for ``oracle.kind`` true_reward / noisy_true_reward), ``gold_reward`` (the testbed's
    r*) when the data is the synthetic testbed."""
    scorers: dict[str, Callable] = {}
    from drdo_lib.oracle import OracleConfig, true_reward_oracle

    oracle_dir = run.oracle_model
    ocfg = run.config(OracleConfig, "oracle")
    if ocfg.kind != "trained":  # the policies distilled the testbed's r* (exact or noisy): so is the oracle reward
        scorers["oracle_reward"] = true_reward_oracle(ocfg, getattr(data, "testbed", None), seed=run.seed)
    elif oracle_dir.is_dir():
        scorers["oracle_reward"] = RewardScorer(oracle_dir, batch_size=max(cfg.batch_size, 32),
                                                max_prompt_length=cfg.max_prompt_length, max_length=cfg.max_length,
                                                device=cfg.device, dtype=cfg.dtype, progress=progress)
    else:
        logger.warning("no oracle at %s: oracle win rates are not computed", oracle_dir)
    if getattr(data, "testbed", None) is not None:
        scorers["gold_reward"] = data.testbed.true_rewards
    return scorers


def judge_reward_fn(judge_model: str, scorers: Mapping[str, Callable]) -> Callable[[str, str], float] | None:
    """``reward_fn(prompt, response)`` of an offline judge ("gold" → r*, "oracle" → the oracle); None for an LLM."""
    if judge_model not in JUDGE_OFFLINE:
        return None
    col = "gold_reward" if judge_model == "gold" else "oracle_reward"
    if col not in scorers:
        raise ValueError(f"judge_model={judge_model!r} needs {col} (gold: the synthetic testbed; oracle: a trained "
                         "oracle); set judge_model to an LLM id or to the available offline judge")
    fn = scorers[col]
    return lambda prompt, response: float(fn([prompt], [response])[0])


# ------------------------------------------------------------------------------------------------ whole run
def table1_comparisons(cfg: EvalConfig, policies: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Table 1 rows that can be judged: student vs each baseline per split, then Gold (reference) vs each method on
    the first split (the paper does not say which split its "Gold vs." rows used)."""
    comps = []
    for base in cfg.baselines:
        for split in cfg.splits:
            a, b = f"{cfg.student}_{split}", f"{base}_{split}"
            if a in policies and b in policies:
                comps.append((f"{METHOD_NAMES[cfg.student]} vs. {METHOD_NAMES[base]}", a, b))
    for m in (cfg.student, *cfg.baselines):
        p = f"{m}_{cfg.splits[0]}"
        if p in policies:
            comps.append((f"{METHOD_NAMES['reference']} vs. {METHOD_NAMES[m]}", "reference", p))
    return comps


def run(run, cfg: EvalConfig | None = None, *, data=None, progress: bool = True) -> dict[str, Any]:
    """The evaluation stage (notebook 05): everything it computes, written under ``runs/<profile>/eval/``;
    returns the tables. ``cfg`` defaults to the run's ``eval`` section, ``data`` to the data stage's artefact.

    Files: ``config.json``; ``generations/<set>/<policy>.jsonl``; ``scored_<set>.jsonl`` (completions with their
    rewards) and ``references_<set>.csv``; ``win_rates.csv`` (Table 2 form, long: reward ∈ {oracle_reward,
    gold_reward}); ``advantage.csv`` (Fig. 3, long: set, reward, versus); ``table1.csv`` + ``table1_judgements.csv``;
    ``table3.csv`` + ``alpaca_eval/<policy>/model_outputs.json`` + ``alpaca_eval/annotations_<baseline>.json``;
    ``summary.json`` (what was run, sizes, missing policies).
    """
    from drdo_lib import alpaca_eval as ae

    cfg = cfg if cfg is not None else run.config(EvalConfig, "eval")
    if data is None:
        from drdo_lib.data import pipeline as data_stage

        data = data_stage.load(run)
    out = run.stage_dir("eval")
    save_eval_config(cfg, out / "config.json")
    policies = discover_policies(run, cfg)
    if not policies:
        raise FileNotFoundError(f"no trained policies under {run.dir} (run notebooks 02-04 first)")
    tokenizer = None
    if cfg.prompt_template == "chat" and "sft" in policies:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(policies["sft"]["dir"])
    sets = eval_prompt_sets(data, cfg, tokenizer=tokenizer, data_dir=getattr(data, "data_dir", None))
    scorers = build_scorers(run, data, cfg, progress=progress)
    res: dict[str, Any] = {"sets": sets, "policies": policies, "scored": {}, "references": {}}
    gen_sets = {"in_dist": sets["in_dist"], "ood": sets.get("ood", sets["in_dist"])}
    alpaca_pols = {k: v for k, v in policies.items() if v["split"] == cfg.alpaca_split}
    for name, prompts in gen_sets.items():
        gen = generate_all(policies, prompts, cfg, out / "generations", name=name, progress=progress)
        scored, refs = score_generations(gen, scorers, prompts)
        scored.to_json(out / f"scored_{name}.jsonl", orient="records", lines=True, force_ascii=False)
        refs.to_csv(out / f"references_{name}.csv", index=False)
        res["scored"][name], res["references"][name] = scored, refs

    # Table 2 form: oracle and gold win rates on the in-distribution prompts
    grids = [win_rate_grid(res["scored"]["in_dist"], cfg, col) for col in scorers]
    res["win_rates"] = pd.concat(grids, ignore_index=True) if grids else pd.DataFrame()
    res["win_rates"].to_csv(out / "win_rates.csv", index=False)
    # Fig. 3: reward advantage over SFT and over the references, on both prompt sets
    adv = []
    for name in gen_sets:
        for col in scorers:
            a = reward_advantage_grid(res["scored"][name], res["references"][name], cfg, col)
            adv.append(a.assign(set=name))
    res["advantage"] = pd.concat(adv, ignore_index=True) if adv else pd.DataFrame()
    res["advantage"].to_csv(out / "advantage.csv", index=False)

    # Table 1: judged head-to-heads on the OOD prompts
    comps = table1_comparisons(cfg, policies)
    t1, j1 = head_to_head(res["scored"]["ood"], res["references"]["ood"], comps, cfg=cfg, judge_model=cfg.judge_model,
                          template="tldr_reference", cache_dir=out / "judge_cache",
                          reward_fn=judge_reward_fn(cfg.judge_model, scorers))
    if len(t1):
        t1.insert(1, "split", [policies[b]["split"] for b in t1["policy_b"]])
        t1["set"] = "ood" if "ood" in sets else "in_dist"
    res["table1"], res["table1_judgements"] = t1, j1
    t1.to_csv(out / "table1.csv", index=False)
    j1.to_csv(out / "table1_judgements.csv", index=False)

    # Table 3: AlpacaEval-style head-to-head
    res["table3"] = pd.DataFrame()
    if cfg.alpaca_prompts != "none" and alpaca_pols:
        if cfg.alpaca_prompts == "alpaca_eval":
            one = dataclasses.replace(cfg.generation_config(), temperatures=(cfg.head_to_head_temperature,),
                                      seeds=(cfg.seeds[0],), samples_per_prompt=1)
            gen = generate_all(alpaca_pols, sets["alpaca"], cfg, out / "generations", name="alpaca",
                               progress=progress, gen_cfg=one)
            instr = dict(zip(sets["alpaca"]["prompt_id"], sets["alpaca"]["instruction"]))
        else:
            gen = res["scored"]["in_dist"]
            instr = dict(zip(sets["in_dist"]["prompt_id"], sets["in_dist"]["instruction"]))
        sel = gen[np.isclose(gen["temperature"], cfg.head_to_head_temperature) & (gen["seed"] == cfg.seeds[0])
                  & (gen["sample"] == 0)]
        outputs = {}
        for pname in alpaca_pols:
            g = sel[sel["policy"] == pname]
            recs = ae.to_model_outputs([instr[i] for i in g["prompt_id"]], list(g["response"]), pname)
            ae.write_model_outputs(recs, out / "alpaca_eval" / pname / "model_outputs.json")
            outputs[pname] = recs
        student = f"{cfg.student}_{cfg.alpaca_split}"
        results = {}
        for base in cfg.baselines:
            bname = f"{base}_{cfg.alpaca_split}"
            if student not in outputs or bname not in outputs:
                continue
            ann = ae.head_to_head(outputs[student], outputs[bname], model=cfg.alpaca_judge_model
                                  if cfg.alpaca_judge_model not in JUDGE_OFFLINE else "gold",
                                  cache_dir=out / "judge_cache", seed=cfg.seed, order=cfg.judge_order,
                                  max_concurrency=cfg.judge_max_concurrency,
                                  reward_fn=judge_reward_fn(cfg.alpaca_judge_model, scorers),
                                  **({} if cfg.alpaca_judge_model in JUDGE_OFFLINE else
                                     cfg.judge_connection()))
            ae.write_annotations(ann, out / "alpaca_eval" / f"annotations_{bname}.json")
            results[(student, bname)] = ann
        if results:
            t3 = ae.head_to_head_table(results, n_boot=cfg.n_bootstrap, seed=cfg.seed, level=cfg.ci_level)
            t3.insert(0, "comparison", [f"{METHOD_NAMES[cfg.student]} vs. {METHOD_NAMES[policies[b]['method']]}"
                                        for b in t3["baseline"]])
            t3["prompts"] = cfg.alpaca_prompts
            t3["judge"] = cfg.alpaca_judge_model
            res["table3"] = t3
    res["table3"].to_csv(out / "table3.csv", index=False)
    summary = {"profile": run.name, "policies": sorted(policies), "rewards": sorted(scorers),
               "n_prompts": {k: len(v) for k, v in sets.items()}, "judge_model": cfg.judge_model,
               "alpaca_judge_model": cfg.alpaca_judge_model, "alpaca_prompts": cfg.alpaca_prompts,
               "temperatures": list(cfg.temperatures), "seeds": list(cfg.seeds),
               "provenance": provenance.record()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    res["summary"], res["dir"] = summary, out
    return res


def policy_reward_table(scored: pd.DataFrame, refs: pd.DataFrame | None, column: str, cfg: EvalConfig
                        ) -> pd.DataFrame:
    """Mean reward (with a prompt-clustered bootstrap CI) of every policy at every temperature, plus the
    references' mean reward (temperature NaN) — the plain numbers behind the win rates."""
    rows = []
    for (pname, t), g in scored.groupby(["policy", "temperature"]):
        lo, hi = bootstrap_ci(g[column].to_numpy(), groups=g["prompt_id"], n_boot=cfg.n_bootstrap,
                              level=cfg.ci_level, seed=cfg.seed)
        rows.append({"policy": pname, "method": g["method"].iloc[0], "split": g["split"].iloc[0],
                     "temperature": float(t), "mean": float(g[column].mean()), "ci_low": lo, "ci_high": hi,
                     "n": len(g), "mean_new_tokens": float(g["n_new_tokens"].mean()),
                     "finished": float(g["finished"].mean())})
    if refs is not None and column in refs:
        lo, hi = bootstrap_ci(refs[column].to_numpy(), n_boot=cfg.n_bootstrap, level=cfg.ci_level, seed=cfg.seed)
        rows.append({"policy": "reference", "method": "reference", "split": None, "temperature": float("nan"),
                     "mean": float(refs[column].mean()), "ci_low": lo, "ci_high": hi, "n": len(refs),
                     "mean_new_tokens": float("nan"), "finished": float("nan")})
    return pd.DataFrame(rows)
