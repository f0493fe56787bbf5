"""The robustness study (notebook 07, profile section ``study``): does DRDO stay robust where DPO degenerates?

The paper claims (Lemmas 1-2, Sec. 4) that DPO and e-DPO degenerate on non-deterministic preference pairs
(p* = ½) while DRDO does not, but never varies the amount of noise. On the synthetic testbed the true reward r* is
known, so the claim becomes a controlled experiment. :func:`run` trains and measures every cell of a grid::

    from drdo_lib import study
    from drdo_lib.run import Run
    run = Run.create("mini")                # the profile's `study:` section is the grid
    df = study.run(run)                     # one row per finished cell; finished cells are read back, not rerun
    study.report(run)                       # figures + tables under figures/<profile>/study_*, the reading

    python -m drdo_lib study --config configs/study.yaml [--shard i/N] [key=value ...]

The grid
--------
``methods`` (named variants of :data:`DEFAULT_VARIANTS`: a training method plus :class:`~drdo_lib.policy.PolicyConfig`
overrides, e.g. DRDO with ``student_reward: logprob`` or ``alpha: 0``) × ``noise_levels`` (each a mapping of
:class:`~drdo_lib.data.synthetic.SyntheticConfig` overrides: the Bradley-Terry ``temperature`` and / or
``tie_fraction``, the share of pairs the generator *builds* with equal r*; more pairs tie by chance, the reading
measures the share) × ``oracle_kinds`` (``trained`` | ``true_reward``, for the methods that distil an Oracle: DRDO
and e-DPO; DPO and IPO get oracle ``none``) × ``seeds`` (training seeds; unless ``data_seed`` is set
the testbed is redrawn per seed too, so intervals include data-sampling variance). Every (noise level, seed) also
gets an ``sft`` cell: the SFT policy measured exactly like a trained one, the baseline every gain is paired with.

Each cell is an independent run cached by a hash of its full settings (:func:`cell_key`: the variant, the noise
level's resolved data config, the oracle kind, the seed, the resolved policy / SFT / oracle configs and the
measurement settings) as ``runs/<profile>/study/cells/<key>.json``, written atomically and last: an interrupted
study recomputes no finished cell. ``workers: N`` runs the grid on N processes of this machine
(:func:`run_parallel` over :mod:`drdo_lib.taskgraph`: SFT, gates and Oracles first, cells as their inputs are
ready). ``--shard i/N`` runs the cells whose grid index is ``i`` modulo ``N`` (a Slurm array); the shared work each
shard needs is built by that shard and cached (a file lock serialises builders).

Shared work, built once and cached under ``runs/<profile>/study/shared/`` (each keyed by its settings):

* the data artefact of each (noise level, seed) (the data stage's own cache);
* the SFT policy per seed: the SFT rows do not depend on ``temperature`` / ``tie_fraction`` / the other
  comparison-only dials (:data:`SFT_INVARIANT`, a test checks it) and its word-level tokenizer is built from the SFT
  rows plus the testbed's fixed word lists (not from the pairs), so one SFT serves every noise level that differs
  only in those dials; a noise level that changes anything else gets its own SFT;
* the trained Oracle and e-DPO ensemble per (noise level, seed), only where a ``trained`` cell needs them;
* the sanity gate (:mod:`drdo_lib.gate`) per seed (``gate``: require | record | off).

What a cell measures (:func:`measure`; all on CPU in seconds)
--------------------------------------------------------------
On ``n_prompts`` held-out prompts (the SFT test rows):

* gold r* of the greedy sample and of one sample at ``sample_temperature`` (top-p ``top_p``), per prompt;
* sampled KL(π‖π_SFT): one *ancestral* sample per prompt (temperature 1, top-p 1, so the estimator is unbiased),
  mean over samples of log π(y|x) − log π_SFT(y|x) (sums over the generated tokens, EOS included; a sample cut at
  ``max_new_tokens`` is scored as the prefix, i.e. the KL of the length-capped processes); the sequence entropy
  estimate −mean log π(y|x) from the same samples.

On ``n_train_prompts`` training prompts (drawn with the seed; every training pair of each is evaluated) plus every
p* = ½ training pair:

* log π(y_w|x) and log π(y_l|x) of every evaluated pair and their change from the SFT policy, binned by
  p* = σ((r*_w − r*_l)/T) (T the noise level's temperature; y_w the labelled winner, so p* < ½ marks a label that
  went against r*);
* the margin growth on p* = ½ pairs: [log π(y_w) − log π(y_l)] − [the same under SFT], over pairs whose two
  responses have *exactly* equal r* (the testbed's ``tie`` pairs and naturally equal ones); and its trajectory
  during training, measured every ``margin_every`` steps on up to ``max_tie_pairs`` of them by a trainer callback
  (the cheapest honest option: the policy's metrics.jsonl only logs batch aggregates, and checkpoints would cost a
  save and a reload each);
* Lemma 1c's prediction, "mass moves to responses never seen as preferred": W(x) is the set of distinct responses
  that are y_w of at least one training pair of prompt x (texts compared after whitespace normalisation).
  ``never_preferred_share`` is the fraction of ancestral samples (one per training prompt) that are not in W(x);
  ``preferred_mass`` is Σ_{y∈W(x)} π(y|x), computed exactly from the log-probs (EOS included), averaged over prompts
  (``log_preferred_mass`` its log). Both are reported beside the SFT cell of the same noise level and seed. On the
  testbed the sample share saturates (measured: 1.0 for SFT and DRDO, 300 prompts: a 16-word sample almost never
  equals one of a prompt's one or two preferred summaries), so the reading tests the exact mass: a fall of
  log π(W(x)) from SFT is a rise of the mass on never-preferred responses, π(W(x)^c) = 1 − π(W(x)).

Intervals and the reading
-------------------------
Training seeds are the unit of replication (:mod:`drdo_lib.stats`): values are first paired per seed and prompt
(or pair) — with the SFT cell of the same seed and noise level, with another method, or as a difference of
differences between noise levels — and every interval then resamples seeds as the outer level (the wider of a
seed-level t interval and a hierarchical bootstrap: seeds, then prompts inside each drawn seed); each seed's
estimate is shown beside the pooled one. :func:`reading` (:mod:`drdo_lib.study_reading`, a table of claims)
returns one row per claim with its p-value, the Holm–Bonferroni-adjusted p over all claims, the raw and adjusted
verdicts ("supports" / "contradicts" only when p < 1 − level and the interval excludes 0) and the interval's
half-width (the smallest effect the design could have detected); :func:`report` adds the testbed facts measured
from the generated data (share of exactly tied pairs, flip rate, label ceiling) and each seed's SFT attempts.
Nothing is hard-coded.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from drdo_lib.config import file_lock, write_text_atomic
from drdo_lib.stats import INTERVALS, seed_effect, verdict
from drdo_lib.study_reading import (ORACLE_METHODS, frontier, kl_matched_gain, reading, reading_sentences,
                                    student_oracle_gap)

logger = logging.getLogger(__name__)

__all__ = ["StudyConfig", "Cell", "run", "expand_grid", "cell_key", "run_cell", "measure", "load_cells",
           "results_table", "summary_table", "reading", "reading_sentences", "verdict", "effect", "report",
           "parse_shard",
           "DEFAULT_VARIANTS", "ORACLE_METHODS", "SFT_INVARIANT", "never_preferred", "sft_corpus", "sft_history",
           "sft_check_reward", "gate_failure_message", "run_and_store_cell", "plan",
           "run_parallel", "label_flip_rate", "frontier_point", "training_summary", "TRAIN_KEYS", "FLIP_RATE",
           "student_oracle_gap", "kl_matched_gain", "frontier"]

#: Bump when what a cell measures (or how) changes: part of every cell key.
STUDY_VERSION = 2
#: Methods that distil an Oracle (DRDO: the Oracle's rewards; e-DPO: the reward ensemble): they get the oracle axis.
#: SyntheticConfig fields that only shape the comparison rows (pairs, labels, confidences), never the SFT rows
#: (tests/test_study.py checks each): noise levels differing only in these share one SFT policy per seed.
SFT_INVARIANT = ("temperature", "tie_fraction", "confidence_noise", "repeat_fraction", "null_confidence_fraction",
                 "near_pair_fraction", "ref_pair_fraction", "pair_source", "n_workers")
#: Init seed of SFT attempt k of a training seed s: s + SFT_RESTART_STRIDE * k (study.sft_min_reward).
SFT_RESTART_STRIDE = 1000
#: ``label_noise_eps`` value of a variant that means "the flip rate measured on this cell's training pairs"
#: (:func:`label_flip_rate`: share of the pairs r* decides whose label goes against r*): the best case for cDPO/rDPO.
FLIP_RATE = "flip_rate"
#: Largest ε a measured flip rate is clipped to (rDPO needs ε < 0.5).
MAX_FLIP_EPS = 0.49
#: The study's methods: DRDO with both student-reward variants (and the reward head as it was before it was fitted
#: first: zero-initialised, the Oracle unscaled), DPO, e-DPO, IPO, the α = 0 / γ = 0 ablations of both
#: DRDO students, and the baselines built for noisy labels (cDPO and rDPO with ε = the measured flip rate and with a
#: fixed, misspecified ε = 0.1; Dr. DPO with β′ = 1, which needs no ε).
DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "drdo_head": {"method": "drdo", "student_reward": "head", "label": "DRDO (r̂ head)"},
    "drdo_logprob": {"method": "drdo", "student_reward": "logprob", "label": "DRDO (r̂ = β·z)"},
    "drdo_head_zero": {"method": "drdo", "student_reward": "head", "student_head_init": "zero",
                       "standardize_oracle": False, "label": "DRDO (r̂ head from zero, unscaled Oracle)"},
    "dpo": {"method": "dpo", "label": "DPO"},
    "edpo": {"method": "edpo", "label": "e-DPO"},
    "ipo": {"method": "ipo", "label": "IPO"},
    "drdo_alpha0": {"method": "drdo", "student_reward": "head", "alpha": 0.0, "label": "DRDO (r̂ head) α=0"},
    "drdo_gamma0": {"method": "drdo", "student_reward": "head", "gamma": 0.0, "label": "DRDO (r̂ head) γ=0"},
    "drdo_logprob_alpha0": {"method": "drdo", "student_reward": "logprob", "alpha": 0.0,
                            "label": "DRDO (r̂ = β·z) α=0"},
    "drdo_logprob_gamma0": {"method": "drdo", "student_reward": "logprob", "gamma": 0.0,
                            "label": "DRDO (r̂ = β·z) γ=0"},
    "cdpo": {"method": "cdpo", "label_noise_eps": FLIP_RATE, "label": "cDPO (ε = flip rate)"},
    "cdpo_fixed": {"method": "cdpo", "label_noise_eps": 0.1, "label": "cDPO (ε = 0.1)"},
    "rdpo": {"method": "rdpo", "label_noise_eps": FLIP_RATE, "label": "rDPO (ε = flip rate)"},
    "rdpo_fixed": {"method": "rdpo", "label_noise_eps": 0.1, "label": "rDPO (ε = 0.1)"},
    "drdpo": {"method": "drdpo", "drdpo_beta": 1.0, "label": "Dr. DPO (β′ = 1)"},
}
#: Training metrics (metrics.jsonl keys) a trained cell keeps, final and mean over logging steps (:func:`training_summary`).
TRAIN_KEYS = ("loss", "loss_reward", "loss_focal", "grad_norm", "grad_norm_reward_lm", "grad_norm_focal_lm",
              "grad_norm_reward_head", "grad_norm_reward", "grad_norm_focal", "bt_accuracy", "student_reward_accuracy",
              "oracle_reward_advantage", "p_w", "logps_chosen", "logps_rejected")
#: Keys of a variant mapping that are not PolicyConfig overrides.
_VARIANT_META = ("method", "label", "oracle_kinds")
GATE_MODES = ("require", "record", "off")
GOLD_SAMPLES = ("greedy", "sample")


def _default_noise_levels() -> tuple[dict, ...]:
    return ({"temperature": 0.5, "tie_fraction": 0.1}, {"temperature": 1.0, "tie_fraction": 0.2},
            {"temperature": 2.0, "tie_fraction": 0.3})


@dataclass(frozen=True)
class StudyConfig:
    """Settings of the robustness study (profile section ``study``; module docstring)."""

    variants: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_VARIANTS.items()})  # name ->
    #   {method, label?, oracle_kinds?, PolicyConfig overrides...}; merged over DEFAULT_VARIANTS
    methods: tuple[str, ...] | None = None  # variant names to run (None: every variant)
    noise_levels: tuple = field(default_factory=_default_noise_levels)  # SyntheticConfig overrides per level
    #   (an optional "name" labels the level in figures), from least to most noisy
    oracle_kinds: tuple[str, ...] = ("trained", "true_reward")  # the oracle axis of DRDO / e-DPO
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds (>= 3 for a headline)
    data_seed: int | None = None  # testbed seed; None: each training seed draws its own testbed
    split: str = "D_all"  # the preference split trained on
    data: dict = field(default_factory=dict)  # DataConfig overrides for every cell (e.g. n_train)
    sft: dict = field(default_factory=dict)  # SFTConfig overrides of the study's SFT policies
    oracle: dict = field(default_factory=dict)  # OracleConfig overrides of the trained Oracle / ensemble
    policy: dict = field(default_factory=dict)  # PolicyConfig overrides of every cell (e.g. max_steps)
    gate: str = "record"  # sanity gate per seed: require (raise GateFailed) | record (reading says so) | off
    sft_min_reward: float | None = None  # restart rule: an SFT policy whose greedy r* on sft_check_prompts
    #   *training* prompts is below this is retrained with init seed s + 1000 k (None: no check, one attempt).
    #   A from-scratch model sometimes never leaves a "topic words" plateau (README); the data stay the seed's
    sft_attempts: int = 3  # attempts at most (the last is kept whatever its r*; the gate then decides)
    sft_check_prompts: int = 200  # training prompts of the restart rule's check
    n_prompts: int = 300  # held-out prompts (gold r*, KL, entropy)
    n_train_prompts: int = 300  # training prompts (never-preferred share / mass, pair log-probs)
    sample_temperature: float = 0.7  # temperature of the scored sample (beside greedy)
    top_p: float = 0.8  # nucleus mass of the scored sample
    max_new_tokens: int = 16  # generation cap
    batch_size: int = 128  # generation / scoring batch
    margin_every: int = 10  # steps between measurements of the p* = ½ margin during training
    max_tie_pairs: int = 128  # p* = ½ pairs measured during training
    p_star_bins: tuple[float, ...] = (0.0, 0.1, 0.3, 0.45, 0.55, 0.7, 0.9, 1.0)  # bin edges of p*
    gold: str = "greedy"  # which sample's r* the robustness reading uses: greedy | sample
    student: str | tuple = "drdo_head"  # the DRDO variant(s) the robustness and Sec. 5 readings test
    baselines: tuple[str, ...] = ("dpo", "edpo")  # what the student is compared with
    reading_oracle: str = "trained"  # oracle kind of the student (and e-DPO) in the robustness reading
    min_seeds: int = 3  # a verdict other than "cannot tell" needs at least this many seeds
    level: float = 0.95  # interval level (a verdict needs p < 1 - level)
    n_bootstrap: int = 2000  # hierarchical-bootstrap resamples (its smallest two-sided p is 2 / (n + 1))
    interval: str = "wider"  # the reading's interval: wider (of the seed-level t and the hierarchical bootstrap)
    #   | t | bootstrap (drdo_lib.stats.seed_effect)
    dropped_seeds: dict = field(default_factory=dict)  # seed -> why it was left out of `seeds` (the reading says so)
    workers: int = 1  # worker processes for the grid (run_parallel); 1: this process, in grid order
    threads_per_worker: int | None = None  # torch threads per worker; None: cores // workers (at least 1)
    checkpoint_steps: tuple[int, ...] = (10, 20, 40, 80)  # training steps at which r* (greedy and sampled) and
    #   KL(π‖π_SFT) are measured on checkpoint_prompts held-out prompts (the r*-KL frontier; the final step always is;
    #   steps past policy.max_steps are skipped). Points of one trajectory (the lr schedule is the full run's)
    checkpoint_prompts: int = 100  # held-out prompts (the first of the n_prompts; at most n_prompts) measured at each
    #   checkpoint
    fit_pairs: int = 500  # held-out pairs on which a DRDO student's reward fit is measured (reward_fit)
    keep_models: bool = False  # keep each cell's trained policy (else deleted once measured)
    key_code: bool = True  # cache keys include a hash of the library code that shapes a result (code_hash());
    #   false: only the settings (an edited trainer then reuses stale cells: bump STUDY_VERSION or clear the cells)

    def __post_init__(self) -> None:
        from drdo_lib.data.synthetic import SyntheticConfig
        from drdo_lib.oracle import ORACLE_KINDS
        from drdo_lib.policy import PolicyConfig
        from drdo_lib.trainer import METHODS

        for name in ("methods", "oracle_kinds", "seeds", "baselines", "p_star_bins", "noise_levels", "checkpoint_steps"):
            v = getattr(self, name)
            if isinstance(v, (list, str, int)) and not (name == "noise_levels" and isinstance(v, str)):
                object.__setattr__(self, name, tuple([v] if isinstance(v, (str, int)) else v))
        if isinstance(self.student, list):
            object.__setattr__(self, "student", tuple(self.student))
        if not isinstance(self.variants, Mapping):
            raise ValueError(f"StudyConfig.variants must be a mapping name -> settings, got {self.variants!r}")
        merged = {k: dict(v) for k, v in DEFAULT_VARIANTS.items()}
        for k, v in self.variants.items():
            if not isinstance(v, Mapping):
                raise ValueError(f"StudyConfig.variants[{k!r}] must be a mapping, got {v!r}")
            merged[str(k)] = {**merged.get(str(k), {}), **dict(v)}
        object.__setattr__(self, "variants", merged)
        pol_fields = {f.name for f in dataclasses.fields(PolicyConfig)}
        for k, v in merged.items():
            if k == "sft":
                raise ValueError("StudyConfig.variants: 'sft' is reserved for the SFT baseline cells")
            if v.get("method") not in METHODS:
                raise ValueError(f"StudyConfig.variants[{k!r}].method must be one of {METHODS}, "
                                 f"got {v.get('method')!r}")
            bad = sorted(set(v) - pol_fields - set(_VARIANT_META))
            if bad:
                raise ValueError(f"StudyConfig.variants[{k!r}]: unknown setting(s) {bad} (PolicyConfig fields or "
                                 f"{list(_VARIANT_META)})")
            if any(o not in ORACLE_KINDS for o in v.get("oracle_kinds", ())):
                raise ValueError(f"StudyConfig.variants[{k!r}].oracle_kinds must be a subset of {ORACLE_KINDS}")
            eps = v.get("label_noise_eps")
            if eps is not None and eps != FLIP_RATE and not (isinstance(eps, (int, float)) and 0 <= eps < 0.5):
                raise ValueError(f"StudyConfig.variants[{k!r}].label_noise_eps must be in [0, 0.5) or "
                                 f"{FLIP_RATE!r} (the measured flip rate), got {eps!r}")
        names = self.methods if self.methods is not None else tuple(merged)
        bad = [m for m in names if m not in merged]
        if bad or not names:
            raise ValueError(f"StudyConfig.methods must name variants of {sorted(merged)}, got {self.methods}")
        if not self.noise_levels or any(not isinstance(n, Mapping) for n in self.noise_levels):
            raise ValueError(f"StudyConfig.noise_levels must be a non-empty list of mappings, "
                             f"got {self.noise_levels!r}")
        syn = {f.name for f in dataclasses.fields(SyntheticConfig)}
        for lvl in self.noise_levels:
            bad = sorted(set(lvl) - syn - {"name"})
            if bad:
                raise ValueError(f"StudyConfig.noise_levels: unknown SyntheticConfig field(s) {bad}")
            SyntheticConfig(**{k: v for k, v in lvl.items() if k != "name"})
        object.__setattr__(self, "noise_levels", tuple(dict(n) for n in self.noise_levels))
        for name in ("data", "sft", "oracle", "policy"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"StudyConfig.{name} must be a mapping of that section's fields")
        checks = [
            (all(k in ORACLE_KINDS for k in self.oracle_kinds) and len(self.oracle_kinds) > 0,
             f"oracle_kinds must be a non-empty subset of {ORACLE_KINDS}"),
            (len(self.seeds) > 0 and all(isinstance(s, int) for s in self.seeds), "seeds must be integers"),
            (len(set(self.seeds)) == len(self.seeds), "seeds must differ"),
            (self.gate in GATE_MODES, f"gate must be one of {GATE_MODES}"),
            (self.gold in GOLD_SAMPLES, f"gold must be one of {GOLD_SAMPLES}"),
            (self.n_prompts > 1 and self.n_train_prompts > 1, "n_prompts and n_train_prompts must be > 1"),
            (self.sample_temperature > 0 and 0 < self.top_p <= 1, "sample_temperature > 0, top_p in (0, 1]"),
            (self.max_new_tokens > 0 and self.batch_size > 0, "max_new_tokens and batch_size must be > 0"),
            (self.margin_every > 0 and self.max_tie_pairs > 0, "margin_every and max_tie_pairs must be > 0"),
            (all(isinstance(k, int) and k > 0 for k in self.checkpoint_steps)
             and list(self.checkpoint_steps) == sorted(set(self.checkpoint_steps)),
             "checkpoint_steps must be increasing integers > 0"),
            (isinstance(self.checkpoint_prompts, int) and self.checkpoint_prompts > 1,
             "checkpoint_prompts must be an integer > 1"),
            (isinstance(self.fit_pairs, int) and self.fit_pairs > 1, "fit_pairs must be an integer > 1"),
            (len(self.p_star_bins) >= 2 and list(self.p_star_bins) == sorted(self.p_star_bins)
             and self.p_star_bins[0] <= 0 and self.p_star_bins[-1] >= 1, "p_star_bins: sorted edges covering [0, 1]"),
            (0.5 < self.level < 1 and self.n_bootstrap >= 100, "level in (0.5, 1), n_bootstrap >= 100"),
            (self.interval in INTERVALS, f"interval must be one of {INTERVALS}"),
            (isinstance(self.dropped_seeds, Mapping) and all(isinstance(k, int) and k not in self.seeds
                                                              for k in self.dropped_seeds),
             "dropped_seeds must map integer seeds that are not in seeds to a reason"),
            (isinstance(self.min_seeds, int) and self.min_seeds >= 1, "min_seeds must be an integer >= 1"),
            (self.sft_min_reward is None or isinstance(self.sft_min_reward, (int, float)),
             "sft_min_reward must be a number or null"),
            (isinstance(self.sft_attempts, int) and self.sft_attempts >= 1 and isinstance(self.sft_check_prompts, int)
             and self.sft_check_prompts >= 1, "sft_attempts and sft_check_prompts must be integers >= 1"),
            (isinstance(self.workers, int) and not isinstance(self.workers, bool) and self.workers >= 1,
             "workers must be an integer >= 1"),
            (self.threads_per_worker is None or (isinstance(self.threads_per_worker, int)
                                                 and self.threads_per_worker >= 1),
             "threads_per_worker must be an integer >= 1 or null"),
            (isinstance(self.keep_models, bool) and isinstance(self.key_code, bool),
             "keep_models and key_code must be true or false"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"StudyConfig: {msg}")

    @property
    def selected(self) -> tuple[str, ...]:
        """The variant names of the grid, in order."""
        return self.methods if self.methods is not None else tuple(self.variants)

    def policy_overrides(self, variant: str, flip_rate: float | None = None) -> dict:
        """The PolicyConfig values a variant sets (its method, label and Oracle kinds left out). ``label_noise_eps:
        flip_rate`` becomes ``flip_rate`` (a cell's measured flip rate, clipped to :data:`MAX_FLIP_EPS`; 0 when not
        given, as for validation and the cache key, whose data settings determine the flip rate)."""
        over = {k: v for k, v in self.variants[variant].items() if k not in _VARIANT_META}
        if over.get("label_noise_eps") == FLIP_RATE:
            over["label_noise_eps"] = 0.0 if flip_rate is None else min(float(flip_rate), MAX_FLIP_EPS)
        return over

    def label(self, variant: str) -> str:
        from drdo_lib.paper_numbers import METHOD_NAMES

        if variant == "sft":
            return "SFT"
        return str(self.variants.get(variant, {}).get("label") or METHOD_NAMES.get(variant, variant))

    def noise_name(self, i: int) -> str:
        lvl = self.noise_levels[i]
        if lvl.get("name"):
            return str(lvl["name"])
        short = {"temperature": "T"}  # tie_fraction stays spelled out: a generator setting, not the tied share
        return ", ".join(f"{short.get(k, k)}={v}" for k, v in lvl.items()) or "profile"


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a variant (or ``sft``), a noise level (index), an oracle kind (``none`` for methods
    without one) and a training seed."""

    variant: str
    method: str
    noise: int
    oracle: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}|noise{self.noise}|{self.oracle}|seed{self.seed}"


