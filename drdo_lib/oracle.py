"""The Oracle reward model (paper Sec. 4, Eq. 5) and the e-DPO reward ensemble (Eq. 2).

Both are :class:`~drdo_lib.models.CausalLMWithRewardHead`: the SFT causal LM (its LM head kept) plus a linear head
read at the last real token of prompt + response. One forward of ``cat([chosen, rejected])`` gives the rewards
``r_w, r_l`` and the logits; the loss is :func:`drdo_lib.losses.oracle_loss`:

    L = (1 − α) · (−log σ(r_w − r_l)) + α · NLL(y_w | x)          α = 0.01 for the Oracle (Eq. 5)

where NLL is the mean per-token negative log-likelihood of the chosen response under the oracle's own LM head. The
e-DPO ensemble trains ``K = 3`` reward models with α = 0 (the plain Bradley–Terry loss, Eq. 2), identical except
for the random initialisation of the reward head (``ensemble_head_seeds``), as the paper describes.

Pairwise accuracy (the fraction of held-out pairs with ``r_w > r_l``) is measured before and after training and
written to ``metrics.json``; the training curve (loss, BT loss, NLL, batch accuracy, margin) to ``metrics.jsonl``.
Outputs: ``runs/<profile>/oracle/final/`` and ``runs/<profile>/ensemble/member_{k}/`` (safetensors + tokenizer;
``metrics.json`` beside them).
"""
from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from drdo_lib import provenance
from drdo_lib import losses as L
from drdo_lib.config import save_config
from drdo_lib.hf import MetricsJsonlCallback, drop_printed_logs, training_arguments, training_checks

logger = logging.getLogger(__name__)

__all__ = ["OracleConfig", "ORACLE_KINDS", "true_reward_oracle", "RewardModelTrainer", "run", "run_ensemble", "train_reward_model",
           "pairwise_accuracy", "reward_agreement"]


#: What the Oracle is (OracleConfig.kind): a trained reward model, or the testbed's true reward (exact or noisy).
ORACLE_KINDS = ("trained", "true_reward", "noisy_true_reward")


