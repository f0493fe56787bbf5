"""The policy stage (notebook 04): :class:`PolicyConfig`, the training pairs with their precomputed columns, and
:func:`run`, which trains one student (DRDO, DPO, IPO, e-DPO, cDPO, rDPO or Dr. DPO) with :class:`drdo_lib.trainer.PreferenceTrainer`.

::

    from drdo_lib import policy
    from drdo_lib.run import Run
    run = Run.create("mini")
    out = policy.run(run, method="drdo", split="D_all")     # runs/mini/policy/drdo_D_all/
    dirs = policy.run_grid(run)                             # every policy.methods x policy.splits

What a run reads: the data stage's split (:func:`drdo_lib.data.pipeline.load`), the SFT policy (initial and
reference policy), the Oracle and the e-DPO ensemble (their outputs precomputed into dataset columns by
:mod:`drdo_lib.precompute`, cached under ``runs/<profile>/precompute/``). What it writes, under
``runs/<profile>/policy/<method>_<split>/``: ``final/`` (model + tokenizer, safetensors), ``metrics.jsonl`` (one
line per logging step), ``summary.json``, ``config.json`` and checkpoints.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import transformers

from drdo_lib import provenance
from drdo_lib import losses as L
from drdo_lib.config import ConfigError, fresh_attempt_dir, promote_attempt, save_config, write_text_atomic
from drdo_lib.data.splits import SPLIT_NAMES
from drdo_lib.hf import read_metrics, training_arguments, training_checks
from drdo_lib.run import MissingStageOutput
from drdo_lib.trainer import METHODS, PreferenceTrainer

logger = logging.getLogger(__name__)

__all__ = ["PolicyConfig", "run", "run_grid", "prepare_dataset", "training_args", "model_paths", "order_by_oracle", "load_run",
           "standardize_oracle_rewards", "fit_student_head", "oracle_pair_rewards", "heldout_reward_fit",
           "final_metrics_table", "true_reward_table", "STUDENT_REWARDS", "LABEL_SOURCES"]

STUDENT_REWARDS = ("head", "logprob")
STUDENT_HEAD_INITS = ("random", "zero", "fit")
LABEL_SOURCES = ("human", "oracle")
#: Final metrics shown in notebook 04's summary table (metrics.jsonl keys).
SUMMARY_METRICS = ("loss", "bt_accuracy", "oracle_reward_advantage", "logps_chosen", "logps_rejected", "p_w",
                   "grad_norm")


@dataclass(frozen=True)
class PolicyConfig:
    """Settings of the preference-training stage (profile section ``policy``); defaults follow the paper's Table 6."""

    methods: tuple[str, ...] = ("drdo", "dpo", "edpo")  # methods notebook 04 / run_all.sh trains, each of METHODS
    splits: tuple[str, ...] = ("D_all", "D_hc_he", "D_lc_le")  # data splits to train on (names from drdo_lib.data)
    row_splits: tuple[str, ...] = ("train",)  # train on rows whose `split` column is one of these (sample: valid*)
    init_model: str | None = None  # initial policy = reference policy (dir or hub id); None: runs/<profile>/sft/final
    oracle_model: str | None = None  # oracle dir for precomputed rewards; None: runs/<profile>/oracle/final
    ensemble_models: tuple[str, ...] | None = None  # e-DPO reward models; None: runs/<profile>/ensemble/member_*
    beta: float = 0.1  # DPO/IPO/e-DPO β (paper 0.1, swept {0.1, 0.5, 1, 10}); DRDO student_reward="logprob": r̂ = β·z
    alpha: float = 0.1  # DRDO focal weight α (Eq. 6; paper 0.1, swept {0.1, 1})
    gamma: float = 2.0  # DRDO focal exponent γ (Eq. 6; paper 2, swept {0, 1, 2, 5})
    edpo_reduction: str = "pessimistic"  # e-DPO over K members: pessimistic (Fisch et al.) | min (optimistic) | mean | max
    edpo_kl_coef: float = L.EDPO_KL_COEF  # weight of the forward KL(π_ref‖π) in the pessimistic e-DPO objective (ours)
    label_noise_eps: float = 0.1  # cDPO / rDPO: assumed label flip rate ε (cDPO [0, 0.5], rDPO [0, 0.5)); the study
    #   sets it per noise level to the testbed's measured flip rate, or keeps this fixed (misspecified) value
    drdpo_beta: float = 1.0  # Dr. DPO: β′ of −β′ log mean exp(−ℓ_DPO/β′) (Wu et al.'s example: 1; ∞ is DPO)
    student_reward: str = "head"  # DRDO r̂: "head" (linear reward head on the student) | "logprob" (r̂ = β·z)
    student_head_seed: int = 0  # seed of the student's reward-head initialisation (student_reward="head")
    student_head_init: str = "fit"  # student reward head: fit (the default, chosen by evidence, README "Choices made
    #   by evidence": a head warm-up on the frozen initial policy, solved exactly: ridge regression of the Oracle's
    #   reward differences on the last-token features of the training pairs; fit_student_head) | zero (r̂ = 0 at
    #   start: the head barely moves at the LM's lr) | random (N(0, 1/(H+1)), head_seed: its regression swamps the LM)
    head_learning_rate: float | None = None  # peak lr of the student's reward head (its own optimizer param group,
    #   same schedule); None: learning_rate. The LM keeps learning_rate
    head_fit_ridge: float = 1e-3  # student_head_init=fit: ridge penalty, relative to the features' mean square
    standardize_oracle: bool = True  # DRDO: divide the Oracle's rewards by the sd of their pair differences on the
    #   training pairs (the regression target then has sd 1; signs, orderings and correlations unchanged)
    logp_reduction: str = "sum"  # z = sum (paper notation) | mean of response-token log-probs
    label_source: str = "human"  # which response is y_w: "human" labels | "oracle" (order by precomputed r*)
    template: str = "tldr"  # prompt template used to tokenise pairs (same as the SFT stage): tldr | chat | raw
    max_prompt_length: int = 512  # prompts longer than this (tokens) are dropped and counted
    max_length: int = 1024  # prompt + response longer than this are dropped and counted
    max_train_rows: int | None = None  # keep at most this many training pairs (None: all)
    learning_rate: float = 5e-6  # peak learning rate
    lr_scheduler_type: str = "cosine"  # transformers scheduler name
    warmup_steps: float = 0.0  # warm-up steps (>= 1) or fraction of training (< 1)
    weight_decay: float = 0.05  # decoupled weight decay
    optim: str = "paged_adamw_32bit"  # transformers optimizer; paged_* falls back to adamw_torch without bitsandbytes/CUDA
    max_grad_norm: float = 1.0  # gradient clipping (the logged grad_norm is the pre-clip norm)
    per_device_train_batch_size: int = 12  # pairs per device per micro-batch
    gradient_accumulation_steps: int = 4  # micro-batches per optimizer step (paper: 12 x 4 ... = 64 effective)
    max_steps: int = 1000  # optimizer steps (> 0); the paper trains 1k steps
    logging_steps: int = 10  # log metrics (metrics.jsonl) every this many steps
    report_to: str = "none"  # experiment tracking of the Trainer: none | tensorboard | wandb | all (TensorBoard: event files under <stage folder>/runs/)
    save_steps: int = 500  # checkpoint every this many steps
    save_total_limit: int | None = 2  # keep this many checkpoints (None: all)
    gradient_checkpointing: bool = False  # activation checkpointing on the student LM (use_reentrant=False)
    bf16: str | bool = "auto"  # bfloat16 autocast: "auto" = on when a CUDA GPU supports it; True/False forces
    deepspeed: str | None = None  # DeepSpeed JSON (e.g. configs/deepspeed_zero2.json); None: plain DDP / single device
    disable_dropout: bool = True  # zero every dropout in the student (as TRL's DPO does); keeps runs deterministic
    precompute_batch_size: int = 32  # batch size of the (cached) reference / oracle precompute passes
    resume_from_checkpoint: str | None = None  # "last" (latest checkpoint in the run dir), a checkpoint dir, or None

    def __post_init__(self) -> None:
        # YAML gives lists; store tuples so the frozen config stays hashable.
        for name in ("methods", "splits", "row_splits", "ensemble_models"):
            v = getattr(self, name)
            if isinstance(v, (list, str)):
                object.__setattr__(self, name, tuple([v] if isinstance(v, str) else v))
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"policy.methods must be a non-empty subset of {METHODS}, got {self.methods}")
        if not self.splits or not self.row_splits:
            raise ValueError("policy.splits and policy.row_splits must name at least one split each")
        checks = training_checks(self) + [
            (self.student_reward in STUDENT_REWARDS, f"student_reward must be one of {STUDENT_REWARDS}"),
            (self.label_source in LABEL_SOURCES, f"label_source must be one of {LABEL_SOURCES}"),
            (self.logp_reduction in L.LOGP_REDUCTIONS, f"logp_reduction must be one of {L.LOGP_REDUCTIONS}"),
            (self.edpo_reduction in L.EDPO_REDUCTIONS, f"edpo_reduction must be one of {L.EDPO_REDUCTIONS}"),
            (self.edpo_kl_coef >= 0, "edpo_kl_coef must be >= 0"),
            (0.0 <= self.label_noise_eps < 0.5, "label_noise_eps must be in [0, 0.5) (the flip rate cDPO/rDPO assume)"),
            (self.drdpo_beta > 0, "drdpo_beta must be > 0"),
            (self.head_learning_rate is None or self.head_learning_rate > 0, "head_learning_rate must be > 0 or null"),
            (self.head_fit_ridge >= 0, "head_fit_ridge must be >= 0"),
            (isinstance(self.standardize_oracle, bool), "standardize_oracle must be true or false"),
            (self.student_head_init in STUDENT_HEAD_INITS, f"student_head_init must be one of {STUDENT_HEAD_INITS}"),
            (self.beta > 0, "beta must be > 0"),
            (self.alpha >= 0 and self.gamma >= 0, "alpha and gamma must be >= 0"),
            (self.max_steps > 0, "max_steps must be > 0"),
            (self.save_steps > 0, "save_steps must be > 0"),
            (self.save_total_limit is None or self.save_total_limit > 0, "save_total_limit must be > 0 or null"),
            (self.precompute_batch_size > 0, "precompute_batch_size must be > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"PolicyConfig: {msg}")

    @property
    def needs_ref_logps(self) -> bool:
        """True when some configured method needs reference log-probs (DPO/IPO/e-DPO)."""
        return any(m != "drdo" for m in self.methods)



def order_by_oracle(ds):
    """``label_source="oracle"``: make ``y_w`` the response with the higher precomputed oracle reward.

    Every ``*chosen*`` column is swapped with its ``*rejected*`` partner (texts, token ids, masks, reference
    log-probs, oracle and ensemble rewards) on the rows where ``oracle_rejected_reward > oracle_chosen_reward``; the
    number of swapped rows is logged. Ties keep the human order.
    """
    if "oracle_chosen_reward" not in ds.column_names:
        raise ValueError("label_source='oracle' needs the precomputed oracle_chosen_reward/oracle_rejected_reward columns")
    pairs = [(c, c.replace("chosen", "rejected")) for c in ds.column_names if "chosen" in c]
    pairs = [(a, b) for a, b in pairs if b in ds.column_names]

    def swap(batch):
        flip = [r > c for c, r in zip(batch["oracle_chosen_reward"], batch["oracle_rejected_reward"])]
        for a, b in pairs:
            xa, xb = batch[a], batch[b]
            batch[a] = [vb if f else va for va, vb, f in zip(xa, xb, flip)]
            batch[b] = [va if f else vb for va, vb, f in zip(xa, xb, flip)]
        return batch

    n = sum(r > c for c, r in zip(ds["oracle_chosen_reward"], ds["oracle_rejected_reward"]))
    logger.info("label_source=oracle: %d of %d pairs reordered by the oracle's rewards", n, len(ds))
    return ds.map(swap, batched=True, desc="Ordering pairs by oracle reward")




def training_args(cfg: PolicyConfig, output_dir: str | Path, seed: int, *, progress: bool = True, **overrides: Any):
    """``TrainingArguments`` of a policy run: :func:`drdo_lib.hf.training_arguments` plus checkpoints every
    ``save_steps`` (at most ``save_total_limit`` kept) and every dataset column kept (the precomputed ones)."""
    kw = dict(save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
              remove_unused_columns=False, dataloader_pin_memory=True)
    kw.update(overrides)
    return training_arguments(cfg, output_dir, seed, progress=progress, **kw)


def oracle_config(run):
    """The run's ``oracle`` section (what kind of Oracle the policies distil)."""
    from drdo_lib.oracle import OracleConfig

    return run.config(OracleConfig, "oracle")


def add_function_rewards(run, ocfg, ds, *, ensemble: bool = False):
    """Oracle (and, with ``ensemble``, e-DPO ensemble) reward columns from the testbed's true reward
    (``oracle.kind`` true_reward | noisy_true_reward; :func:`drdo_lib.oracle.true_reward_oracle`). The ensemble
    has ``oracle.ensemble_size`` members, each with its own noise (identical members for the exact r*)."""
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.oracle import true_reward_oracle
    from drdo_lib.precompute import _set_column

    testbed = data_stage.load(run).testbed
    prompts, chosen, rejected = list(ds["prompt"]), list(ds["chosen"]), list(ds["rejected"])
    fn = true_reward_oracle(ocfg, testbed, seed=run.seed)
    ds = _set_column(ds, "oracle_chosen_reward", fn(prompts, chosen).tolist())
    ds = _set_column(ds, "oracle_rejected_reward", fn(prompts, rejected).tolist())
    if ensemble:
        import numpy as np

        k = max(ocfg.ensemble_size, 1)
        fns = [true_reward_oracle(ocfg, testbed, seed=run.seed, member=m) for m in range(k)]
        ds = _set_column(ds, "ensemble_chosen_rewards", np.stack([f(prompts, chosen) for f in fns], 1).tolist())
        ds = _set_column(ds, "ensemble_rejected_rewards", np.stack([f(prompts, rejected) for f in fns], 1).tolist())
    logger.info("oracle.kind=%s: reward columns from the testbed's r* (%d pairs)", ocfg.kind, len(ds))
    return ds


#: (run directory, initial policy) pairs already warned about (``warn_if_mean_meets_pretrained``): once per run.
_MEAN_WARNED: set[tuple[str, str]] = set()


def sft_base_model(run, init: str | Path, init_model_setting: str | None) -> str:
    """What the initial policy ``init`` was fine-tuned from: the ``model_name_or_path`` of the SFT stage's
    ``config.json`` beside it (``runs/<profile>/sft/config.json`` for ``runs/<profile>/sft/final``); else, when
    ``policy.init_model`` is unset (the run's own SFT policy), the run's ``sft.model_name_or_path``; else ``init``
    itself (a hub id or a folder of unknown origin)."""
    beside = Path(init).parent / "config.json"
    if Path(init).is_dir() and beside.is_file():
        try:
            name = json.loads(beside.read_text()).get("model_name_or_path")
        except (OSError, ValueError):
            name = None
        if name:
            return str(name)
    if init_model_setting is None:
        return str(run.section("sft").get("model_name_or_path", "tiny-gpt2"))  # SFTConfig's default: tiny-gpt2
    return str(init)


def is_pretrained_init(base_model: str) -> bool:
    """True unless the policy was trained from scratch by this project: its SFT started from one of the tiny-*
    configurations (:data:`drdo_lib.models.TINY_MODELS`). Any other origin (a hub id, a local folder whose SFT
    config is not beside it) counts as pretrained, so the rule errs on the side of warning."""
    from drdo_lib.models import TINY_MODELS

    return base_model not in TINY_MODELS


def warn_if_mean_meets_pretrained(run, cfg: PolicyConfig, method: str, init: str | Path) -> bool:
    """``logging.warning`` (once per run directory and initial policy) when DRDO trains with
    ``logp_reduction="mean"`` from a pretrained model: its per-token log-probs (−0.1…−0.2) put z near 0, where a
    descent step on the focal term lowers z_w and raises z_l (notebook 00, :func:`drdo_lib.theory.dropped_term_table`).
    Returns True when it warned."""
    if cfg.logp_reduction != "mean" or method != "drdo":
        return False
    base = sft_base_model(run, init, cfg.init_model)
    if not is_pretrained_init(base):
        return False
    key = (str(getattr(run, "dir", "")), str(init))
    if key in _MEAN_WARNED:
        return False
    _MEAN_WARNED.add(key)
    logger.warning(
        "logp_reduction='mean' with a pretrained initial policy (%s, fine-tuned from %s): per-token log-probs of a "
        "pretrained LM are about -0.1...-0.2, where a descent step on DRDO's focal term lowers log pi(y_w) and raises "
        "log pi(y_l) (notebook 00, 'The term App. A.5 drops'). Use logp_reduction='sum' unless you mean to study this.",
        init, base)
    return True


def model_paths(run, cfg: PolicyConfig) -> dict[str, Any]:
    """The initial/reference policy, Oracle and ensemble a policy run reads (settings, else the run's stages)."""
    from drdo_lib.models import resolve_model_name

    init = resolve_model_name(cfg.init_model) if cfg.init_model else str(run.sft_model)
    oracle = cfg.oracle_model or str(run.oracle_model)
    ensemble = list(cfg.ensemble_models) if cfg.ensemble_models is not None else [str(p) for p in run.ensemble_members()]
    return {"init": init, "oracle": oracle, "ensemble": ensemble}


def prepare_dataset(run, cfg: PolicyConfig, method: str, split: str, tokenizer, *, rows=None
                    ) -> tuple[Any, dict[str, Any]]:
    """Training pairs of ``split`` for ``method``: tokenised, with the precomputed (cached) columns it reads.

    ``rows`` (normalised preference rows, e.g. a hand-made ``datasets.Dataset``) replaces the run's data: they are
    used as the split as given. Otherwise the data stage's split is read (:func:`drdo_lib.data.pipeline.load`) and
    its rows whose ``split`` column is in ``cfg.row_splits`` kept. Reference log-probs (the initial policy) are
    always added (the BT implicit-reward metric needs them), oracle rewards when an oracle exists (required by DRDO
    and ``label_source="oracle"``), ensemble rewards for e-DPO. Returns ``(dataset, report)``.
    """
    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.precompute import precompute_ref_logps, precompute_rewards

    if rows is None:
        from drdo_lib.data import pipeline as data_stage

        keep = set(cfg.row_splits)
        rows = data_stage.load(run).split(split).filter(lambda s: s in keep, input_columns="split",
                                                        desc=f"{split}: training rows")
        if len(rows) == 0:
            raise ValueError(f"{split} has no rows with split in {sorted(keep)} (set policy.row_splits)")
    rows = rows.shuffle(seed=run.seed)
    if cfg.max_train_rows is not None and len(rows) > cfg.max_train_rows:
        rows = rows.select(range(cfg.max_train_rows))
    ds, counts = tokenize_preference_dataset(rows, tokenizer, max_prompt_length=cfg.max_prompt_length,
                                             max_length=cfg.max_length, template=cfg.template)
    if len(ds) == 0:
        raise ValueError(f"no {split} pairs left after the length filter: {counts}")
    paths = model_paths(run, cfg)
    kw = dict(cache_dir=run.stage_dir("precompute"), batch_size=cfg.precompute_batch_size,
              pad_token_id=tokenizer.pad_token_id)
    ds = precompute_ref_logps(paths["init"], ds, logp_reduction=cfg.logp_reduction, **kw)
    need_oracle = method == "drdo" or cfg.label_source == "oracle"
    ocfg = oracle_config(run)
    if ocfg.kind != "trained":  # the Oracle is the testbed's r* (exact or noisy): a function of the texts
        ds = add_function_rewards(run, ocfg, ds, ensemble=method == "edpo")
    else:
        if Path(paths["oracle"]).is_dir():
            ds = precompute_rewards(paths["oracle"], ds, column_prefix="oracle", **kw)
        elif need_oracle:
            raise FileNotFoundError(f"{method} (label_source={cfg.label_source}) needs an oracle at "
                                    f"{paths['oracle']}; train it first (notebook 03 / --stage oracle) or set "
                                    "policy.oracle_model")
        if method == "edpo":
            if not paths["ensemble"]:
                raise FileNotFoundError("e-DPO needs ensemble reward models (runs/<profile>/ensemble/member_*); train "
                                        "them first (notebook 03 / --stage ensemble) or set policy.ensemble_models")
            ds = precompute_rewards(paths["ensemble"], ds, column_prefix="ensemble", **kw)
    oracle_scale = None
    if method == "drdo" and cfg.standardize_oracle:
        ds, oracle_scale = standardize_oracle_rewards(ds)
    if cfg.label_source == "oracle":
        ds = order_by_oracle(ds)
    report = {"split": split, "method": method, "rows": counts, "train_pairs": len(ds), **paths}
    if oracle_scale is not None:
        report["oracle_scale"] = oracle_scale
    return ds, report


def standardize_oracle_rewards(ds) -> tuple[Any, float]:
    """``policy.standardize_oracle``: divide ``oracle_chosen_reward`` / ``oracle_rejected_reward`` by ``s``, the
    standard deviation of their differences over ``ds`` (the training pairs), so DRDO's regression target
    r*_w − r*_l has sd 1 whatever the Oracle's scale. Returns ``(dataset, s)``; ``s = 1`` when the differences are
    constant."""
    import numpy as np

    from drdo_lib.precompute import _set_column

    c = np.asarray(ds["oracle_chosen_reward"], dtype=float)
    r = np.asarray(ds["oracle_rejected_reward"], dtype=float)
    sd = float(np.std(c - r))
    scale = sd if np.isfinite(sd) and sd > 0 else 1.0
    ds = _set_column(ds, "oracle_chosen_reward", (c / scale).tolist())
    ds = _set_column(ds, "oracle_rejected_reward", (r / scale).tolist())
    logger.info("standardize_oracle: Oracle rewards divided by %.4g (sd of their differences on %d training pairs)",
                scale, len(ds))
    return ds, scale


def fit_student_head(model, ds, pad_token_id: int, *, ridge: float = 1e-3, batch_size: int = 64) -> dict[str, float]:
    """``student_head_init="fit"``: set the reward head of ``model`` (a ``CausalLMWithRewardHead``) to the ridge
    regression of the Oracle's reward differences ``d = r_O(y_w) − r_O(y_l)`` on the difference of the frozen
    model's last-token features ``x = φ(x, y_w) − φ(x, y_l)`` over the pairs of ``ds``: ``w = (XᵀX + λI)⁻¹ Xᵀd``
    with ``λ = ridge · mean(diag XᵀX)``, bias 0 (it cancels in every difference). This is the limit of a head
    warm-up on the frozen policy (the LM is not changed). Returns the fit's R² against the zero head
    (``1 − Σ(d − x·w)² / Σd²``: the share of the regression loss the fitted head removes; the differences need not
    have mean 0, so this, not the centred R², is the comparison that matters), its pairwise accuracy vs the Oracle on
    those pairs, and the feature count."""
    import numpy as np
    import torch

    from drdo_lib.data.tokenize import collate_preference
    from drdo_lib.reward_fit import pairwise_agreement

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    feats, targets = [], []
    with torch.no_grad():
        for i in range(0, len(ds), batch_size):
            b = collate_preference([ds[j] for j in range(i, min(i + batch_size, len(ds)))], pad_token_id)
            h = [model(input_ids=b[f"{s}_input_ids"].to(dev), attention_mask=b[f"{s}_attention_mask"].to(dev),
                       return_logits=False)["hidden_last"].float().cpu() for s in ("chosen", "rejected")]
            feats.append(h[0] - h[1])
            targets.append(b["oracle_chosen_reward"].double() - b["oracle_rejected_reward"].double())
    model.train(was_training)
    X, d = torch.cat(feats), torch.cat(targets)  # X in float32 (N × H), the normal equations in float64
    gram = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64)
    xtd = torch.zeros(X.shape[1], dtype=torch.float64)
    for k in range(0, len(X), 4096):
        xk = X[k:k + 4096].double()
        gram += xk.T @ xk
        xtd += xk.T @ d[k:k + 4096]
    lam = ridge * float(gram.diagonal().mean())
    w = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), xtd)
    head = model.reward_head
    with torch.no_grad():
        head.weight.copy_(w.to(head.weight.dtype).unsqueeze(0))
        head.bias.zero_()
    pred = torch.cat([X[k:k + 4096].double() @ w for k in range(0, len(X), 4096)]).numpy()
    dn = d.numpy()
    r2 = 1.0 - float(((dn - pred) ** 2).sum() / max((dn ** 2).sum(), 1e-300))  # against the zero head (r̂ ≡ 0)
    acc, _ = pairwise_agreement(pred, dn)
    logger.info("student head fitted on the frozen policy: %d pairs, R^2 %.3f, agreement with the Oracle %.3f",
                len(dn), r2, acc)
    return {"r2": r2, "acc_oracle": acc, "pairs": int(len(dn)), "features": int(X.shape[1])}