def expand_grid(cfg: StudyConfig) -> list[Cell]:
    """Every cell of the grid, in run order (seed, then noise level, then the SFT baseline and the variants, then
    the oracle kinds): methods without an Oracle get one cell with oracle ``none``."""
    cells = []
    for seed in cfg.seeds:
        for i in range(len(cfg.noise_levels)):
            cells.append(Cell("sft", "sft", i, "none", seed))
            for v in cfg.selected:
                spec = cfg.variants[v]
                method = spec["method"]
                if method in ORACLE_METHODS:
                    kinds = [k for k in cfg.oracle_kinds if k in spec.get("oracle_kinds", cfg.oracle_kinds)]
                    cells.extend(Cell(v, method, i, k, seed) for k in kinds)
                else:
                    cells.append(Cell(v, method, i, "none", seed))
    return cells


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> ``(i, N)`` with 0 <= i < N; None passes; anything else is a ValueError."""
    if text in (None, ""):
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard i/N needs 0 <= i < N, got {text!r}")
    return i, n


# ---------------------------------------------------------------------------------------------------------------
# Settings of each piece of work, and its key
# ---------------------------------------------------------------------------------------------------------------
#: Library modules whose code shapes a cell's result (data, training, scoring, generation); :func:`code_hash`.
CODE_FILES = ("policy.py", "trainer.py", "losses.py", "precompute.py", "generation.py", "models.py", "hf.py", "sft.py",
              "oracle.py", "gate.py", "data/synthetic.py", "data/loaders.py", "data/splits.py", "data/tokenize.py",
              "data/pipeline.py", "data/formats.py")


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """Hash of :data:`CODE_FILES` (this module's measurement code is versioned by :data:`STUDY_VERSION` instead, so
    editing the reading or the figures does not invalidate finished cells). Read once per process: the code a
    process runs is the code it imported, and every key of one study call must agree even when the files are
    edited meanwhile (measured: a concurrent edit mid-run otherwise split one grid over two SFT keys)."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for name in CODE_FILES:
        p = root / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.exists() else b""))
    return h.hexdigest()[:16]