@dataclass(frozen=True)
class OracleConfig:
    """Settings of the Oracle and e-DPO ensemble stage (profile section ``oracle``); defaults from Table 6 / App. D."""

    kind: str = "trained"  # the Oracle the policies distil: trained (a reward model, Eq. 5) | true_reward (the
    #   testbed's r*: the paper's "converged Oracle") | noisy_true_reward (r* + N(0, noise_std²) per response)
    noise_std: float = 0.5  # noisy_true_reward: standard deviation of the per-response noise (r* units)
    init_model: str | None = None  # causal LM the reward models start from (dir or hub id); None: runs/<profile>/sft/final
    alpha: float = 0.01  # Eq. 5 weight of the chosen-response NLL (paper 0.01); the ensemble uses ensemble_alpha
    head_seed: int = 0  # seed of the Oracle's reward-head initialisation
    ensemble_size: int = 3  # K reward models for e-DPO (paper: 3)
    ensemble_alpha: float = 0.0  # α of the ensemble members (0: plain Bradley–Terry loss, Eq. 2)
    ensemble_head_seeds: tuple[int, ...] = (1, 2, 3)  # one head seed per member (len == ensemble_size)
    train_split: str = "D_all"  # which preference split's training pairs train the reward models
    template: str = "tldr"  # prompt template: tldr | chat | raw
    max_prompt_length: int = 512  # prompts longer than this (tokens) are dropped and counted
    max_length: int = 1024  # prompt + response + EOS longer than this are dropped and counted (paper: 1024)
    max_train_rows: int | None = None  # train on at most this many pairs (None: all)
    max_eval_rows: int | None = None  # held-out pairs for the pairwise accuracy (None: all validation pairs)
    ensemble_max_train_rows: int | None = None  # ensemble members train on at most this many pairs (None: max_train_rows)
    learning_rate: float = 1e-5  # peak learning rate (paper: 1e-5)
    lr_scheduler_type: str = "cosine"  # transformers scheduler name
    warmup_steps: float = 0.0  # warm-up steps (>= 1) or fraction of training (< 1)
    weight_decay: float = 0.0  # decoupled weight decay
    num_train_epochs: float = 1.0  # epochs over the training pairs (paper: 1)
    max_steps: int = -1  # optimizer steps; -1: num_train_epochs decides
    per_device_train_batch_size: int = 12  # pairs per device per micro-batch (paper: same as the policy, 12)
    gradient_accumulation_steps: int = 4  # micro-batches per optimizer step (paper: 4)
    per_device_eval_batch_size: int = 32  # pairs per batch when scoring held-out pairs and in the precompute
    optim: str = "adamw_torch"  # transformers optimizer; paged_* falls back to adamw_torch without CUDA+bnb
    max_grad_norm: float = 1.0  # gradient clipping
    logging_steps: int = 10  # log metrics every this many steps (metrics.jsonl)
    report_to: str = "none"  # experiment tracking of the Trainer: none | tensorboard | wandb | all (TensorBoard: event files under <stage folder>/runs/)
    gradient_checkpointing: bool = False  # activation checkpointing (use_reentrant=False)
    bf16: str | bool = "auto"  # bfloat16: "auto" = on when a CUDA GPU supports it
    trust_remote_code: bool = False  # allow custom model code from the hub

    def __post_init__(self) -> None:
        if isinstance(self.ensemble_head_seeds, (list, int)):
            seeds = [self.ensemble_head_seeds] if isinstance(self.ensemble_head_seeds, int) else self.ensemble_head_seeds
            object.__setattr__(self, "ensemble_head_seeds", tuple(int(s) for s in seeds))
        checks = training_checks(self) + [
            (self.kind in ORACLE_KINDS, f"kind must be one of {ORACLE_KINDS}"),
            (isinstance(self.noise_std, (int, float)) and self.noise_std >= 0, "noise_std must be >= 0"),
            (0.0 <= self.alpha <= 1.0 and 0.0 <= self.ensemble_alpha <= 1.0, "alpha values must be in [0, 1]"),
            (self.ensemble_size >= 0, "ensemble_size must be >= 0"),
            (len(self.ensemble_head_seeds) == self.ensemble_size, "ensemble_head_seeds needs one seed per member"),
            (len(set(self.ensemble_head_seeds)) == len(self.ensemble_head_seeds), "ensemble_head_seeds must differ"),
            (self.max_eval_rows is None or self.max_eval_rows > 0, "max_eval_rows must be > 0 or null"),
            (self.ensemble_max_train_rows is None or self.ensemble_max_train_rows > 0,
             "ensemble_max_train_rows must be > 0 or null"),
            (self.num_train_epochs > 0 or self.max_steps > 0, "need num_train_epochs > 0 or max_steps > 0"),
            (self.max_steps == -1 or self.max_steps > 0, "max_steps must be -1 or > 0"),
            (self.per_device_eval_batch_size > 0, "per_device_eval_batch_size must be > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"OracleConfig: {msg}")


class RewardModelTrainer(transformers.Trainer):
    """``transformers.Trainer`` for a :class:`~drdo_lib.models.CausalLMWithRewardHead` with the Eq. 5 loss.

    One concatenated forward of chosen + rejected; ``chosen_nll`` is the mean token NLL of ``y_w`` from the same
    logits (:func:`drdo_lib.losses.sequence_logps` with ``reduction="mean"``); loss = :func:`~drdo_lib.losses.oracle_loss`.
    """

    def __init__(self, *args, alpha: float = 0.01, **kwargs):
        self.alpha = alpha
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self._metric_sums: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        n = inputs["chosen_input_ids"].shape[0]
        ids = torch.cat([inputs["chosen_input_ids"], inputs["rejected_input_ids"]])
        att = torch.cat([inputs["chosen_attention_mask"], inputs["rejected_attention_mask"]])
        need_logits = self.alpha > 0
        out = model(ids, att, return_logits=False)
        rewards = out["rewards"].float()
        if need_logits:
            # the NLL needs the chosen half only: apply the LM head to those hidden states
            lm = self.accelerator.unwrap_model(model).lm
            logits = lm.get_output_embeddings()(out["hidden"][:n])
            nll = -L.sequence_logps(logits, inputs["chosen_input_ids"], inputs["chosen_response_mask"], "mean")
        else:
            nll = torch.zeros(n, device=rewards.device)
        res = L.oracle_loss(rewards[:n], rewards[n:], nll, alpha=self.alpha)
        for k, v in res.metrics.items():
            self._metric_sums[k].append(v)
        return (res.loss, out) if return_outputs else res.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metric_sums:
            for k, v in self._metric_sums.items():
                logs[f"train_{k}" if k == "loss" else k] = round(sum(v) / len(v), 6)
            self._metric_sums.clear()
        super().log(logs, start_time)


def pairwise_accuracy(model, tokenized_ds, *, batch_size: int = 32, pad_token_id: int = 0) -> dict[str, float]:
    """Held-out pairwise accuracy (fraction with r_w > r_l), ties (r_w == r_l) and mean margin of a reward model."""
    from drdo_lib.precompute import score_rewards

    if len(tokenized_ds) == 0:
        return {"accuracy": float("nan"), "ties": float("nan"), "margin": float("nan"), "pairs": 0}
    r = score_rewards(model, tokenized_ds, batch_size=batch_size, pad_token_id=pad_token_id)
    d = r[:, 0] - r[:, 1]
    return {"accuracy": float((d > 0).mean()), "ties": float((d == 0).mean()), "margin": float(d.mean()),
            "pairs": int(len(d))}


def _tokenize(cfg: OracleConfig, rows, tokenizer, limit):
    from drdo_lib.data.tokenize import tokenize_preference_dataset

    if limit is not None and len(rows) > limit:
        rows = rows.select(range(limit))
    return tokenize_preference_dataset(rows, tokenizer, max_prompt_length=cfg.max_prompt_length,
                                       max_length=cfg.max_length, template=cfg.template)


def train_reward_model(
    cfg: OracleConfig,
    out_dir: str | Path,
    *,
    init_model: str | Path,
    train_rows,
    eval_rows=None,
    alpha: float,
    head_seed: int,
    seed: int,
    final_dir: str | Path | None = None,
    max_train_rows: int | None = None,
    progress: bool = True,
) -> Path:
    """Train one reward model from ``init_model`` on preference rows; writes the model and metrics.

    The model + tokenizer go to ``final_dir`` (default ``out_dir/final``), which is returned. ``metrics.json``
    holds the held-out pairwise accuracy before and after training, the length-filter counts and timings;
    ``metrics.jsonl`` the training curve.
    """
    from drdo_lib.data.tokenize import collate_preference
    from drdo_lib.models import CausalLMWithRewardHead, build_causal_lm, build_tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    transformers.set_seed(seed)
    tokenizer = build_tokenizer(str(init_model), trust_remote_code=cfg.trust_remote_code)
    lm = build_causal_lm(str(init_model), tokenizer, seed=seed, trust_remote_code=cfg.trust_remote_code)
    model = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=head_seed)
    train_ds, train_counts = _tokenize(cfg, train_rows, tokenizer,
                                       cfg.max_train_rows if max_train_rows is None else max_train_rows)
    if len(train_ds) == 0:
        raise ValueError(f"no training pairs left after the length filter: {train_counts}")
    eval_ds, eval_counts = (_tokenize(cfg, eval_rows, tokenizer, cfg.max_eval_rows) if eval_rows is not None
                            else (None, {}))
    pad = tokenizer.pad_token_id
    before = pairwise_accuracy(model, eval_ds, batch_size=cfg.per_device_eval_batch_size, pad_token_id=pad) \
        if eval_ds is not None else {}

    args = training_arguments(cfg, out_dir, seed, progress=progress, remove_unused_columns=False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    jsonl = out_dir / "metrics.jsonl"
    if jsonl.exists():
        jsonl.unlink()
    trainer = RewardModelTrainer(
        model=model, args=args, train_dataset=train_ds, alpha=alpha,
        data_collator=lambda b: collate_preference(b, pad, "right"), callbacks=[MetricsJsonlCallback()],
    )
    drop_printed_logs(trainer)
    t0 = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - t0
    model = trainer.accelerator.unwrap_model(trainer.model)
    after = pairwise_accuracy(model, eval_ds, batch_size=cfg.per_device_eval_batch_size, pad_token_id=pad) \
        if eval_ds is not None else {}
    train_acc = pairwise_accuracy(model, train_ds.select(range(min(len(train_ds), 500))),
                                  batch_size=cfg.per_device_eval_batch_size, pad_token_id=pad)
    final = Path(final_dir) if final_dir is not None else out_dir / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    steps = max(int(trainer.state.global_step), 1)
    metrics: dict[str, Any] = {
        "init_model": str(init_model), "alpha": alpha, "head_seed": head_seed, "seed": seed,
        "train_rows": train_counts, "eval_rows": eval_counts, "steps": int(trainer.state.global_step),
        "train_loss": float(result.training_loss), "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / steps, 4), "device": str(args.device), "bf16": bool(args.bf16),
        "heldout_before": before, "heldout": after, "train_subset": train_acc,
        "provenance": provenance.record(),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logger.info("reward model (alpha=%s, head_seed=%d): held-out accuracy %.3f -> %.3f in %.1fs; saved to %s",
                alpha, head_seed, before.get("accuracy", float("nan")), after.get("accuracy", float("nan")),
                seconds, final)
    del trainer, model, lm
    return final


def _init_model(run, cfg: OracleConfig) -> str:
    """The causal LM the reward models start from: ``cfg.init_model``, else the run's SFT policy."""
    if cfg.init_model is not None:
        return cfg.init_model
    return str(run.require_model(run.sft_model, "the SFT policy", "sft (notebook 02)"))


def _rows(run, cfg: OracleConfig, train_rows, eval_rows):
    if train_rows is None:
        from drdo_lib.data import pipeline as data_stage

        train_rows, eval_rows = data_stage.load(run).preference_pairs(cfg.train_split)
    return train_rows, eval_rows


def true_reward_oracle(cfg: OracleConfig, testbed, *, seed: int, member: int | None = None):
    """``reward_fn(prompts, responses) -> np.ndarray`` of an Oracle that is not a trained model.

    ``true_reward``: the testbed's r* itself. ``noisy_true_reward``: r* plus Gaussian noise of standard deviation
    ``cfg.noise_std``, a deterministic function of (``seed``, ``member``, prompt, response): the same response
    always gets the same noisy reward (in the precompute, in evaluation, in every split), and e-DPO ensemble member
    ``k`` (``member=k``) sees its own independent noise. Raises when the data has no true reward."""
    import hashlib

    import numpy as np

    if cfg.kind == "trained":
        raise ValueError("true_reward_oracle: oracle.kind is 'trained' (a reward model, not a function)")
    if testbed is None:
        raise ValueError(f"oracle.kind={cfg.kind!r} needs the synthetic testbed's true reward r*; this profile's data "
                         "has none (use oracle.kind: trained)")

    def reward_fn(prompts, responses):
        r = np.asarray(testbed.true_rewards(list(prompts), list(responses)), dtype=np.float64)
        if cfg.kind == "noisy_true_reward" and cfg.noise_std > 0:
            z = np.empty(len(r))
            for i, (p, y) in enumerate(zip(prompts, responses)):
                h = hashlib.blake2b(f"{seed}|{member}|{p}|{y}".encode(), digest_size=8).digest()
                z[i] = np.random.default_rng(int.from_bytes(h, "little")).standard_normal()
            r = r + cfg.noise_std * z
        return r

    return reward_fn


def run(run, cfg: OracleConfig | None = None, *, train_rows=None, eval_rows=None, progress: bool = True) -> Path:
    """The Oracle stage: train the Oracle of ``run`` (Eq. 5, α = ``cfg.alpha``) and return
    ``runs/<profile>/oracle/final``.

    ``cfg`` defaults to the run's ``oracle`` section; ``train_rows`` / ``eval_rows`` (untokenised preference rows)
    to the training / validation pairs of ``cfg.train_split`` from the data stage.
    """
    cfg = cfg if cfg is not None else run.config(OracleConfig, "oracle")
    if cfg.kind != "trained":
        logger.warning("oracle.kind=%s: the policies distil the testbed's true reward; the reward model trained here "
                       "is reported beside it but not used", cfg.kind)
    init = _init_model(run, cfg)
    train_rows, eval_rows = _rows(run, cfg, train_rows, eval_rows)
    out = run.stage_dir("oracle")
    save_config(cfg, out / "config.json")
    return train_reward_model(cfg, out, init_model=init, train_rows=train_rows, eval_rows=eval_rows,
                              alpha=cfg.alpha, head_seed=cfg.head_seed, seed=run.seed, progress=progress)


def run_ensemble(run, cfg: OracleConfig | None = None, *, train_rows=None, eval_rows=None,
                 progress: bool = True) -> list[Path]:
    """Train the e-DPO ensemble of ``run``: ``cfg.ensemble_size`` reward models, α = ``cfg.ensemble_alpha``
    (Eq. 2), one head seed each; returns ``[runs/<profile>/ensemble/member_{k}, ...]`` (model, tokenizer and
    metrics.json in each)."""
    cfg = cfg if cfg is not None else run.config(OracleConfig, "oracle")
    init = _init_model(run, cfg)
    train_rows, eval_rows = _rows(run, cfg, train_rows, eval_rows)
    base = run.stage_dir("ensemble")
    save_config(cfg, base / "config.json")
    dirs = []
    for k, head_seed in enumerate(cfg.ensemble_head_seeds):
        logger.info("ensemble member %d/%d (head seed %d)", k + 1, cfg.ensemble_size, head_seed)
        dirs.append(train_reward_model(cfg, base / f"member_{k}", init_model=init, train_rows=train_rows,
                                       eval_rows=eval_rows, alpha=cfg.ensemble_alpha, head_seed=head_seed,
                                       seed=run.seed, final_dir=base / f"member_{k}",
                                       max_train_rows=cfg.ensemble_max_train_rows, progress=progress))
    return dirs


def reward_agreement(model_dir: str | Path, rows, *, cfg: OracleConfig, true_reward_fn=None,
                     batch_size: int | None = None) -> dict[str, Any]:
    """How a saved reward model's scores on preference ``rows`` relate to the labels and (synthetic data) to r*.

    Returns ``accuracy_vs_labels`` (r_w > r_l); with ``true_reward_fn(prompts, responses)``: ``accuracy_vs_true``
    (the model orders the pair as r* does, pairs with equal r* left out), ``labels_vs_true`` (how often the human
    label agrees with r*: the label-noise ceiling), Pearson and Spearman correlations of the model's rewards with
    r* over all responses and of the reward differences, and the arrays (``diff``, ``true_diff``) for a scatter.
    """
    import numpy as np
    from transformers import AutoTokenizer

    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.models import CausalLMWithRewardHead
    from drdo_lib.precompute import score_rewards

    model = CausalLMWithRewardHead.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    pad_token_id = tok.pad_token_id
    ds, _ = tokenize_preference_dataset(rows, tok, max_prompt_length=cfg.max_prompt_length,
                                        max_length=cfg.max_length, template=cfg.template)
    r = score_rewards(model, ds, batch_size=batch_size or cfg.per_device_eval_batch_size, pad_token_id=pad_token_id)
    diff = r[:, 0] - r[:, 1]
    out: dict[str, Any] = {"pairs": int(len(ds)), "accuracy_vs_labels": float((diff > 0).mean()),
                           "diff": diff.tolist()}
    if true_reward_fn is not None:
        prompts = list(ds["prompt"])
        tc = np.asarray(true_reward_fn(prompts, list(ds["chosen"])), dtype=float)
        tr = np.asarray(true_reward_fn(prompts, list(ds["rejected"])), dtype=float)
        td = tc - tr
        decided = td != 0

        def pearson(a, b):  # nan (no warning) when either side is constant
            return float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else float("nan")

        def spearman(a, b):
            return pearson(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))

        learned, true = np.concatenate([r[:, 0], r[:, 1]]), np.concatenate([tc, tr])
        out.update({
            "accuracy_vs_true": float(((diff > 0) == (td > 0))[decided].mean()),
            "labels_vs_true": float((td[decided] > 0).mean()),
            "pearson_reward": pearson(learned, true),
            "spearman_reward": spearman(learned, true),
            "pearson_diff": pearson(diff, td),
            "true_diff": td.tolist(),
        })
    return out