def oracle_pair_rewards(run, cfg: PolicyConfig, tok_ds, pad_token_id: int):
    """``(N, 2)`` array of the Oracle's rewards (chosen, rejected) on tokenised pairs, from the same source a DRDO
    run distils: the testbed's r* (exact or noisy) for a function Oracle, else the trained Oracle (cached
    precompute)."""
    import numpy as np

    from drdo_lib.precompute import precompute_rewards

    ocfg = oracle_config(run)
    if ocfg.kind != "trained":
        ds = add_function_rewards(run, ocfg, tok_ds)
    else:
        ds = precompute_rewards(model_paths(run, cfg)["oracle"], tok_ds, column_prefix="oracle",
                                cache_dir=run.stage_dir("precompute"), batch_size=cfg.precompute_batch_size,
                                pad_token_id=pad_token_id)
    return np.stack([np.asarray(ds["oracle_chosen_reward"], float), np.asarray(ds["oracle_rejected_reward"], float)], 1)


def heldout_reward_fit(run, cfg: PolicyConfig, model, tokenizer, split: str = "D_all", *, rows=None,
                       student_reward: str | None = None, max_pairs: int | None = None) -> dict[str, float]:
    """The student's fit as a reward model (:func:`drdo_lib.reward_fit.reward_fit`) on the *held-out* pairs of
    ``split`` (the data stage's validation rows; ``rows`` replaces them; at most ``max_pairs``): pairwise accuracy of
    r̂ against the labels, the run's Oracle and, on the synthetic testbed, r*; the Pearson correlation of r̂
    differences with the Oracle's; the Oracle's own accuracies beside. ``model`` is the trained student
    (a ``CausalLMWithRewardHead`` for ``student_reward="head"``, default ``cfg.student_reward``)."""
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.reward_fit import reward_fit, student_pair_rewards

    data = data_stage.load(run)
    if rows is None:
        _, rows = data.preference_pairs(split)
    if max_pairs is not None and len(rows) > max_pairs:
        rows = rows.select(range(max_pairs))
    tok_ds, _ = tokenize_preference_dataset(rows, tokenizer, max_prompt_length=cfg.max_prompt_length,
                                            max_length=cfg.max_length, template=cfg.template)
    pad = tokenizer.pad_token_id
    r_hat = student_pair_rewards(model, tok_ds, pad, student_reward=student_reward or cfg.student_reward,
                                 beta=cfg.beta, logp_reduction=cfg.logp_reduction,
                                 batch_size=cfg.precompute_batch_size)
    r_o = oracle_pair_rewards(run, cfg, tok_ds, pad)
    true_c = true_r = None
    if data.testbed is not None:
        prompts = list(tok_ds["prompt"])
        true_c = data.testbed.true_rewards(prompts, list(tok_ds["chosen"]))
        true_r = data.testbed.true_rewards(prompts, list(tok_ds["rejected"]))
    return reward_fit(r_hat[:, 0], r_hat[:, 1], r_o[:, 0], r_o[:, 1], true_c, true_r)