def _code(cfg: "StudyConfig") -> str | None:
    return code_hash() if cfg.key_code else None


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


#: Why the study cannot run on a profile whose data is not the synthetic testbed.
NEEDS_TESTBED = ("the robustness study needs the synthetic testbed (data.source: synthetic): it measures the true "
                 "reward r*, which real data does not have")


def profile_problem(profile) -> str | None:
    """Why the robustness study cannot run on ``profile`` (a name, YAML path or mapping), or ``None`` when it can:
    the study needs the synthetic testbed (its data source after the study's own ``data`` overrides)."""
    from drdo_lib.config import load_profile

    prof = load_profile(profile)
    data = {**(prof.get("data") or {}), **((prof.get("study") or {}).get("data") or {})}
    return None if data.get("source", "synthetic") == "synthetic" else NEEDS_TESTBED


def _base_profile(run, cfg: StudyConfig) -> dict:
    """The run's profile with the study's section overrides applied (data, sft, oracle, policy)."""
    prof = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in run.profile.items()}
    for name in ("data", "sft", "oracle", "policy"):
        prof[name] = {**(prof.get(name) or {}), **dict(getattr(cfg, name))}
    data = prof["data"]
    data["synthetic"] = dict(data.get("synthetic") or {})
    if data.get("source", "synthetic") != "synthetic":
        raise ValueError(NEEDS_TESTBED)
    if cfg.data_seed is not None:
        data["synthetic"]["seed"] = cfg.data_seed
    return prof


def _data_profile(run, cfg: StudyConfig, noise: int, *, sft_only: bool = False) -> dict:
    """The profile of noise level ``noise`` (its SyntheticConfig overrides applied); with ``sft_only`` only the
    overrides that can change the SFT rows (everything outside :data:`SFT_INVARIANT`)."""
    prof = _base_profile(run, cfg)
    lvl = {k: v for k, v in cfg.noise_levels[noise].items() if k != "name"}
    if sft_only:
        lvl = {k: v for k, v in lvl.items() if k not in SFT_INVARIANT}
    prof["data"] = {**prof["data"], "synthetic": {**prof["data"]["synthetic"], **lvl}}
    return prof


def _sub_run(run, profile: dict, seed: int, kind: str, key: str):
    from drdo_lib.run import Run

    root = run.dir / "study" / "shared" / f"{kind}-{key}"
    return Run(profile={**profile, "seed": seed}, seed=seed, runs_root=root, figures_root=run.figures_root)


def _data_cfg(profile: dict):
    from drdo_lib.config import build_config
    from drdo_lib.data.pipeline import DataConfig

    return build_config(DataConfig, profile.get("data") or {})


def data_run(run, cfg: StudyConfig, noise: int, seed: int):
    """The sub-run holding noise level ``noise``'s data (and its trained Oracle / ensemble) for ``seed``."""
    prof = _data_profile(run, cfg, noise)
    key = _hash({"data": dataclasses.asdict(_data_cfg(prof)), "seed": seed, "oracle": prof.get("oracle"),
                 "sft": sft_key(run, cfg, noise, seed)})
    return _sub_run(run, prof, seed, "data", key)


def sft_key(run, cfg: StudyConfig, noise: int, seed: int) -> str:
    """Key of the SFT policy a cell starts from: the data settings that can change the SFT rows, the SFT config and
    the seed (so noise levels that differ only in :data:`SFT_INVARIANT` fields share it)."""
    from drdo_lib.sft import SFTConfig
    from drdo_lib.config import build_config

    prof = _data_profile(run, cfg, noise, sft_only=True)
    dcfg = dataclasses.asdict(_data_cfg(prof))
    syn = {k: v for k, v in dcfg["synthetic"].items() if k not in SFT_INVARIANT}
    dcfg["synthetic"] = syn
    sft_cfg = dataclasses.asdict(build_config(SFTConfig, prof.get("sft") or {}))
    payload = {"data": dcfg, "sft": sft_cfg, "seed": seed, "corpus": "sft_rows+testbed_words", "v": STUDY_VERSION,
               "code": _code(cfg)}
    if cfg.sft_min_reward is not None:  # which SFT policy is kept depends on the restart rule
        payload["restarts"] = [cfg.sft_min_reward, cfg.sft_attempts, cfg.sft_check_prompts]
    return _hash(payload)


def sft_run(run, cfg: StudyConfig, noise: int, seed: int):
    """The sub-run holding the SFT policy (and the gate) of ``seed`` for noise level ``noise``: its data are the
    profile's own comparison settings (the SFT rows are the same at every level that differs only in
    :data:`SFT_INVARIANT` fields)."""
    return _sub_run(run, _data_profile(run, cfg, noise, sft_only=True), seed, "sft", sft_key(run, cfg, noise, seed))


def _policy_config(run, cfg: StudyConfig, cell: Cell, drun, srun, *, flip_rate: float | None = None):
    """The cell's PolicyConfig (:meth:`StudyConfig.policy_overrides` of its variant, ``flip_rate`` the cell's
    measured flip rate)."""
    from drdo_lib.policy import PolicyConfig

    over = cfg.policy_overrides(cell.variant, flip_rate)
    paths = dict(init_model=str(srun.sft_model))
    if cell.oracle == "trained":
        paths["oracle_model"] = str(drun.oracle_model)
        paths["ensemble_models"] = [str(drun.dir / "ensemble" / f"member_{k}")
                                    for k in range(_oracle_cfg(drun).ensemble_size)]
    return drun.config(PolicyConfig, "policy", **over, **paths, methods=(cell.method,), splits=(cfg.split,),
                       resume_from_checkpoint=None)


