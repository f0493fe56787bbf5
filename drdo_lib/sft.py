"""Supervised fine-tuning of the initial policy with TRL's ``SFTTrainer`` (paper App. B, D), completion-only loss.

The SFT model is the starting point and the reference policy of every preference method, and the initialisation
of the Oracle (:mod:`drdo_lib.oracle`). Rows are ``{prompt, response}`` (the data stage's normalised SFT rows;
``label`` as in ``CarperAI/openai_summarize_tldr`` or ``completion`` also work). They are tokenised by
:func:`drdo_lib.data.tokenize.tokenize_sft_dataset` exactly as the preference stages tokenise pairs (same prompt
template, BOS, EOS), and ``SFTTrainer`` masks the prompt out of the loss (``completion_only_loss=True``, via the
``completion_mask`` column).

For a tiny model (``tiny-gpt2`` …) the tokenizer is trained here on the training texts and saved with the model, so
every later stage reads it from ``runs/<profile>/sft/final``. Outputs under ``runs/<profile>/sft/``: ``final/``
(model + tokenizer, safetensors), ``metrics.json`` (length-filter counts, parameter count, step time, final loss),
``metrics.jsonl`` (the loss curve) and ``config.json``.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from drdo_lib import provenance
from drdo_lib.config import fresh_attempt_dir, promote_attempt, save_config
from drdo_lib.hf import MetricsJsonlCallback, drop_printed_logs, training_arguments, training_checks

logger = logging.getLogger(__name__)

__all__ = ["SFTConfig", "run", "build_sft_trainer", "true_reward_of_samples", "evaluate_sft", "completion_nll"]


@dataclass(frozen=True)
class SFTConfig:
    """Settings of the SFT stage (profile section ``sft``); defaults follow the paper (App. D, Table 6)."""

    model_name_or_path: str = "tiny-gpt2"  # hub id, local dir, or a tiny config (tiny-gpt2 | tiny-opt | tiny-phi3)
    model_size: str = "mini"  # tiny models only: micro | mini | small | bench (drdo_lib.models.TINY_SIZES)
    tokenizer_vocab_size: int = 8000  # tiny models only: word-level vocabulary cap (specials included)
    template: str = "tldr"  # prompt template: tldr | chat (tokenizer's chat template) | raw
    max_prompt_length: int = 512  # prompts longer than this (tokens) are dropped and counted
    max_length: int = 1024  # prompt + completion + EOS longer than this are dropped and counted
    max_train_rows: int | None = None  # use at most this many SFT rows (None: all)
    learning_rate: float = 1e-5  # peak learning rate (paper: 1e-5)
    lr_scheduler_type: str = "cosine"  # transformers scheduler name (paper: cosine)
    warmup_steps: float = 100  # warm-up steps (>= 1) or fraction of training (< 1) (paper: 100 steps)
    weight_decay: float = 0.0  # decoupled weight decay
    num_train_epochs: float = 1.0  # passes over the SFT rows (ignored when max_steps > 0)
    max_steps: int = -1  # optimizer steps; -1: num_train_epochs decides
    per_device_train_batch_size: int = 8  # rows per device per micro-batch
    gradient_accumulation_steps: int = 8  # micro-batches per optimizer step
    optim: str = "adamw_torch"  # transformers optimizer name; paged_* falls back to adamw_torch without CUDA+bnb
    max_grad_norm: float = 1.0  # gradient clipping
    logging_steps: int = 10  # log the training loss every this many steps
    report_to: str = "none"  # experiment tracking of the Trainer: none | tensorboard | wandb | all (TensorBoard: event files under <stage folder>/runs/)
    gradient_checkpointing: bool = False  # activation checkpointing (use_reentrant=False)
    bf16: str | bool = "auto"  # bfloat16: "auto" = on when a CUDA GPU supports it
    trust_remote_code: bool = False  # allow custom model code from the hub (off: only transformers' own classes)
    eval_prompts: int = 64  # held-out prompts whose greedy samples are scored (notebook 02); 0 disables
    eval_max_new_tokens: int = 32  # generation length cap for those samples

    def __post_init__(self) -> None:
        from drdo_lib.models import TINY_SIZES

        checks = training_checks(self) + [
            (bool(self.model_name_or_path), "model_name_or_path must be set"),
            (self.model_size in TINY_SIZES, f"model_size must be one of {sorted(TINY_SIZES)}"),
            (self.tokenizer_vocab_size > 4, "tokenizer_vocab_size must be > 4"),
            (self.num_train_epochs > 0 or self.max_steps > 0, "need num_train_epochs > 0 or max_steps > 0"),
            (self.max_steps == -1 or self.max_steps > 0, "max_steps must be -1 or > 0"),
            (self.eval_prompts >= 0 and self.eval_max_new_tokens > 0, "eval_prompts >= 0, eval_max_new_tokens > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"SFTConfig: {msg}")


def _texts(ds, columns: Sequence[str]) -> list[str]:
    out: list[str] = []
    for c in columns:
        if c in ds.column_names:
            out.extend(x for x in ds[c] if isinstance(x, str))
    return out


def build_sft_trainer(cfg: SFTConfig, model, tokenizer, tokenized_ds, output_dir: str | Path, *, seed: int,
                      progress: bool = True):
    """TRL ``SFTTrainer`` on rows from :func:`~drdo_lib.data.tokenize.tokenize_sft_dataset` (``input_ids`` +
    ``completion_mask``): ``completion_only_loss=True`` turns the mask into labels (prompt tokens → -100)."""
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    args = training_arguments(
        cfg, output_dir, seed, progress=progress, args_class=TRLSFTConfig,
        completion_only_loss=True, max_length=cfg.max_length, packing=False,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=tokenized_ds, processing_class=tokenizer,
                         callbacks=[MetricsJsonlCallback()])
    drop_printed_logs(trainer)
    return trainer


def run(
    run,
    cfg: SFTConfig | None = None,
    *,
    train_rows=None,
    corpus: Sequence[str] | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> Path:
    """The SFT stage: train the SFT policy of ``run`` (a :class:`drdo_lib.run.Run`) and return its directory
    ``runs/<profile>/sft/final`` (model + tokenizer). ``seed`` (default: the run's seed) seeds the initialisation
    and the data order only (the study retrains a stuck SFT policy with another one; the data stay the run's).

    ``cfg`` defaults to the run's ``sft`` section; ``train_rows`` (a ``datasets.Dataset`` with ``prompt`` and
    ``response``/``label``/``completion``) and ``corpus`` (texts for a tiny model's tokenizer) default to the data
    stage's SFT training rows and texts (:func:`drdo_lib.data.pipeline.load`).
    """
    import shutil

    cfg = cfg if cfg is not None else run.config(SFTConfig, "sft")
    seed = run.seed if seed is None else int(seed)
    if train_rows is None:
        from drdo_lib.data import pipeline as data_stage

        data = data_stage.load(run)
        train_rows, _ = data.sft_rows()
        corpus = corpus if corpus is not None else data.corpus()
    if cfg.max_train_rows is not None and len(train_rows) > cfg.max_train_rows:
        train_rows = train_rows.select(range(cfg.max_train_rows))
    stage_dir = run.stage_dir("sft")
    # Everything is written to sft/.attempt/ and moved into sft/ only when training completes: a failed or killed
    # rerun leaves the finished SFT policy, its config and its metrics as they were.
    out_dir = fresh_attempt_dir(stage_dir)
    try:
        _train(run, cfg, seed, train_rows, corpus, out_dir, progress)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    promote_attempt(out_dir, stage_dir)
    logger.info("SFT policy saved to %s", stage_dir / "final")
    return stage_dir / "final"


def _train(run, cfg: SFTConfig, seed: int, train_rows, corpus, out_dir: Path, progress: bool) -> Path:
    """Train the SFT policy into ``out_dir`` (:func:`run`'s second half)."""
    import transformers

    from drdo_lib.data.tokenize import tokenize_sft_dataset
    from drdo_lib.models import TINY_MODELS, build_causal_lm, build_tokenizer, count_parameters

    save_config(cfg, out_dir / "config.json")
    transformers.set_seed(seed)

    tiny = cfg.model_name_or_path in TINY_MODELS
    if tiny:
        texts = list(corpus) if corpus is not None else _texts(train_rows, ("prompt", "response", "label",
                                                                            "completion"))
        tokenizer = build_tokenizer(cfg.model_name_or_path, texts, vocab_size=cfg.tokenizer_vocab_size)
    else:
        tokenizer = build_tokenizer(cfg.model_name_or_path, trust_remote_code=cfg.trust_remote_code)
    model = build_causal_lm(cfg.model_name_or_path, tokenizer, seed=seed, size=cfg.model_size if tiny else None,
                            trust_remote_code=cfg.trust_remote_code)
    n_pos = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if n_pos is not None and cfg.max_length > n_pos:
        raise ValueError(f"sft.max_length={cfg.max_length} exceeds the model's {n_pos} positions")
    ds, counts = tokenize_sft_dataset(train_rows, tokenizer, max_length=cfg.max_length,
                                      max_prompt_length=cfg.max_prompt_length, template=cfg.template)
    if len(ds) == 0:
        raise ValueError(f"no SFT rows left after the length filter: {counts}")

    trainer = build_sft_trainer(cfg, model, tokenizer, ds, out_dir, seed=seed, progress=progress)
    args = trainer.args
    t0 = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - t0
    final = out_dir / "final"
    trainer.model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    steps = max(int(trainer.state.global_step), 1)
    metrics: dict[str, Any] = {
        "profile": run.name, "seed": seed, "model": cfg.model_name_or_path, "parameters": count_parameters(model),
        "vocab_size": len(tokenizer), "rows": counts, "train_loss": float(result.training_loss),
        "steps": int(trainer.state.global_step), "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / steps, 4), "device": str(trainer.args.device),
        "bf16": bool(args.bf16),
        "loss_curve": [{"step": r["step"], "loss": r["loss"]} for r in trainer.state.log_history if "loss" in r],
        "provenance": provenance.record(),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logger.info("SFT done: %d steps in %.1fs", metrics["steps"], seconds)
    del trainer, model
    return final


def true_reward_of_samples(
    model_or_dir,
    tokenizer,
    prompts: Sequence[str],
    reward_fn: Callable[[Sequence[str], Sequence[str]], Sequence[float]],
    *,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 32,
    max_prompt_length: int = 512,
) -> dict[str, Any]:
    """Sample one response per prompt (greedy by default) and score it with ``reward_fn(prompts, responses)``.

    Used on the synthetic testbed (``reward_fn = SyntheticTestbed.true_rewards``) to check that the SFT policy has
    learned the task. Returns ``{mean, std, rewards, responses, finished}``.
    """
    import numpy as np

    from drdo_lib.generation import generate

    model = model_or_dir
    if isinstance(model_or_dir, (str, Path)):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_or_dir, use_safetensors=True)
    samples = generate(model, tokenizer, list(prompts), temperature=temperature, max_new_tokens=max_new_tokens,
                       seed=seed, batch_size=batch_size, max_prompt_length=max_prompt_length, progress=False)
    responses = [s["response"] for s in samples]
    r = np.asarray(reward_fn(list(prompts), responses), dtype=float)
    return {"mean": float(r.mean()), "std": float(r.std()), "rewards": r.tolist(), "responses": responses,
            "finished": float(np.mean([s["finished"] for s in samples]))}


@torch.no_grad()
def completion_nll(lm, tokenized_sft, *, batch_size: int = 64, pad_token_id: int = 0) -> float:
    """Mean per-token negative log-likelihood of the completions (EOS included) of a tokenised SFT dataset."""
    from drdo_lib.data.tokenize import pad_sequences
    from drdo_lib.precompute import response_logps_sum

    lm = getattr(lm, "lm", lm)
    was_training = lm.training
    lm.eval()
    dev = next(lm.parameters()).device
    total, count = 0.0, 0
    try:
        for s in range(0, len(tokenized_sft), batch_size):
            rows = tokenized_sft[s:s + batch_size]
            ids = pad_sequences(rows["input_ids"], pad_token_id)
            att = pad_sequences([[1] * len(x) for x in rows["input_ids"]], 0)
            cm = pad_sequences(rows["completion_mask"], 0)
            total += float(response_logps_sum(lm, ids.to(dev), att.to(dev), cm.to(dev)).sum())
            count += int(cm[:, 1:].sum())
    finally:
        lm.train(was_training)
    return -total / max(count, 1)


def evaluate_sft(
    final_dir: str | Path,
    heldout_rows,
    *,
    testbed=None,
    n_prompts: int = 64,
    max_new_tokens: int = 32,
    max_length: int = 1024,
    template: str = "tldr",
    seed: int = 0,
) -> dict[str, Any]:
    """Compare the SFT policy with a randomly initialised model of the same architecture on held-out SFT rows.

    Always: the per-token NLL of the held-out reference completions under both models. With a synthetic
    ``testbed``: the true reward r* of greedy samples from both, of the references, of the ideal summaries and of
    an empty summary.
    Returns ``{"nll": {...}, "true_reward": {...} | None, "samples": [rows for a table]}``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from drdo_lib.data.tokenize import tokenize_sft_dataset
    from drdo_lib.data.pipeline import SFT_COMPLETION

    tok = AutoTokenizer.from_pretrained(final_dir)
    sft = AutoModelForCausalLM.from_pretrained(final_dir, use_safetensors=True).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rand = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(final_dir)).eval()
    rows = heldout_rows.select(range(min(n_prompts, len(heldout_rows))))
    col = SFT_COMPLETION if SFT_COMPLETION in rows.column_names else "label"
    tokd, _ = tokenize_sft_dataset(rows, tok, max_length=max_length, template=template, completion_column=col)
    pad = tok.pad_token_id
    out: dict[str, Any] = {"n_prompts": len(rows),
                           "nll": {"sft": completion_nll(sft, tokd, pad_token_id=pad),
                                   "random_init": completion_nll(rand, tokd, pad_token_id=pad)},
                           "true_reward": None}
    prompts, refs = list(rows["prompt"]), list(rows[col])
    kw = dict(max_new_tokens=max_new_tokens, seed=seed, max_prompt_length=max_length)
    if testbed is not None:
        s = true_reward_of_samples(sft, tok, prompts, testbed.true_rewards, **kw)
        r = true_reward_of_samples(rand, tok, prompts, testbed.true_rewards, **kw)
        out["true_reward"] = {
            "sft": s["mean"], "random_init": r["mean"],
            "reference": float(sum(testbed.true_rewards(prompts, refs)) / len(prompts)),
            "ideal": float(sum(testbed.true_rewards(prompts, [testbed.ideal_summary(p) for p in prompts]))
                           / len(prompts)),
            "empty": float(sum(testbed.true_rewards(prompts, [""] * len(prompts))) / len(prompts)),
            "sft_finished": s["finished"],
        }
        samples, rewards = s["responses"], s["rewards"]
    else:
        from drdo_lib.generation import generate

        samples = [g["response"] for g in generate(sft, tok, prompts, temperature=0.0, progress=False, **kw)]
        rewards = [None] * len(prompts)
    out["samples"] = [{"prompt_end": p[-80:], "reference": ref.strip(), "sft_sample": y, "r*": rw}
                      for p, ref, y, rw in zip(prompts[:8], refs[:8], samples[:8], rewards[:8])]
    return out