def checkpoint_step(ckpt: str | Path) -> int | None:
    """The ``global_step`` of a *complete* checkpoint folder (``trainer_state.json`` readable, model weights and
    optimizer state present: everything ``Trainer._save_checkpoint`` writes before the trainer state), else None."""
    ckpt = Path(ckpt)
    try:
        step = int(json.loads((ckpt / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    weights = any((ckpt / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json",
                                                  "adapter_model.safetensors"))
    optimizer = (ckpt / "optimizer.pt").is_file() or any(ckpt.glob("global_step*"))  # DeepSpeed keeps its own
    return step if weights and optimizer else None


def last_complete_checkpoint(out: str | Path, *, remove_partial: bool = False) -> str | None:
    """The newest complete ``checkpoint-N`` folder of ``out`` (see :func:`checkpoint_step`), or None. Newer partial
    folders (a job killed mid-save) are skipped with a warning and, with ``remove_partial``, deleted: the trainer's
    ``save_total_limit`` rotation keeps the highest-numbered folders and would otherwise delete the complete one."""
    import re
    import shutil

    found = sorted(((int(m.group(1)), p) for p in Path(out).glob("checkpoint-*")
                    if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))), reverse=True)
    for _, p in found:
        if checkpoint_step(p) is not None:
            return str(p)
        logger.warning("checkpoint %s is incomplete (killed mid-save?): %s", p,
                       "deleted; falling back to an older one" if remove_partial else "skipped")
        if remove_partial:
            shutil.rmtree(p, ignore_errors=True)
    return None


def run(run, cfg: PolicyConfig | None = None, method: str | None = None, split: str | None = None, *, rows=None,
        callbacks=None, progress: bool = True) -> Path:
    """Train one student (``method`` on ``split``; defaults: the first of ``cfg.methods`` / ``cfg.splits``) of
    ``run`` and return its directory ``runs/<profile>/policy/<method>_<split>/`` holding ``final/`` (model +
    tokenizer, safetensors), ``metrics.jsonl`` (one line per logging step), ``summary.json`` and the resolved
    ``config.json``.

    ``cfg`` defaults to the run's ``policy`` section. ``rows`` replaces the run's preference data (see
    :func:`prepare_dataset`). Works in one process and under ``torchrun`` / ``accelerate launch`` / ``deepspeed``
    (data preparation runs on the main process first; others read its cache).
    """
    import shutil

    cfg = cfg if cfg is not None else run.config(PolicyConfig, "policy")
    method = method or cfg.methods[0]
    split = split or cfg.splits[0]
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    if rows is None and split not in SPLIT_NAMES:  # checked before any folder is named after it
        raise ConfigError(f"unknown split {split!r}: one of {', '.join(SPLIT_NAMES)}")
    seed = run.seed
    paths = model_paths(run, cfg)
    # Every input is checked before anything is computed or a folder created (a missing stage is one clear error).
    run.require_model(paths["init"], "the SFT policy (initial and reference policy)", "sft (notebook 02)")
    if Path(paths["init"]).exists() and not (Path(paths["init"]) / "tokenizer_config.json").exists():
        raise MissingStageOutput(f"the SFT policy at {paths['init']} has no tokenizer: run the sft stage again")
    function_oracle = oracle_config(run).kind != "trained"
    if (method == "drdo" or cfg.label_source == "oracle") and not function_oracle:
        run.require_model(paths["oracle"], f"the Oracle ({method}, label_source={cfg.label_source})",
                          "oracle (notebook 03) or set policy.oracle_model")
    if method == "edpo" and not function_oracle:
        if not paths["ensemble"]:
            raise MissingStageOutput(f"e-DPO needs the reward ensemble under {run.dir / 'ensemble'}: run the ensemble "
                                     "stage (notebook 03 / --stage ensemble) or set policy.ensemble_models")
        for m in paths["ensemble"]:
            run.require_model(m, "an e-DPO ensemble member", "ensemble (notebook 03)")
    warn_if_mean_meets_pretrained(run, cfg, method, paths["init"])
    out = run.policy_dir(method, split)
    args = training_args(cfg, out, seed, progress=progress)
    resume = cfg.resume_from_checkpoint
    if resume == "last":  # the newest *complete* checkpoint (a kill mid-save leaves a partial folder)
        resume = last_complete_checkpoint(out, remove_partial=args.should_save)
        if resume is None:
            logger.warning("resume_from_checkpoint='last' but %s has no checkpoint (none complete): training from "
                           "scratch", out)
    start = checkpoint_step(resume) if resume else 0  # read now: save_total_limit may rotate it away while training
    if resume and start is None:
        raise MissingStageOutput(f"checkpoint {resume} is incomplete (no readable trainer_state.json, model weights "
                                 "or optimizer state)")
    finished = bool(resume) and start >= cfg.max_steps
    if finished and (out / "final").is_dir() and (out / "summary.json").is_file():
        logger.info("%s on %s already finished (%s at step %d >= max_steps %d, final/ saved): nothing to train",
                    method, split, resume, start, cfg.max_steps)
        return out
    # A new attempt at a finished run trains in out/.attempt/ and replaces the record only once it completes, so
    # a failed or killed rerun leaves the finished run's metrics, config, summary and final/ as they were.
    work = None
    if resume is None and ((out / "final").is_dir() or (out / "summary.json").is_file()):
        work = fresh_attempt_dir(out, clear=args.should_save)
        logger.info("%s on %s: %s holds a finished run; this attempt writes to %s until it completes", method,
                    split, out, work)
        args = training_args(cfg, work, seed, progress=progress)
    dest = work or out
    try:
        _train(run, cfg, method, split, seed, paths, args, dest, resume, start, finished, rows, callbacks, progress)
    except BaseException:
        if work is not None and args.should_save:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if work is not None and args.should_save:
        promote_attempt(work, out)
    return out


def _train(run, cfg: PolicyConfig, method: str, split: str, seed: int, paths: dict, args, out: Path, resume,
           start: int, finished: bool, rows, callbacks, progress: bool) -> None:
    """Train (or finish from its last checkpoint) one student into ``out`` (:func:`run`'s second half)."""
    import shutil
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from drdo_lib.models import CausalLMWithRewardHead, count_parameters

    transformers.set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(paths["init"])
    with args.main_process_first(desc="policy dataset"):
        ds, report = prepare_dataset(run, cfg, method, split, tokenizer, rows=rows)
    lm = AutoModelForCausalLM.from_pretrained(paths["init"], use_safetensors=True)
    if cfg.gradient_checkpointing:
        lm.config.use_cache = False
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    use_head = method == "drdo" and cfg.student_reward == "head"
    head_init = "zero" if cfg.student_head_init == "fit" else cfg.student_head_init
    model = (CausalLMWithRewardHead.from_causal_lm(lm, head_seed=cfg.student_head_seed, head_init=head_init)
             if use_head else lm)
    if use_head and cfg.student_head_init == "fit" and not resume:  # a resumed run loads its trained head
        report["head_fit"] = fit_student_head(model, ds, tokenizer.pad_token_id, ridge=cfg.head_fit_ridge,
                                              batch_size=cfg.precompute_batch_size)

    if resume is None and args.should_save:  # a fresh run: stale checkpoints of an earlier run would be resumed
        for old in out.glob("checkpoint-*"):
            shutil.rmtree(old)
    trainer = PreferenceTrainer(model, cfg, method, args=args, train_dataset=ds, pad_token_id=tokenizer.pad_token_id,
                                processing_class=tokenizer, callbacks=callbacks)
    if not progress:  # quiet: no progress bar and no printed log dicts (metrics.jsonl has them)
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    if args.should_save:
        save_config(cfg, out / "config.json")
    logger.info("%s on %s: %d pairs, %s parameters, %d steps", method, split, len(ds),
                f"{count_parameters(model):,}", cfg.max_steps)
    t0 = time.perf_counter()
    if finished:  # killed after its last checkpoint, before final/: save that checkpoint, train no extra step
        logger.info("%s at step %d >= max_steps %d: saving it as final/ without training", resume, start, cfg.max_steps)
        trainer._load_from_checkpoint(resume)
        trainer.state = transformers.TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    bad = [n for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()
           if not torch.isfinite(p.detach()).all()]
    if bad:  # never save a non-finite model
        raise FloatingPointError(f"{method} on {split}: {len(bad)} parameter tensor(s) are non-finite (NaN/inf) "
                                 f"after step {trainer.state.global_step} (first: {bad[0]}); final/ not written")
    if args.should_save:
        final = out / "final"
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(final)
        tokenizer.save_pretrained(final)
        logs = [r for r in trainer.state.log_history if "loss" in r and "step" in r]
        steps_run = max(trainer.state.global_step - start, 1)
        summary = {
            "method": method, "split": split, "profile": run.name, "seed": seed, "steps": trainer.state.global_step,
            "train_seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps_run, 4),
            "world_size": args.world_size, "device": str(args.device), "bf16": bool(args.bf16),
            "parameters": count_parameters(model), "final": logs[-1] if logs else {}, **report,
            "provenance": provenance.record(),
        }
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))