def _oracle_cfg(run_, **over):
    from drdo_lib.oracle import OracleConfig

    return run_.config(OracleConfig, "oracle", **over)


def _measure_settings(cfg: StudyConfig) -> dict:
    keys = ("split", "n_prompts", "n_train_prompts", "sample_temperature", "top_p", "max_new_tokens", "margin_every",
            "max_tie_pairs", "p_star_bins", "checkpoint_steps", "checkpoint_prompts", "fit_pairs")
    return {k: getattr(cfg, k) for k in keys}


def cell_settings(run, cfg: StudyConfig, cell: Cell) -> dict:
    """Everything a cell's result depends on (its key is a hash of this)."""
    from drdo_lib.sft import SFTConfig

    drun = data_run(run, cfg, cell.noise, cell.seed)
    srun = sft_run(run, cfg, cell.noise, cell.seed)
    out = {"cell": dataclasses.asdict(cell), "version": STUDY_VERSION, "code": _code(cfg),
           "noise_level": cfg.noise_levels[cell.noise],
           "data": dataclasses.asdict(_data_cfg(drun.profile)), "sft_key": sft_key(run, cfg, cell.noise, cell.seed),
           "sft": dataclasses.asdict(srun.config(SFTConfig, "sft")), "measure": _measure_settings(cfg)}
    if cell.variant != "sft":
        pcfg = dataclasses.asdict(_policy_config(run, cfg, cell, drun, srun))
        for k in ("init_model", "oracle_model", "ensemble_models"):  # paths follow from the keys above
            pcfg.pop(k, None)
        if cfg.variants[cell.variant].get("label_noise_eps") == FLIP_RATE:  # measured from the data keyed above
            pcfg["label_noise_eps"] = FLIP_RATE
        out["policy"] = pcfg
        out["variant"] = {k: v for k, v in cfg.variants[cell.variant].items() if k != "label"}
        if cell.oracle != "none":
            out["oracle"] = dataclasses.asdict(_oracle_cfg(drun, kind=cell.oracle))
    return out


def cell_key(run, cfg: StudyConfig, cell: Cell) -> str:
    """The cache key of a cell: a hash of :func:`cell_settings`."""
    return _hash(cell_settings(run, cfg, cell))


def cells_dir(run) -> Path:
    """``runs/<profile>/study/cells/``: one ``<key>.json`` per finished cell."""
    d = run.dir / "study" / "cells"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, default=_json_default))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def read_record(path: Path, key: str, *, stale_ok: bool = False) -> dict | None:
    """The JSON object stored at ``path`` for ``key`` (a cell record or a cache marker), or ``None`` when there is
    none. A file that is not a JSON object holding this ``key`` (truncated, empty, a list, another cell's record)
    is moved aside as ``<name>.corrupt-<timestamp>-<pid>``, named in a warning, and read as missing (so the work
    is redone). ``stale_ok``: a record of another key is merely stale (a cache marker of older settings) and is
    left for the rewrite."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        problem = f"unreadable: {e}"
    else:
        try:
            rec = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            problem = "empty" if not text.strip() else f"not JSON ({e})"
        else:
            if isinstance(rec, dict) and rec.get("key") == key:
                return rec
            if stale_ok and isinstance(rec, dict) and isinstance(rec.get("key"), str):
                return None
            problem = (f"holds the record of {rec.get('key')!r}, not {key!r}" if isinstance(rec, dict)
                       else f"holds a JSON {type(rec).__name__}, not a record")
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another process moved it first
        pass
    logger.warning("%s is unusable (%s): moved aside to %s; it is computed again", path, problem, aside.name)
    return None


def _cached(marker: Path, key: str, build: Callable[[], Any]) -> Any:
    """Run ``build`` unless ``marker`` records ``key`` (written last, so an interrupted build is redone)."""
    with file_lock(marker.with_name(marker.name + ".lock")):
        rec = read_record(marker, key, stale_ok=True)
        if rec is not None:
            return rec.get("value")
        value = build()
        _write_json_atomic(marker, {"key": key, "value": value})
        return value


# ---------------------------------------------------------------------------------------------------------------
# Shared work
# ---------------------------------------------------------------------------------------------------------------
def sft_corpus(data) -> list[str]:
    """Texts the study's SFT tokenizer is built from: the SFT rows (training and held-out) plus one line holding
    every word of the testbed's fixed word lists, so the vocabulary (and its order) does not depend on the pairs."""
    from drdo_lib.data.synthetic import FILLER_WORDS, TEMPLATE_WORDS, TOPIC_WORDS
    from drdo_lib.data.pipeline import SFT_COMPLETION

    texts: list[str] = []
    for col in ("prompt", SFT_COMPLETION):
        texts.extend(x for x in data.sft[col] if isinstance(x, str))
    words = [w for ws in TOPIC_WORDS.values() for w in ws] + list(FILLER_WORDS) + list(TEMPLATE_WORDS)
    texts.append(" ".join(words + [f"r/{t}" for t in TOPIC_WORDS]))
    return texts


def ensure_sft(run, cfg: StudyConfig, noise: int, seed: int, *, progress: bool = False) -> Path:
    """The SFT policy of (noise level, seed), trained once (cached by :func:`sft_key`)."""
    from drdo_lib import sft
    from drdo_lib.data import pipeline as data_stage

    srun = sft_run(run, cfg, noise, seed)

    def build():
        data = data_stage.load(srun)
        train_rows, _ = data.sft_rows()
        t0 = time.perf_counter()
        attempts = []
        for k in range(cfg.sft_attempts if cfg.sft_min_reward is not None else 1):
            init = seed + SFT_RESTART_STRIDE * k
            logger.info("study: training the SFT policy for seed %d, attempt %d (init seed %d, %s)", seed, k + 1,
                        init, srun.sft_model)
            sft.run(srun, train_rows=train_rows, corpus=sft_corpus(data), progress=progress, seed=init)
            rec = {"init_seed": init, "train_loss_last": _last_loss(srun.stage_dir("sft") / "metrics.json")}
            if cfg.sft_min_reward is None:
                attempts.append(rec)
                break
            rec["train_prompt_reward"] = sft_check_reward(srun, train_rows, data.testbed, cfg.sft_check_prompts)
            rec["accepted"] = rec["train_prompt_reward"] >= cfg.sft_min_reward
            attempts.append(rec)
            if rec["accepted"]:
                break
            logger.warning("study: the SFT policy of seed %d (init seed %d) reaches r* %.2f on training prompts, "
                           "below study.sft_min_reward %.2f: %s", seed, init, rec["train_prompt_reward"],
                           cfg.sft_min_reward, "retrained with another init seed"
                           if k + 1 < cfg.sft_attempts else "kept (no attempt left; the gate decides)")
        return {"seconds": round(time.perf_counter() - t0, 1), "attempts": attempts}

    _cached(srun.dir / "sft" / "study_key.json", sft_key(run, cfg, noise, seed), build)
    return srun.sft_model


def _last_loss(metrics_path: Path) -> float | None:
    try:
        curve = json.loads(metrics_path.read_text()).get("loss_curve") or []
        return float(curve[-1]["loss"]) if curve else None
    except (OSError, json.JSONDecodeError):
        return None


def sft_check_reward(srun, train_rows, testbed, n_prompts: int) -> float:
    """Mean r* of the SFT policy's greedy samples on its first ``n_prompts`` *training* prompts (never the held-out
    prompts every cell is measured on): the restart rule's check that SFT learned the task at all."""
    from transformers import AutoTokenizer

    from drdo_lib.sft import SFTConfig, true_reward_of_samples

    scfg = srun.config(SFTConfig, "sft")
    prompts = list(train_rows["prompt"][:n_prompts])
    tok = AutoTokenizer.from_pretrained(srun.sft_model)
    res = true_reward_of_samples(str(srun.sft_model), tok, prompts, testbed.true_rewards, temperature=0.0,
                                 max_new_tokens=scfg.eval_max_new_tokens, batch_size=128,
                                 max_prompt_length=scfg.max_prompt_length)
    return float(res["mean"])


def sft_history(run, cfg: StudyConfig, seed: int, noise: int = 0) -> list[dict]:
    """The SFT attempts of ``seed`` as recorded when its policy was trained (init seed, last training loss and,
    with the restart rule, r* on training prompts and whether it was kept); [] when not trained yet."""
    marker = sft_run(run, cfg, noise, seed).dir / "sft" / "study_key.json"
    try:
        return list((json.loads(marker.read_text()).get("value") or {}).get("attempts") or [])
    except (OSError, json.JSONDecodeError):
        return []


def ensure_gate(run, cfg: StudyConfig, seed: int, *, raise_on_fail: bool = True) -> dict | None:
    """The sanity gate of ``seed`` (on the first noise level's SFT run; cached). ``require``: raise GateFailed
    (unless ``raise_on_fail`` is false: the parallel runner raises it in the parent)."""
    from drdo_lib import gate

    if cfg.gate == "off":
        return None
    srun = sft_run(run, cfg, 0, seed)
    ensure_sft(run, cfg, 0, seed)
    gcfg = srun.config(gate.GateConfig, "gate")
    key = _hash({"sft": sft_key(run, cfg, 0, seed), "gate": dataclasses.asdict(gcfg),
                 "policy": srun.profile.get("policy"), "data": srun.profile.get("data")})

    def build():
        try:
            return gate.run(srun, gcfg)
        except gate.GateFailed as e:
            res = json.loads((srun.stage_dir("gate") / "result.json").read_text())
            res["message"] = str(e)
            return res

    res = _cached(srun.dir / "gate" / "study_key.json", key, build)
    if raise_on_fail and res and res.get("status") == "failed" and cfg.gate == "require":
        raise gate.GateFailed(gate_failure_message(res))
    return res


def gate_failure_message(res: Mapping) -> str:
    """The GateFailed message of a failed gate result (``study.gate: require``)."""
    return (res.get("message", "sanity gate failed") + " (study.gate: require; set study.gate: record to run the "
            "study anyway, the reading then says every verdict cannot tell)")


def ensure_oracle(run, cfg: StudyConfig, noise: int, seed: int, *, ensemble: bool, oracle: bool = True,
                  progress: bool = False) -> None:
    """The trained Oracle (unless ``oracle`` is false) and, with ``ensemble``, the e-DPO ensemble of (noise level,
    seed), each trained once from that seed's SFT policy on that level's pairs."""
    from drdo_lib import oracle as oracle_stage

    drun = data_run(run, cfg, noise, seed)
    sft_dir = ensure_sft(run, cfg, noise, seed)
    ocfg = _oracle_cfg(drun, kind="trained", init_model=str(sft_dir))
    base = _hash({"oracle": dataclasses.asdict(ocfg), "data": drun.profile.get("data"), "seed": seed,
                  "sft": sft_key(run, cfg, noise, seed)})
    if oracle:
        _cached(drun.dir / "oracle" / "study_key.json", base,
                lambda: {"dir": str(oracle_stage.run(drun, ocfg, progress=progress))})
    if ensemble:
        _cached(drun.dir / "ensemble" / "study_key.json", base,
                lambda: {"dirs": [str(p) for p in oracle_stage.run_ensemble(drun, ocfg, progress=progress)]})


# ---------------------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------------------
def _norm(text: str) -> str:
    return " ".join(str(text).split())


def never_preferred(samples: Sequence[str], preferred_sets: Sequence[set[str]]) -> np.ndarray:
    """1.0 where a sample (one per prompt) is not among the prompt's responses ever seen as preferred (y_w of some
    training pair), compared after whitespace normalisation; 0.0 otherwise."""
    if len(samples) != len(preferred_sets):
        raise ValueError(f"{len(samples)} samples but {len(preferred_sets)} preferred sets")
    return np.array([0.0 if _norm(s) in {_norm(w) for w in ws} else 1.0 for s, ws in zip(samples, preferred_sets)])


def preferred_mass(logps: Mapping[str, float], preferred: set[str]) -> float:
    """Σ_{y ∈ preferred} π(y|x) from the sequence log-probs ``logps`` (text -> log π) of distinct responses."""
    vals = [logps[_norm(y)] for y in {_norm(w) for w in preferred}]
    return float(np.exp(np.logaddexp.reduce(vals))) if vals else 0.0


def _pair_logps(lm, tok_ds, pad_id: int, batch_size: int = 128) -> np.ndarray:
    """``(N, 2)`` summed response log-probs (chosen, rejected) of tokenised pairs (no progress bar)."""
    import torch

    from drdo_lib.data.tokenize import collate_preference
    from drdo_lib.precompute import response_logps_sum

    lm = getattr(lm, "lm", lm)
    was = lm.training
    lm.eval()
    dev = next(lm.parameters()).device
    out = np.zeros((len(tok_ds), 2))
    cols = [c for c in tok_ds.column_names if c.endswith(("_input_ids", "_attention_mask", "_response_mask"))]
    sub = tok_ds.select_columns(cols)
    try:
        with torch.no_grad():
            for s in range(0, len(sub), batch_size):
                rows = sub[s:s + batch_size]
                batch = collate_preference([{c: rows[c][i] for c in cols} for i in range(len(rows[cols[0]]))], pad_id)
                B = batch["chosen_input_ids"].shape[0]
                ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]]).to(dev)
                att = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]]).to(dev)
                resp = torch.cat([batch["chosen_response_mask"], batch["rejected_response_mask"]]).to(dev)
                z = response_logps_sum(lm, ids, att, resp).cpu().numpy()
                out[s:s + B, 0], out[s:s + B, 1] = z[:B], z[B:]
    finally:
        lm.train(was)
    return out


def ancestral_samples(lm, ref_lm, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, max_prompt_length: int,
                      batch_size: int, seed: int) -> dict[str, Any]:
    """One ancestral sample per prompt (temperature 1, top-p 1, top-k off) with its log-prob under ``lm`` and under
    ``ref_lm`` (sums over the generated tokens up to and including EOS). Returns ``{texts, logp, logp_ref}``."""
    import torch

    from drdo_lib.generation import _batch_seed, _left_pad, encode_prompts
    from drdo_lib.precompute import response_logps_sum

    lm, ref_lm = getattr(lm, "lm", lm), getattr(ref_lm, "lm", ref_lm)
    dev = next(lm.parameters()).device
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    ids = encode_prompts(tokenizer, prompts, max_prompt_length)
    texts: list[str] = []
    lp, lp_ref = [], []
    lm.eval()
    ref_lm.eval()
    with torch.no_grad():
        for b, start in enumerate(range(0, len(ids), batch_size)):
            enc = _left_pad(ids[start:start + batch_size], pad, dev)
            torch.manual_seed(_batch_seed(seed, b))
            seqs = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0, top_p=1.0,
                               top_k=0, use_cache=True, pad_token_id=pad, eos_token_id=eos)
            T = enc["input_ids"].shape[1]
            new = seqs[:, T:]
            is_eos = (new == eos).long()
            after = (is_eos.cumsum(1) - is_eos) > 0  # positions after the first EOS
            keep = (~after).long()
            att = torch.cat([enc["attention_mask"], keep], 1)
            resp = torch.cat([torch.zeros_like(enc["attention_mask"]), keep], 1)
            lp.append(response_logps_sum(lm, seqs, att, resp).cpu().numpy())
            lp_ref.append(response_logps_sum(ref_lm, seqs, att, resp).cpu().numpy())
            for row, k in zip(new.tolist(), keep.sum(1).tolist()):
                texts.append(tokenizer.decode(row[:k], skip_special_tokens=True).strip())
    return {"texts": texts, "logp": np.concatenate(lp) if lp else np.zeros(0),
            "logp_ref": np.concatenate(lp_ref) if lp_ref else np.zeros(0)}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def eval_pairs(data, cfg: StudyConfig, seed: int, temperature: float):
    """The training pairs a cell is measured on: every training pair of ``n_train_prompts`` training prompts (drawn
    with ``seed``) plus up to ``max_tie_pairs`` other pairs of exactly equal r* (p* = ½). Returns ``(rows,
    prompts, preferred sets, p*, tie mask)``; ``rows`` is a ``datasets.Dataset`` of preference rows."""
    tb = data.testbed
    rows = data.split(cfg.split).filter(lambda s: s == "train", input_columns="split", desc="study: training pairs")
    prompts_all = list(rows["prompt"])
    distinct = sorted(set(prompts_all))
    rng = np.random.default_rng(seed)
    chosen_prompts = [distinct[i] for i in sorted(rng.choice(len(distinct), min(cfg.n_train_prompts, len(distinct)),
                                                             replace=False))]
    pick = set(chosen_prompts)
    rc = tb.true_rewards(prompts_all, list(rows["chosen"]))
    rr = tb.true_rewards(prompts_all, list(rows["rejected"]))
    tie = rc == rr
    tie_idx = [i for i in np.flatnonzero(tie) if prompts_all[i] not in pick]
    tie_idx = set(int(i) for i in rng.permutation(tie_idx)[: cfg.max_tie_pairs])
    idx = [i for i, p in enumerate(prompts_all) if p in pick or i in tie_idx]
    sub = rows.select(idx)
    preferred: dict[str, set[str]] = {p: set() for p in chosen_prompts}
    for p, c in zip(prompts_all, rows["chosen"]):
        if p in preferred:
            preferred[p].add(_norm(c))
    p_star = _sigmoid((rc[idx] - rr[idx]) / temperature)
    return sub, chosen_prompts, [preferred[p] for p in chosen_prompts], p_star, tie[idx]


class _TieMarginCallback:
    """Measures the mean margin growth on (up to ``max_tie_pairs``) p* = ½ pairs every ``every`` steps."""

    def __new__(cls, *a, **k):  # a transformers.TrainerCallback subclass built lazily (transformers import cost)
        import transformers

        class _CB(transformers.TrainerCallback):
            def __init__(self, tok_ds, ref_margin, every, pad_id):
                self.ds, self.ref, self.every, self.pad = tok_ds, np.asarray(ref_margin), every, pad_id
                self.curve: list[list[float]] = []

            def _measure(self, step, model):
                if model is None or len(self.ds) == 0:
                    return
                z = _pair_logps(model, self.ds, self.pad)
                self.curve.append([int(step), float(np.mean((z[:, 0] - z[:, 1]) - self.ref))])

            def on_train_begin(self, args, state, control, model=None, **kw):
                self._measure(state.global_step, model)

            def on_step_end(self, args, state, control, model=None, **kw):
                if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
                    self._measure(state.global_step, model)

        return _CB(*a, **k)


def label_flip_rate(testbed, rows) -> dict[str, float]:
    """The labels' flip rate on preference ``rows``: among the pairs r* decides (r*_w ≠ r*_l), the share whose
    labelled winner has the lower r*. Returns ``{flip_rate, n_decided, n_pairs}`` (flip_rate NaN when none is
    decided). This is the ε that cDPO / rDPO assume, measured (the ``flip_rate`` variants use it)."""
    prompts = list(rows["prompt"])
    rc = np.asarray(testbed.true_rewards(prompts, list(rows["chosen"])), dtype=float)
    rr = np.asarray(testbed.true_rewards(prompts, list(rows["rejected"])), dtype=float)
    decided = rc != rr
    n = int(decided.sum())
    return {"flip_rate": float((rc[decided] < rr[decided]).mean()) if n else float("nan"), "n_decided": n,
            "n_pairs": int(len(rc))}


def frontier_point(policy_lm, sft_lm, tokenizer, testbed, prompts: Sequence[str], cfg: StudyConfig, *, seed: int,
                   max_prompt_length: int) -> dict[str, Any]:
    """One point of the r*-KL frontier on ``prompts`` (held-out): mean r* of the greedy sample and of one sample
    at ``sample_temperature`` / ``top_p``, and the sampled KL(π‖π_SFT) (one ancestral sample per prompt, as in
    :func:`measure`), with the per-prompt values. Restores the torch/numpy RNG state it used, so measuring during
    training leaves training unchanged."""
    import random

    import torch

    from drdo_lib.generation import generate

    states = (torch.random.get_rng_state(), np.random.get_state(), random.getstate(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    lm = getattr(policy_lm, "lm", policy_lm)
    was = lm.training
    try:
        gkw = dict(max_new_tokens=cfg.max_new_tokens, max_prompt_length=max_prompt_length, batch_size=cfg.batch_size,
                   progress=False)
        greedy = [g["response"] for g in generate(lm, tokenizer, prompts, temperature=0.0, seed=seed, **gkw)]
        sample = [g["response"] for g in generate(lm, tokenizer, prompts, temperature=cfg.sample_temperature,
                                                  top_p=cfg.top_p, seed=seed, **gkw)]
        anc = ancestral_samples(lm, sft_lm, tokenizer, prompts, seed=seed + 7, max_new_tokens=cfg.max_new_tokens,
                                max_prompt_length=max_prompt_length, batch_size=cfg.batch_size)
    finally:
        lm.train(was)
        torch.random.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])
    r_g, r_s = testbed.true_rewards(prompts, greedy), testbed.true_rewards(prompts, sample)
    kl = anc["logp"] - anc["logp_ref"]
    rnd = lambda a: [round(float(x), 5) for x in a]  # noqa: E731
    return {"gold_greedy": float(np.mean(r_g)), "gold_sample": float(np.mean(r_s)), "kl": float(np.mean(kl)),
            "per_prompt": {"r_greedy": rnd(r_g), "r_sample": rnd(r_s), "kl": rnd(kl)}}