def run_grid(run_: Any, cfg: PolicyConfig | None = None, *, methods: Sequence[str] | None = None,
             splits: Sequence[str] | None = None, progress: bool = True) -> list[Path]:
    """Train every ``method`` on every ``split`` (defaults: ``cfg.methods`` × ``cfg.splits``); returns run dirs."""
    from tqdm.auto import tqdm

    cfg = cfg if cfg is not None else run_.config(PolicyConfig, "policy")
    grid = [(m, s) for s in (splits or cfg.splits) for m in (methods or cfg.methods)]
    out = []
    for method, split in tqdm(grid, desc="policy runs", disable=not progress):
        logger.info("training %s on %s", method, split)
        out.append(run(run_, cfg, method, split, progress=False))
    return out


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """``{"method", "split", "summary", "metrics", "final_dir"}`` of one policy run directory."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"method": summary["method"], "split": summary["split"], "summary": summary,
            "metrics": read_metrics(run_dir), "final_dir": run_dir / "final"}


def final_metrics_table(run_dirs: Sequence[str | Path], last_n: int = 3):
    """A DataFrame (index method, split) of the mean of the last ``last_n`` logged values of each summary metric,
    plus steps, pairs and seconds per step."""
    import pandas as pd

    recs = []
    for d in run_dirs:
        r = load_run(d)
        tail = r["metrics"][-last_n:]
        rec = {"method": r["method"], "split": r["split"], "steps": r["summary"]["steps"],
               "pairs": r["summary"]["train_pairs"], "s/step": r["summary"]["seconds_per_step"]}
        for k in SUMMARY_METRICS:
            vals = [x[k] for x in tail if k in x]
            rec[k] = sum(vals) / len(vals) if vals else float("nan")
        recs.append(rec)
    return pd.DataFrame(recs).set_index(["method", "split"])


def true_reward_table(run_dirs: Sequence[str | Path], sft_dir: str | Path, prompts: Sequence[str],
                      reward_fn: Callable[[Sequence[str], Sequence[str]], Sequence[float]], *,
                      max_new_tokens: int = 16, max_prompt_length: int = 512, seed: int = 0):
    """Mean reward (``reward_fn``, e.g. r*) of greedy samples of every policy and of the SFT policy on ``prompts``.

    Returns a DataFrame with columns ``policy, method, split, reward, reward_minus_sft, win_vs_sft`` (the fraction of
    prompts where the policy's sample scores higher than the SFT sample; ties count ½).
    """
    import numpy as np
    import pandas as pd
    from transformers import AutoTokenizer

    from drdo_lib.sft import true_reward_of_samples

    tok = AutoTokenizer.from_pretrained(str(sft_dir))
    kw = dict(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed, max_prompt_length=max_prompt_length)

    def scores(model_dir) -> np.ndarray:
        res = true_reward_of_samples(str(model_dir), tok, list(prompts), reward_fn, **kw)
        return np.asarray(res["rewards"], dtype=float)

    base = scores(sft_dir)
    recs = [{"policy": "sft", "method": "sft", "split": "-", "reward": base.mean(), "reward_minus_sft": 0.0,
             "win_vs_sft": 0.5}]
    for d in run_dirs:
        r_ = load_run(d)
        r = scores(r_["final_dir"])
        recs.append({"policy": f"{r_['method']}/{r_['split']}", "method": r_["method"], "split": r_["split"],
                     "reward": r.mean(), "reward_minus_sft": (r - base).mean(),
                     "win_vs_sft": float(np.mean((r > base) + 0.5 * (r == base)))})
    return pd.DataFrame(recs).set_index("policy")