class _CheckpointCallback:
    """Measures :func:`frontier_point` at the training steps ``steps`` (those ≤ max_steps) and at the last step."""

    def __new__(cls, *a, **k):  # a transformers.TrainerCallback subclass built lazily (transformers import cost)
        import transformers

        class _CB(transformers.TrainerCallback):
            def __init__(self, steps, measure_fn):
                self.steps, self.measure_fn = set(int(x) for x in steps), measure_fn
                self.points: list[dict] = []

            def on_step_end(self, args, state, control, model=None, **kw):
                step = state.global_step
                if model is not None and (step in self.steps or step >= state.max_steps):
                    if not self.points or self.points[-1]["step"] != step:
                        self.points.append({"step": int(step), **self.measure_fn(model)})

        return _CB(*a, **k)


def training_summary(run_dir: Path) -> dict[str, Any]:
    """What a trained cell keeps of its run folder (deleted after measuring): the final and the mean (over logging
    steps) of each :data:`TRAIN_KEYS` metric and of ``loss_<method>``, the head warm-up's fit and the Oracle's
    scale when used (``summary.json``)."""
    from drdo_lib.hf import read_metrics

    logs = [r for r in read_metrics(run_dir) if "loss" in r]
    keys = [k for k in dict.fromkeys([*TRAIN_KEYS, *(k for r in logs for k in r if k.startswith("loss_"))])
            if any(k in r for r in logs)]
    out: dict[str, Any] = {"logged_steps": [int(r.get("step", 0)) for r in logs],
                           "final": {k: logs[-1].get(k) for k in keys} if logs else {},
                           "mean": {k: float(np.mean([r[k] for r in logs if k in r])) for k in keys}}
    try:
        summ = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        summ = {}
    for k in ("head_fit", "oracle_scale"):
        if k in summ:
            out[k] = summ[k]
    return out


def measure(policy_lm, sft_lm, tokenizer, data, cfg: StudyConfig, *, seed: int, temperature: float,
            max_prompt_length: int, max_length: int, template: str, pairs=None,
            sft_pair_logps: Callable | None = None) -> dict[str, Any]:
    """Every metric of one cell (module docstring) for ``policy_lm`` against ``sft_lm``; ``pairs`` is
    :func:`eval_pairs`'s result (computed when None); ``sft_pair_logps(tokenised pairs) -> (N, 2)`` may serve the
    SFT log-probs of the pairs from a cache (default: computed with ``sft_lm``). Returns the cell's result mapping
    (without settings)."""
    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.generation import generate

    tb = data.testbed
    _, held = data.sft_rows()
    prompts = list(held["prompt"][: cfg.n_prompts])
    gkw = dict(max_new_tokens=cfg.max_new_tokens, max_prompt_length=max_prompt_length, batch_size=cfg.batch_size,
               progress=False)
    greedy = [g["response"] for g in generate(policy_lm, tokenizer, prompts, temperature=0.0, seed=seed, **gkw)]
    sample = [g["response"] for g in generate(policy_lm, tokenizer, prompts, temperature=cfg.sample_temperature,
                                              top_p=cfg.top_p, seed=seed, **gkw)]
    r_greedy, r_sample = tb.true_rewards(prompts, greedy), tb.true_rewards(prompts, sample)
    skw = dict(max_new_tokens=cfg.max_new_tokens, max_prompt_length=max_prompt_length, batch_size=cfg.batch_size)
    anc = ancestral_samples(policy_lm, sft_lm, tokenizer, prompts, seed=seed + 7, **skw)
    kl_h = anc["logp"] - anc["logp_ref"]

    rows, tprompts, pref_sets, p_star, tie = pairs if pairs is not None else eval_pairs(data, cfg, seed, temperature)
    tanc = ancestral_samples(policy_lm, sft_lm, tokenizer, tprompts, seed=seed + 11, **skw)
    never = never_preferred(tanc["texts"], pref_sets)
    tok, _ = tokenize_preference_dataset(rows, tokenizer, max_prompt_length=max_prompt_length, max_length=max_length,
                                         template=template)
    if len(tok) != len(rows):
        raise ValueError(f"study: {len(rows) - len(tok)} evaluation pairs exceed the length limits")
    z = _pair_logps(policy_lm, tok, tokenizer.pad_token_id, cfg.batch_size)
    z0 = sft_pair_logps(tok) if sft_pair_logps is not None else _pair_logps(sft_lm, tok, tokenizer.pad_token_id,
                                                                             cfg.batch_size)
    d_w, d_l = z[:, 0] - z0[:, 0], z[:, 1] - z0[:, 1]
    margin_growth = (z[:, 0] - z[:, 1]) - (z0[:, 0] - z0[:, 1])
    # exact mass on the responses ever seen as preferred, per training prompt
    lp_by_prompt: dict[str, dict[str, float]] = {}
    for p, c, r, zc, zr in zip(rows["prompt"], rows["chosen"], rows["rejected"], z[:, 0], z[:, 1]):
        d = lp_by_prompt.setdefault(p, {})
        d[_norm(c)], d[_norm(r)] = float(zc), float(zr)
    mass = np.array([preferred_mass(lp_by_prompt.get(p, {}), s) for p, s in zip(tprompts, pref_sets)])
    with np.errstate(divide="ignore"):
        log_mass = np.log(np.maximum(mass, 1e-300))
    edges = np.asarray(cfg.p_star_bins, dtype=float)
    which = np.clip(np.searchsorted(edges, p_star, side="right") - 1, 0, len(edges) - 2)
    bins = []
    for b in range(len(edges) - 1):
        m = which == b
        if m.any():
            bins.append({"p_low": float(edges[b]), "p_high": float(edges[b + 1]), "n": int(m.sum()),
                         "logp_w": float(z[m, 0].mean()), "logp_l": float(z[m, 1].mean()),
                         "dlogp_w": float(d_w[m].mean()), "dlogp_l": float(d_l[m].mean()),
                         "margin_growth": float(margin_growth[m].mean())})
    rnd = lambda a: [round(float(x), 5) for x in a]  # noqa: E731
    metrics = {
        "gold_greedy": float(r_greedy.mean()), "gold_sample": float(r_sample.mean()),
        "kl": float(kl_h.mean()), "entropy": float(-anc["logp"].mean()),
        "kl_train": float((tanc["logp"] - tanc["logp_ref"]).mean()), "entropy_train": float(-tanc["logp"].mean()),
        "greedy_words": float(np.mean([len(s.split()) for s in greedy])),
        "never_preferred_share": float(never.mean()), "preferred_mass": float(mass.mean()),
        "log_preferred_mass": float(log_mass.mean()),
        "dlogp_w": float(d_w.mean()), "dlogp_l": float(d_l.mean()), "margin_growth": float(margin_growth.mean()),
        "tie_margin_growth": float(margin_growth[tie].mean()) if tie.any() else float("nan"),
        "n_tie_pairs": int(tie.sum()), "n_eval_pairs": int(len(rows)),
        "heldout_prompts": hashlib.sha256("\0".join(prompts).encode()).hexdigest()[:12],
    }
    return {"metrics": metrics, "p_star_bins": bins,
            "per_prompt": {"r_greedy": rnd(r_greedy), "r_sample": rnd(r_sample), "kl": rnd(kl_h),
                           "never_preferred": rnd(never), "log_preferred_mass": rnd(log_mass)},
            "per_pair": {"dlogp_w": rnd(d_w), "dlogp_l": rnd(d_l), "p_star": rnd(p_star),
                         "tie_margin_growth": rnd(margin_growth[tie])},
            "examples": [{"prompt_end": p[-60:], "greedy": g} for p, g in zip(prompts[:3], greedy[:3])]}


def run_cell(run, cfg: StudyConfig, cell: Cell, *, progress: bool = False) -> dict[str, Any]:
    """Train (unless ``sft``) and measure one cell; returns its result (the runner caches it).

    Beside :func:`measure`'s metrics a record holds ``flip_rate`` (:func:`label_flip_rate` of its training pairs;
    also in ``metrics``), ``checkpoints`` (:func:`frontier_point` at ``checkpoint_steps``; for the ``sft`` cell the
    single point at step 0, KL 0), and for a trained cell ``training`` (:func:`training_summary`), ``metrics.eps``
    (the ε a cDPO / rDPO cell used) and, for DRDO, ``reward_fit`` (the student's fit as a reward model on
    ``fit_pairs`` held-out pairs, :func:`drdo_lib.policy.heldout_reward_fit`; its values also in ``metrics`` as
    ``fit_*``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from drdo_lib import policy
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.generation import load_policy
    from drdo_lib.hf import resolve_device

    t0 = time.perf_counter()
    drun = data_run(run, cfg, cell.noise, cell.seed)
    srun = sft_run(run, cfg, cell.noise, cell.seed)
    sft_dir = ensure_sft(run, cfg, cell.noise, cell.seed)
    if cell.oracle == "trained":
        ensure_oracle(run, cfg, cell.noise, cell.seed, ensemble=cell.method == "edpo")
    data = data_stage.load(drun)
    temperature = _data_cfg(drun.profile).synthetic_config(cell.seed).temperature  # the level's BT temperature
    dev = resolve_device("auto")
    tok = AutoTokenizer.from_pretrained(sft_dir)
    sft_lm = AutoModelForCausalLM.from_pretrained(sft_dir, use_safetensors=True).to(dev).eval()
    pairs = eval_pairs(data, cfg, cell.seed, temperature)

    def sft_logps(tok_ds):  # the SFT log-probs of tokenised pairs, through the precompute row cache (shared)
        from drdo_lib.precompute import precompute_ref_logps

        ds = precompute_ref_logps(str(sft_dir), tok_ds, cache_dir=drun.stage_dir("precompute"),
                                  batch_size=cfg.batch_size, pad_token_id=tok.pad_token_id, device=str(dev))
        return np.stack([np.asarray(ds["ref_chosen_logp"]), np.asarray(ds["ref_rejected_logp"])], 1)
    base_pcfg = drun.config(policy.PolicyConfig, "policy")
    rows_all = data.split(cfg.split).filter(lambda s: s in set(base_pcfg.row_splits), input_columns="split",
                                            desc="study: training rows")
    flips = label_flip_rate(data.testbed, rows_all)
    pcfg = _policy_config(run, cfg, cell, drun, srun, flip_rate=flips["flip_rate"]) if cell.variant != "sft" else \
        base_pcfg
    if tuple(pcfg.row_splits) != tuple(base_pcfg.row_splits):
        rows_all = data.split(cfg.split).filter(lambda s: s in set(pcfg.row_splits), input_columns="split",
                                                desc="study: training rows")
    _, held = data.sft_rows()
    ck_prompts = list(held["prompt"][: min(cfg.checkpoint_prompts, cfg.n_prompts)])

    def frontier(model):
        return frontier_point(model, sft_lm, tok, data.testbed, ck_prompts, cfg, seed=cell.seed,
                              max_prompt_length=pcfg.max_prompt_length)
    torch.manual_seed(cell.seed)
    curve: list = []
    train_seconds = 0.0
    out_dir = None
    extra: dict[str, Any] = {}
    if cell.variant == "sft":
        lm = sft_lm
        checkpoints = [{"step": 0, **frontier(sft_lm)}]
    else:
        # p* = ½ pairs measured during training (their SFT margins once)
        tie_rows = pairs[0].select([i for i, t in enumerate(pairs[4]) if t][: cfg.max_tie_pairs])
        tie_tok, _ = tokenize_preference_dataset(tie_rows, tok, max_prompt_length=pcfg.max_prompt_length,
                                                 max_length=pcfg.max_length, template=pcfg.template) \
            if len(tie_rows) else (tie_rows, {})
        ref = sft_logps(tie_tok) if len(tie_rows) else np.zeros((0, 2))
        cb = _TieMarginCallback(tie_tok, ref[:, 0] - ref[:, 1], cfg.margin_every, tok.pad_token_id)
        ck = _CheckpointCallback(cfg.checkpoint_steps, frontier)
        prof = {**drun.profile, "oracle": {**(drun.profile.get("oracle") or {}),
                                           "kind": cell.oracle if cell.oracle != "none" else "true_reward"}}
        crun = dataclasses.replace(drun, profile=prof)
        key = cell_key(run, cfg, cell)
        t1 = time.perf_counter()
        out_dir = policy.run(crun, pcfg, cell.method, f"study_{cell.variant}_{key[:10]}", rows=rows_all,
                             callbacks=[cb, ck], progress=progress)
        train_seconds = time.perf_counter() - t1
        curve = cb.curve
        checkpoints = ck.points
        extra["training"] = training_summary(out_dir)
        if cell.method == "drdo":
            from drdo_lib.models import CausalLMWithRewardHead

            student = CausalLMWithRewardHead.from_pretrained(out_dir / "final").to(dev) \
                if pcfg.student_reward == "head" else None
            lm, _ = load_policy(out_dir / "final", device=str(dev))
            extra["reward_fit"] = policy.heldout_reward_fit(crun, pcfg, student if student is not None else lm, tok,
                                                            cfg.split, max_pairs=cfg.fit_pairs)
        else:
            lm, _ = load_policy(out_dir / "final", device=str(dev))
    t2 = time.perf_counter()
    res = measure(lm, sft_lm, tok, data, cfg, seed=cell.seed, temperature=temperature,
                  max_prompt_length=pcfg.max_prompt_length, max_length=pcfg.max_length, template=pcfg.template,
                  pairs=pairs, sft_pair_logps=sft_logps)
    res["margin_curve"] = curve
    res["checkpoints"] = checkpoints
    res["flip_rate"] = flips
    res.update(extra)
    res["metrics"]["flip_rate"] = flips["flip_rate"]
    if cell.method in ("cdpo", "rdpo"):
        res["metrics"]["eps"] = pcfg.label_noise_eps
    for k, v in (extra.get("reward_fit") or {}).items():
        res["metrics"][f"fit_{k}"] = v
    for k, v in (extra.get("training") or {}).get("final", {}).items():
        if k.startswith("grad_norm_") and v is not None:
            res["metrics"][f"train_{k}"] = v
    res["metrics"].update(train_seconds=round(train_seconds, 2), measure_seconds=round(time.perf_counter() - t2, 2),
                          seconds=round(time.perf_counter() - t0, 2))
    if out_dir is not None and not cfg.keep_models:
        shutil.rmtree(out_dir, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------------------
def run(run_, cfg: StudyConfig | None = None, *, shard: tuple[int, int] | str | None = None,
        progress: bool = True) -> "Any":
    """Run (or read back) every cell of the grid (of one shard: ``(i, N)`` or ``"i/N"``); returns the results
    table (:func:`results_table`) of the cells this call covers. Finished cells are never recomputed."""
    from tqdm.auto import tqdm

    from drdo_lib.hf import progress_disabled_by_env, quiet_batch_progress

    quiet_batch_progress()

    cfg = cfg if cfg is not None else run_.config(StudyConfig, "study")
    shard = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    cells = expand_grid(cfg)
    if shard is not None:
        i, n = shard
        cells = [c for k, c in enumerate(cells) if k % n == i]
    if cfg.workers > 1 and shard is None:
        return results_table(run_parallel(run_, cfg, cells, progress=progress), cfg)
    out_dir = cells_dir(run_)
    done: list[dict] = []
    if cfg.gate != "off":
        for seed in sorted({c.seed for c in cells}):
            ensure_gate(run_, cfg, seed)
    bar = tqdm(cells, desc="study cells", disable=not progress or progress_disabled_by_env())
    n_new = 0
    for cell in bar:
        key = cell_key(run_, cfg, cell)
        bar.set_postfix_str(cell.name)
        rec = read_record(out_dir / f"{key}.json", key)
        if rec is not None:
            done.append(rec)
            continue
        done.append(run_and_store_cell(run_, cfg, cell))
        n_new += 1
    logger.info("study: %d cells (%d computed now, %d read back)", len(cells), n_new, len(cells) - n_new)
    return results_table(done, cfg)


def run_and_store_cell(run_, cfg: StudyConfig, cell: Cell) -> dict:
    """Compute one cell (:func:`run_cell`) and write its record ``runs/<profile>/study/cells/<key>.json``
    atomically and last (a cell is finished exactly when its JSON exists); returns the record."""
    key = cell_key(run_, cfg, cell)
    logger.info("study cell %s (%s)", cell.name, key)
    res = run_cell(run_, cfg, cell)
    rec = {"key": key, "cell": dataclasses.asdict(cell), "settings": cell_settings(run_, cfg, cell), **res}
    _write_json_atomic(cells_dir(run_) / f"{key}.json", rec)
    return rec


# ---------------------------------------------------------------------------------------------------------------
# The runner on several processes (study.workers > 1)
# ---------------------------------------------------------------------------------------------------------------
#: Start order among ready tasks: what unblocks most first.
_TASK_PRIORITY = {"sft": 0, "gate": 1, "oracle": 2, "ensemble": 2, "cell": 3}


def plan(run_, cfg: StudyConfig, cells: Sequence[Cell], gate_seeds: Sequence[int] = ()) -> dict:
    """The work of ``cells`` (the unfinished ones) as a :mod:`drdo_lib.taskgraph` graph, plus the gates of
    ``gate_seeds`` (a finished grid still records its gates):

    * ``sft``: the SFT policy of a (seed, SFT key) (:func:`ensure_sft`); everything of that seed needs it;
    * ``gate``: the sanity gate of a seed; under ``gate: require`` every cell of the seed waits for it;
    * ``oracle`` / ``ensemble``: the trained Oracle / e-DPO ensemble of a (noise level, seed), where a ``trained``
      cell needs them;
    * ``cell``: one cell (:func:`run_and_store_cell`).
    """
    from drdo_lib.taskgraph import Task

    tasks: dict = {}

    def add(name, kind, args, deps=()):
        if name not in tasks:
            tasks[name] = Task(name, kind, args, set(deps), priority=_TASK_PRIORITY[kind], order=len(tasks))
        return name

    def add_sft(noise, seed):
        return add(f"sft:{seed}:{sft_key(run_, cfg, noise, seed)}", "sft", (noise, seed))

    def add_gate(seed):
        return add(f"gate:{seed}", "gate", (seed,), {add_sft(0, seed)})

    if cfg.gate != "off":
        for seed in gate_seeds:
            add_gate(seed)
    for cell in cells:
        sft = add_sft(cell.noise, cell.seed)
        deps = {sft}
        if cfg.gate != "off":
            gate = add_gate(cell.seed)
            if cfg.gate == "require":
                deps.add(gate)
        if cell.oracle == "trained":
            deps.add(add(f"oracle:{cell.noise}:{cell.seed}", "oracle", (cell.noise, cell.seed), {sft}))
            if cell.method == "edpo":
                deps.add(add(f"ensemble:{cell.noise}:{cell.seed}", "ensemble", (cell.noise, cell.seed), {sft}))
        add(f"cell:{cell.name}", "cell", (cell,), deps)
    return tasks


_WORKER: dict[str, Any] = {}


def _init_worker(run_, cfg: StudyConfig, threads: int) -> None:
    """Per worker process: torch threads, quiet progress bars and logs, the run and the study settings."""
    os.environ.setdefault("DRDO_PROGRESS", "0")
    import torch

    from drdo_lib.hf import quiet_batch_progress

    torch.set_num_threads(max(1, int(threads)))
    quiet_batch_progress()
    logging.basicConfig(level=logging.WARNING)
    _WORKER.update(run=run_, cfg=cfg)


def _execute(kind: str, args: tuple) -> Any:
    """One task of :func:`plan` in a worker: the same cached builders as the serial runner."""
    run_, cfg = _WORKER["run"], _WORKER["cfg"]
    if kind == "sft":
        ensure_sft(run_, cfg, *args)
        return None
    if kind == "gate":
        return ensure_gate(run_, cfg, *args, raise_on_fail=False)
    if kind in ("oracle", "ensemble"):
        ensure_oracle(run_, cfg, *args, ensemble=kind == "ensemble", oracle=kind == "oracle")
        return None
    if kind == "cell":
        return run_and_store_cell(run_, cfg, args[0])
    raise ValueError(f"unknown study task kind {kind!r}")


def run_parallel(run_, cfg: StudyConfig, cells: Sequence[Cell], *, progress: bool = True,
                 executor=None) -> list[dict]:
    """Compute the unfinished ``cells`` on ``cfg.workers`` spawned processes (``cfg.threads_per_worker`` torch
    threads each; default cores // workers) through :func:`drdo_lib.taskgraph.run_graph`: SFT first, then gates
    and Oracles, then cells as their inputs are ready. Same builders, caches and keys as the serial runner, so an
    interrupted parallel study resumes like a serial one. Returns the records of every cell in ``cells``; raises
    GateFailed (``gate: require``) or a task's error once the tasks in flight are done. ``executor``: an open
    executor to use instead (tests pass a thread pool)."""
    from tqdm.auto import tqdm

    from drdo_lib import gate as gate_mod
    from drdo_lib.hf import progress_disabled_by_env
    from drdo_lib.taskgraph import run_graph

    out_dir = cells_dir(run_)
    keys = {c.name: cell_key(run_, cfg, c) for c in cells}
    paths = {c.name: out_dir / f"{keys[c.name]}.json" for c in cells}
    recs = {c.name: read_record(paths[c.name], keys[c.name]) for c in cells}
    todo = [c for c in cells if recs[c.name] is None]
    seeds = sorted({c.seed for c in cells})
    if not todo and executor is None:  # a finished grid: read it back here (and its cached gates), spawn nothing
        for seed in seeds if cfg.gate != "off" else ():
            ensure_gate(run_, cfg, seed)
        return [recs[c.name] for c in cells]
    tasks = plan(run_, cfg, todo, gate_seeds=seeds)
    threads = cfg.threads_per_worker or max(1, (os.cpu_count() or 1) // cfg.workers)
    logger.info("study: %d of %d cells to compute, %d tasks on %d workers x %d thread(s)", len(todo), len(cells),
                len(tasks), cfg.workers, threads)
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="study cells",
               disable=not progress or progress_disabled_by_env())

    def on_done(task, res):
        if task.kind == "gate" and cfg.gate == "require" and res and res.get("status") == "failed":
            return gate_mod.GateFailed(gate_failure_message(res))
        if task.kind == "cell":
            bar.set_postfix_str(task.args[0].name)
            bar.update(1)
        return None

    if executor is not None:
        _WORKER.update(run=run_, cfg=cfg)
    try:
        run_graph(tasks, _execute, workers=cfg.workers, initializer=_init_worker, initargs=(run_, cfg, threads),
                  on_done=on_done, executor=executor)
    finally:
        bar.close()
    recs = {c.name: recs[c.name] or read_record(paths[c.name], keys[c.name]) for c in cells}
    missing = [c.name for c in cells if recs[c.name] is None]
    if missing:
        raise RuntimeError(f"study: {len(missing)} cell(s) have no result after the parallel run: {missing[:3]}")
    return [recs[c.name] for c in cells]


def load_cells(run_, cfg: StudyConfig | None = None) -> tuple[list[dict], list[Cell]]:
    """``(finished cell records, missing cells)`` of the grid, read from ``runs/<profile>/study/cells/``."""
    cfg = cfg if cfg is not None else run_.config(StudyConfig, "study")
    out_dir = cells_dir(run_)
    recs, missing = [], []
    for cell in expand_grid(cfg):
        key = cell_key(run_, cfg, cell)
        rec = read_record(out_dir / f"{key}.json", key)
        if rec is not None:
            recs.append(rec)
        else:
            missing.append(cell)
    return recs, missing


def results_table(records: Sequence[Mapping], cfg: StudyConfig | None = None):
    """One row per cell: variant, label, method, noise level (index and name), oracle, seed, every scalar metric."""
    import pandas as pd

    rows = []
    for r in records:
        c = r["cell"]
        row = {"variant": c["variant"], "method": c["method"], "noise": c["noise"], "oracle": c["oracle"],
               "seed": c["seed"]}
        if cfg is not None:
            row["label"] = cfg.label(c["variant"])
            row["noise_name"] = cfg.noise_name(c["noise"]) if c["noise"] < len(cfg.noise_levels) else str(c["noise"])
        row.update(r["metrics"])
        row["key"] = r.get("key")
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# Testbed facts measured from each (noise level, seed)'s data
# ---------------------------------------------------------------------------------------------------------------
def testbed_facts(run_, cfg):
    """Per noise level and seed, :func:`drdo_lib.study_reading.label_facts` of the training pairs the cells learn from (split
    ``cfg.split``, rows of split ``train``; a pair labelled twice counts twice), read from that (level, seed)'s data
    artefact (built when missing: the data stage only, no training). Columns: ``noise, noise_name, seed,
    tie_fraction`` (the generator's setting), ``temperature, pairs, tied, flip, flip_expected, ceiling``."""
    import pandas as pd

    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.study_reading import label_facts

    rows = []
    for n in range(len(cfg.noise_levels)):
        for s in cfg.seeds:
            drun = data_run(run_, cfg, n, s)
            syn = _data_cfg(drun.profile).synthetic_config(s)
            data = data_stage.load(drun)
            prs = data.split(cfg.split).filter(lambda x: x == "train", input_columns="split",
                                               desc="study: testbed facts")
            prompts = list(prs["prompt"])
            f = label_facts(data.testbed.true_rewards(prompts, list(prs["chosen"])),
                            data.testbed.true_rewards(prompts, list(prs["rejected"])), syn.temperature)
            rows.append({"noise": n, "noise_name": cfg.noise_name(n), "seed": s, "tie_fraction": syn.tie_fraction,
                         "temperature": syn.temperature, **f})
    return pd.DataFrame(rows)



# ---------------------------------------------------------------------------------------------------------------
# Statistics and the reading (drdo_lib.stats, drdo_lib.study_reading)
# ---------------------------------------------------------------------------------------------------------------
def _index(records: Sequence[Mapping]) -> dict[tuple, Mapping]:
    return {(r["cell"]["variant"], r["cell"]["noise"], r["cell"]["oracle"], r["cell"]["seed"]): r for r in records}


def effect(values_by_seed: Mapping[int, Sequence[float]], *, level: float = 0.95, n_boot: int = 2000,
           seed: int = 0, interval: str = "wider") -> dict[str, Any]:
    """Mean of per-(seed, unit) values with seeds as the unit of replication: :func:`drdo_lib.stats.seed_effect`
    (the wider of a seed-level t interval and a hierarchical bootstrap by default), plus each seed's mean."""
    return seed_effect(values_by_seed, level=level, n_boot=n_boot, seed=seed, interval=interval)


def _paired(idx, cfg, variant, oracle, noise, field_, sub=None, *, kind="per_prompt"):
    """seed -> values of ``field_`` of (variant, oracle, noise) minus the SFT cell's (per prompt), or raw when
    ``sub`` is False."""
    from drdo_lib.study_reading import contrast

    terms = [(variant, oracle, noise, 1.0)] + ([] if sub is False else [("sft", "none", noise, -1.0)])
    return contrast([terms], field_, kind)(idx, cfg)


def summary_table(records: Sequence[Mapping], cfg: StudyConfig):
    """Per (variant, oracle, noise level): r* gain over SFT (greedy and sample) with seed-level intervals
    (:func:`effect`: seeds are the unit of replication) and every seed's greedy gain, KL, entropy, never-preferred
    share minus SFT, tie-pair margin growth, Δlog π(y_l); seeds = cells found; the ``_seeds_*`` columns hold each
    seed's estimate (for the figures, not the tables)."""
    import pandas as pd

    idx = _index(records)
    kw = dict(level=cfg.level, n_boot=cfg.n_bootstrap, interval=cfg.interval)
    order = [*cfg.selected, "sft"]
    combos = sorted({(r["cell"]["variant"], r["cell"]["oracle"]) for r in records},
                    key=lambda t: (order.index(t[0]) if t[0] in order else 99, t[1]))
    rows = []
    for v, o in combos:
        for n in range(len(cfg.noise_levels)):
            found = [s for s in cfg.seeds if (v, n, o, s) in idx]
            if not found:
                continue
            g = effect(_paired(idx, cfg, v, o, n, "r_greedy"), **kw)
            smp = effect(_paired(idx, cfg, v, o, n, "r_sample"), **kw)
            nev = effect(_paired(idx, cfg, v, o, n, "never_preferred"), **kw)
            lpm = effect(_paired(idx, cfg, v, o, n, "log_preferred_mass"), **kw)
            m = lambda k: float(np.mean([idx[(v, n, o, s)]["metrics"][k] for s in found]))  # noqa: E731
            rows.append({"method": cfg.label(v), "variant": v, "oracle": o, "noise": cfg.noise_name(n),
                         "seeds": len(found), "r*_greedy": m("gold_greedy"),
                         "Δr*_greedy vs SFT": g["effect"], "Δ greedy low": g["ci_low"],
                         "Δ greedy high": g["ci_high"],
                         "Δ greedy per seed": " / ".join(f"{x:+.3f}" for _, x in sorted(g["per_seed"].items())),
                         "Δr*_sample vs SFT": smp["effect"], "Δ sample low": smp["ci_low"],
                         "Δ sample high": smp["ci_high"], "KL(π‖SFT)": m("kl"), "entropy": m("entropy"),
                         "never-preferred − SFT": nev["effect"], "Δlog π(W(x))": lpm["effect"],
                         "tie margin growth": m("tie_margin_growth"),
                         "Δlog π(y_w)": m("dlogp_w"), "Δlog π(y_l)": m("dlogp_l"), "s/cell": m("seconds"),
                         # per-seed estimates for the figure's dots (not written to the tables)
                         "_seeds_greedy": g["per_seed"], "_seeds_sample": smp["per_seed"]})
    return pd.DataFrame(rows)


def pstar_table(records: Sequence[Mapping], cfg: StudyConfig):
    """Long table of the p* bins: variant, oracle, noise, seed, bin, n, log π(y_w), log π(y_l) and their changes."""
    import pandas as pd

    rows = []
    for r in records:
        c = r["cell"]
        for b in r.get("p_star_bins", []):
            rows.append({"variant": c["variant"], "label": cfg.label(c["variant"]), "oracle": c["oracle"],
                         "noise": c["noise"], "seed": c["seed"], **b})
    return pd.DataFrame(rows)


def report(run_, cfg: StudyConfig | None = None, *, records: Sequence[Mapping] | None = None) -> dict[str, Any]:
    """Figures and tables of the finished cells under ``figures/<profile>/`` (``study_*``), the testbed facts
    measured from each (noise level, seed)'s data (``study_testbed``: :func:`testbed_facts`)
    and the reading (``study_reading.md``, ``study_reading_table``); returns ``{"summary", "reading", "missing",
    "files", "gates", "testbed"}``."""
    from drdo_lib import study_reading
    from drdo_lib.plots import study as study_plots
    from drdo_lib.tables import write_table

    cfg = cfg if cfg is not None else run_.config(StudyConfig, "study")
    missing: list[Cell] = []
    if records is None:
        records, missing = load_cells(run_, cfg)
    gates: dict[int, dict] = {}
    if cfg.gate != "off":
        for s in cfg.seeds:
            marker = sft_run(run_, cfg, 0, s).dir / "gate" / "study_key.json"
            if marker.exists():
                gates[s] = json.loads(marker.read_text()).get("value") or {}
    fig_dir = run_.figures
    files: list[Path] = []
    summ = summary_table(records, cfg)
    files += write_table(summ.drop(columns=[c for c in summ if c.startswith("_")]), fig_dir / "study_summary",
                         index=False)
    files += write_table(results_table(records, cfg).drop(columns=["key"], errors="ignore"), fig_dir / "study_cells",
                         index=False)
    files += write_table(pstar_table(records, cfg), fig_dir / "study_pstar_bins", index=False)
    facts = testbed_facts(run_, cfg)
    files += write_table(facts, fig_dir / "study_testbed", index=False)
    rd = reading(records, cfg, gate_results=list(gates.values()))
    files += write_table(study_reading.reading_table(rd), fig_dir / "study_reading_table", index=False)
    header = (f"Profile `{run_.name}`: {len(records)} finished cells" + (f", {len(missing)} missing" if missing
                                                                         else "")
              + f"; seeds {list(cfg.seeds)}; noise levels (generator settings) "
              + "; ".join(cfg.noise_name(i) for i in range(len(cfg.noise_levels))) + ".")
    seed_lines = study_reading.seed_notes(cfg, {s: sft_history(run_, cfg, s) for s in cfg.seeds}, gates, records)
    (fig_dir / "study_reading.md").write_text(study_reading.reading_markdown(
        "Does DRDO's claim hold? (the robustness study's reading)", header, rd, cfg, seed_lines=seed_lines,
        facts=facts))
    files.append(fig_dir / "study_reading.md")
    files += study_plots.plot_all(records, cfg, fig_dir, summary=summ)
    return {"summary": summ, "reading": rd, "missing": missing, "files": files, "gates": list(gates.values()),
            "testbed": facts}
