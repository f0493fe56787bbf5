"""Preference training of a policy: DRDO (Eq. 6), DPO (Eq. 3), IPO and e-DPO (Eq. 4) on one ``transformers.Trainer``.

The trainer only *dispatches* to :mod:`drdo_lib.losses`; no loss math lives here. Every method reads precomputed
dataset columns, so no oracle, ensemble or reference model is in memory while a student trains:

| column (per row)                                   | written by                          | read by              |
|----------------------------------------------------|-------------------------------------|----------------------|
| ``chosen_/rejected_input_ids``, ``_attention_mask``, ``_response_mask`` | ``data.tokenize``  | all                  |
| ``ref_chosen_logp``, ``ref_rejected_logp``         | ``precompute.precompute_ref_logps`` | dpo, ipo, edpo (+ metrics) |
| ``oracle_chosen_reward``, ``oracle_rejected_reward`` | ``precompute.precompute_rewards`` | drdo (+ metrics, ``label_source="oracle"``) |
| ``ensemble_chosen_rewards``, ``ensemble_rejected_rewards`` (K floats) | ``precompute.precompute_rewards`` | edpo |

One forward pass scores chosen and rejected together (the batch is concatenated along the batch axis), and only the
logits of the response span are materialised (``logits_to_keep``), which is what makes a step cheaper than a
full-sequence LM head. Logged every ``logging_steps`` (``metrics.jsonl`` beside the checkpoints; the four panels of
the paper's Fig. 4): ``loss`` and its components, ``bt_accuracy`` (BT implicit-reward accuracy, the fraction of pairs
with ``(z_w − z_w^ref) − (z_l − z_l^ref) > 0``), ``oracle_reward_advantage`` (``r*`` of the response the student
prefers minus ``r*`` of the other one, averaged over pairs), ``logps_chosen`` / ``logps_rejected``, ``p_w`` and
``grad_norm``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import TrainerCallback

from drdo_lib import losses as L
from drdo_lib.config import load_profile, progress_disabled_by_env

logger = logging.getLogger(__name__)

METHODS = ("drdo", "dpo", "ipo", "edpo")
STUDENT_REWARDS = ("head", "logprob")
LABEL_SOURCES = ("human", "oracle")
METRICS_FILE = "metrics.jsonl"
#: Row columns the collator turns into float tensors when present (ensemble columns become (B, K)).
FLOAT_COLUMNS = (
    "ref_chosen_logp", "ref_rejected_logp", "oracle_chosen_reward", "oracle_rejected_reward",
    "ensemble_chosen_rewards", "ensemble_rejected_rewards",
)


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
    edpo_reduction: str = "min"  # how e-DPO combines its K members: min | mean | max (see losses.edpo_loss)
    student_reward: str = "head"  # DRDO r̂: "head" (linear reward head on the student) | "logprob" (r̂ = β·z)
    student_head_seed: int = 0  # seed of the student's reward-head initialisation (student_reward="head")
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
        checks = [
            (self.student_reward in STUDENT_REWARDS, f"student_reward must be one of {STUDENT_REWARDS}"),
            (self.label_source in LABEL_SOURCES, f"label_source must be one of {LABEL_SOURCES}"),
            (self.logp_reduction in L.LOGP_REDUCTIONS, f"logp_reduction must be one of {L.LOGP_REDUCTIONS}"),
            (self.edpo_reduction in L.EDPO_REDUCTIONS, f"edpo_reduction must be one of {L.EDPO_REDUCTIONS}"),
            (self.beta > 0, "beta must be > 0"),
            (self.alpha >= 0 and self.gamma >= 0, "alpha and gamma must be >= 0"),
            (0 < self.max_prompt_length < self.max_length, "need 0 < max_prompt_length < max_length"),
            (self.max_train_rows is None or self.max_train_rows > 0, "max_train_rows must be > 0 or null"),
            (self.learning_rate > 0 and self.weight_decay >= 0, "learning_rate must be > 0, weight_decay >= 0"),
            (self.warmup_steps >= 0 and self.max_grad_norm >= 0, "warmup_steps and max_grad_norm must be >= 0"),
            (self.per_device_train_batch_size > 0 and self.gradient_accumulation_steps > 0, "batch sizes must be > 0"),
            (self.max_steps > 0, "max_steps must be > 0"),
            (self.logging_steps > 0 and self.save_steps > 0, "logging_steps and save_steps must be > 0"),
            (self.save_total_limit is None or self.save_total_limit > 0, "save_total_limit must be > 0 or null"),
            (self.bf16 in ("auto", True, False), "bf16 must be 'auto', true or false"),
            (self.precompute_batch_size > 0, "precompute_batch_size must be > 0"),
            (self.template in ("tldr", "chat", "raw"), "template must be tldr, chat or raw"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"PolicyConfig: {msg} (got {dataclasses.asdict(self)})")

    @property
    def needs_ref_logps(self) -> bool:
        """True when some configured method needs reference log-probs (DPO/IPO/e-DPO)."""
        return any(m != "drdo" for m in self.methods)


# --------------------------------------------------------------------------------------------------------------
# Batching


@dataclass
class PreferenceCollator:
    """``drdo_lib.data.tokenize.collate_preference`` with a fixed pad id: chosen and rejected right-padded to ONE
    common length (so the trainer concatenates them into one ``(2B, T)`` forward), precomputed float columns as
    ``(B,)`` (ensemble columns ``(B, K)``) float32 tensors."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from drdo_lib.data.tokenize import collate_preference

        return collate_preference(features, self.pad_token_id, padding_side="right")


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


# --------------------------------------------------------------------------------------------------------------
# The trainer


def _disable_dropout(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def _unwrap_lm(model: torch.nn.Module) -> transformers.PreTrainedModel:
    """The causal LM inside a student (the model itself, or ``.lm`` of a CausalLMWithRewardHead)."""
    return model if isinstance(model, transformers.PreTrainedModel) else model.lm


class PreferenceTrainer(transformers.Trainer):
    """``transformers.Trainer`` whose loss is one of :data:`METHODS`, dispatched to :mod:`drdo_lib.losses`.

    Args:
        model: the student: a causal LM (dpo/ipo/edpo, DRDO with ``student_reward="logprob"``) or a
            ``drdo_lib.models.CausalLMWithRewardHead`` (DRDO with ``student_reward="head"``).
        policy_config: the :class:`PolicyConfig` (loss settings are read from it).
        method: one of :data:`METHODS`.
        args, train_dataset, processing_class, callbacks, ...: as for ``transformers.Trainer``. ``train_dataset``
            is a tokenized preference dataset with the precomputed columns the method needs (module docstring).
    """

    def __init__(self, model, policy_config: PolicyConfig, method: str, *, args, train_dataset, pad_token_id: int,
                 **kwargs):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.policy_config = policy_config
        self.method = method
        need = {"dpo": ("ref_chosen_logp",), "ipo": ("ref_chosen_logp",),
                "edpo": ("ref_chosen_logp", "ensemble_chosen_rewards"), "drdo": ("oracle_chosen_reward",)}[method]
        missing = [c for c in need if c not in train_dataset.column_names]
        if missing:
            raise ValueError(f"{method} needs precomputed column(s) {missing}; dataset has {train_dataset.column_names}")
        if method == "drdo" and policy_config.student_reward == "head" and not hasattr(model, "reward_head"):
            raise ValueError("DRDO with student_reward='head' needs a CausalLMWithRewardHead student")
        if policy_config.disable_dropout:
            _disable_dropout(model)
        kwargs.setdefault("data_collator", PreferenceCollator(pad_token_id))
        super().__init__(model=model, args=args, train_dataset=train_dataset, **kwargs)
        self.model_accepts_loss_kwargs = False  # our loss is a mean over pairs; Trainer divides by GA steps
        self._metric_sums: dict[str, list[float]] = defaultdict(list)
        self.add_callback(MetricsJsonlCallback())

    # ---- forward -------------------------------------------------------------------------------------------
    def concatenated_forward(self, model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One forward of ``cat([chosen, rejected])``; returns ``chosen_logps``/``rejected_logps`` (B,) and, for a
        reward-head student, ``chosen_rewards``/``rejected_rewards`` (B,)."""
        ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]], 0)
        attn = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]], 0)
        resp = torch.cat([batch["chosen_response_mask"], batch["rejected_response_mask"]], 0)
        n = batch["chosen_input_ids"].shape[0]
        # Only logits at positions >= (first response token - 1) can score a response token: keep that tail.
        has_resp = resp.any(-1)
        first = int(resp.float().argmax(-1)[has_resp].min()) if bool(has_resp.any()) else ids.shape[1] - 1
        keep = ids.shape[1] - max(first - 1, 0)
        start = ids.shape[1] - keep
        if hasattr(self.accelerator.unwrap_model(model), "reward_head"):
            # Reward-head student: hidden states + rewards from its forward, LM head applied to the kept tail only.
            out = model(input_ids=ids, attention_mask=attn, return_logits=False)
            logits = out["logits"]
            if logits is None:
                lm_head = _unwrap_lm(self.accelerator.unwrap_model(model)).get_output_embeddings()
                logits = lm_head(out["hidden"][:, start:])
        else:
            out = model(input_ids=ids, attention_mask=attn, logits_to_keep=keep, use_cache=False)
            logits = out.logits
        start = ids.shape[1] - logits.shape[1]
        logps = L.sequence_logps(logits, ids[:, start:], resp[:, start:], reduction=self.policy_config.logp_reduction)
        res = {"chosen_logps": logps[:n], "rejected_logps": logps[n:]}
        rewards = out.get("rewards")
        if rewards is not None:
            res["chosen_rewards"], res["rejected_rewards"] = rewards[:n].float(), rewards[n:].float()
        return res

    # ---- loss dispatch -------------------------------------------------------------------------------------
    def preference_loss(self, fw: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> L.LossOutput:
        """Dispatch to the :mod:`drdo_lib.losses` function of ``self.method`` with the batch's precomputed columns."""
        c = self.policy_config
        zw, zl = fw["chosen_logps"], fw["rejected_logps"]
        if self.method == "drdo":
            if c.student_reward == "head":
                sw, sl = fw["chosen_rewards"], fw["rejected_rewards"]
            else:
                sw, sl = c.beta * zw, c.beta * zl
            return L.drdo_loss(zw, zl, sw, sl, batch["oracle_chosen_reward"], batch["oracle_rejected_reward"],
                               alpha=c.alpha, gamma=c.gamma)
        ref = (batch["ref_chosen_logp"], batch["ref_rejected_logp"])
        if self.method == "dpo":
            return L.dpo_loss(zw, zl, *ref, beta=c.beta)
        if self.method == "ipo":
            return L.ipo_loss(zw, zl, *ref, beta=c.beta)
        return L.edpo_loss(zw, zl, *ref, batch["ensemble_chosen_rewards"].T, batch["ensemble_rejected_rewards"].T,
                           beta=c.beta, reduction=c.edpo_reduction)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        fw = self.concatenated_forward(model, inputs)
        out = self.preference_loss(fw, inputs)
        self._record_metrics(fw, out, inputs)
        return (out.loss, fw) if return_outputs else out.loss

    # ---- metrics -------------------------------------------------------------------------------------------
    def _record_metrics(self, fw, out: L.LossOutput, batch) -> None:
        with torch.no_grad():
            zw, zl = fw["chosen_logps"].detach(), fw["rejected_logps"].detach()
            m = {"logps_chosen": zw.mean(), "logps_rejected": zl.mean(), "p_w": torch.sigmoid(zw - zl).mean()}
            if "ref_chosen_logp" in batch:  # BT implicit reward r = β(z − z_ref): the student's pairwise preference
                margin = (zw - batch["ref_chosen_logp"]) - (zl - batch["ref_rejected_logp"])
            else:
                margin = zw - zl
            m["bt_accuracy"] = (margin > 0).float().mean()
            if "oracle_chosen_reward" in batch:
                gap = batch["oracle_chosen_reward"] - batch["oracle_rejected_reward"]
                m["oracle_reward_advantage"] = torch.where(margin > 0, gap, -gap).mean()
            for name, comp in out.components.items():
                if name in ("reward", "focal"):
                    m[f"loss_{name}"] = comp.detach().mean()
            if "chosen_rewards" in fw:
                m["student_reward_accuracy"] = (fw["chosen_rewards"] > fw["rejected_rewards"]).float().mean()
            if self.method == "edpo":
                m["edpo_selected_member"] = torch.tensor(out.metrics["selected_member"])
            m["loss_" + self.method] = out.loss.detach()
        for k, v in m.items():
            self._metric_sums[k].append(float(v))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metric_sums:  # a training log: add the mean of each metric since the last log
            names = sorted(self._metric_sums)
            local = torch.tensor([sum(self._metric_sums[k]) / len(self._metric_sums[k]) for k in names],
                                 device=self.accelerator.device)
            reduced = self.accelerator.reduce(local, reduction="mean") if self.accelerator.num_processes > 1 else local
            logs.update({k: round(float(v), 6) for k, v in zip(names, reduced.tolist())})
            self._metric_sums.clear()
        super().log(logs, start_time)

    # ---- checkpoints of a non-PreTrainedModel student (reward-head wrapper): safetensors with tied weights ------
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        model = self.accelerator.unwrap_model(self.model)
        if isinstance(model, transformers.PreTrainedModel):
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        # Tied weights (GPT-2/OPT embeddings = LM head) share storage, which safetensors refuses: keep one name per
        # shared tensor exactly as safetensors.torch.save_model does, so that load_model restores the ties.
        from safetensors.torch import _remove_duplicate_names, save_file

        os.makedirs(output_dir, exist_ok=True)
        sd = state_dict if state_dict is not None else model.state_dict()
        dropped = {name for group in _remove_duplicate_names(sd).values() for name in group}
        save_file({k: v.detach().contiguous().cpu() for k, v in sd.items() if k not in dropped},
                  os.path.join(output_dir, "model.safetensors"), metadata={"format": "pt"})
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = model if model is not None else self.model
        target = self.accelerator.unwrap_model(model)
        if isinstance(target, transformers.PreTrainedModel) or self.is_deepspeed_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        from safetensors.torch import load_model

        load_model(target, os.path.join(resume_from_checkpoint, "model.safetensors"), strict=True)


class MetricsJsonlCallback(TrainerCallback):
    """Appends every training log (step, loss, metrics) as one JSON line to ``<output_dir>/metrics.jsonl``.

    On resume, lines past the resumed step are dropped first, so the file holds one uninterrupted trajectory.
    """

    def on_train_begin(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / METRICS_FILE
        if state.is_world_process_zero and path.exists():
            kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= state.global_step]
            path.write_text("".join(ln + "\n" for ln in kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        path = Path(args.output_dir) / METRICS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}, sort_keys=True) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl`` (one dict per logging step)."""
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


# --------------------------------------------------------------------------------------------------------------
# TrainingArguments from a PolicyConfig


def resolve_optim(name: str) -> str:
    """``paged_*`` optimizers need bitsandbytes and CUDA; otherwise fall back to ``adamw_torch`` (logged)."""
    if not name.startswith("paged_"):
        return name
    try:
        import bitsandbytes  # noqa: F401
        ok = torch.cuda.is_available()
    except ImportError:
        ok = False
    if not ok:
        logger.warning("optim=%s needs bitsandbytes and a CUDA device; using adamw_torch instead", name)
        return "adamw_torch"
    return name


def resolve_bf16(value: str | bool) -> bool:
    """``"auto"``: bf16 exactly when a CUDA device supports it."""
    if value == "auto":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if value and not torch.cuda.is_available():
        logger.warning("bf16=True on a machine without CUDA: bfloat16 autocast on CPU is slow and lossy")
    return bool(value)


def resolve_deepspeed(path: str | None) -> str | None:
    """The DeepSpeed JSON to use, or None.

    ZeRO-2 shards optimizer states and gradients across *processes*; a single-process run (a notebook, a plain
    ``python -m drdo_lib``) trains without DeepSpeed (logged). A relative path is resolved against the working
    directory, then the repository root (notebooks run with ``--cwd notebooks``).
    """
    if not path:
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        logger.warning("deepspeed=%s ignored: single-process run (launch with deepspeed/torchrun/accelerate to use it)",
                       path)
        return None
    from drdo_lib.config import REPO_ROOT

    p = Path(path)
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p
    if not p.exists():
        raise FileNotFoundError(f"DeepSpeed config {path} not found")
    return str(p)


def training_arguments(cfg: PolicyConfig, output_dir: str | Path, seed: int, **overrides) -> transformers.TrainingArguments:
    """``TrainingArguments`` of a policy run (no evaluation, no external loggers, explicit seeds)."""
    kw = dict(
        output_dir=str(output_dir), seed=seed, data_seed=seed, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        optim=resolve_optim(cfg.optim), max_grad_norm=cfg.max_grad_norm, logging_steps=cfg.logging_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        bf16=resolve_bf16(cfg.bf16), deepspeed=resolve_deepspeed(cfg.deepspeed), report_to="none", remove_unused_columns=False,
        ddp_find_unused_parameters=False, dataloader_num_workers=0, disable_tqdm=False,
        logging_nan_inf_filter=False,
        # On a machine without CUDA, use_cpu makes accelerate treat a torchrun/accelerate launch as MULTI_CPU (gloo).
        use_cpu=not torch.cuda.is_available(),
    )
    kw.update(overrides)
    return transformers.TrainingArguments(**kw)


# --------------------------------------------------------------------------------------------------------------
# The stage entry point


def policy_run_dir(profile_name: str, method: str, split: str, runs_dir: str | Path | None = None) -> Path:
    """``runs/<profile>/policy/<method>_<split>/``: checkpoints, ``metrics.jsonl``, ``final/``, ``config.json``."""
    from drdo_lib.config import run_dir

    d = run_dir(profile_name, "policy", runs_dir) / f"{method}_{split}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def precompute_cache_dir(profile_name: str, runs_dir: str | Path | None = None) -> Path:
    """Where the reward / reference-log-prob caches of a profile live (shared with notebook 03)."""
    from drdo_lib.config import run_dir

    return run_dir(profile_name, "precompute", runs_dir)


def stage_paths(cfg: PolicyConfig, profile_name: str, runs_dir: str | Path | None = None) -> dict[str, Any]:
    """The initial/reference policy, oracle and ensemble directories a policy run reads (resolved defaults)."""
    from drdo_lib.config import run_dir

    base = Path(runs_dir) if runs_dir is not None else None
    init = cfg.init_model or str(run_dir(profile_name, "sft", base) / "final")
    oracle = cfg.oracle_model or str(run_dir(profile_name, "oracle", base) / "final")
    if cfg.ensemble_models is not None:
        ensemble = list(cfg.ensemble_models)
    else:
        ens_root = run_dir(profile_name, "ensemble", base)
        ensemble = [str(p) for p in sorted(ens_root.glob("member_*"), key=lambda p: int(p.name.split("_")[-1]))]
    return {"init": init, "oracle": oracle, "ensemble": ensemble}


def prepare_policy_dataset(cfg: PolicyConfig, profile, method: str, split: str, tokenizer, *,
                           seed: int, runs_dir: str | Path | None = None, rows=None) -> tuple[Any, dict[str, Any]]:
    """Training pairs of ``split`` for ``method``: tokenised, with the precomputed (cached) columns it reads.

    ``rows`` (normalised preference rows, e.g. a hand-made ``datasets.Dataset``) replaces the profile's data: they
    are used as the split as given. Otherwise the profile's ``data`` stage is loaded (``load_profile_data``), split
    with ``select_split`` (``build_splits``) and the split's rows whose ``split`` column is in ``cfg.row_splits``
    kept. Reference log-probs (the initial policy) are always added (the BT implicit-reward metric needs them),
    oracle rewards when an oracle exists (required by DRDO and ``label_source="oracle"``), ensemble rewards for
    e-DPO. Returns ``(dataset, report)``.
    """
    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.precompute import precompute_ref_logps, precompute_rewards

    prof = load_profile(profile)
    name = prof["profile"]
    if rows is None:
        from drdo_lib.data.splits import select_split
        from drdo_lib.stage_data import profile_data

        data, data_cfg = profile_data(prof, seed=seed, runs_dir=runs_dir)
        keep = set(cfg.row_splits)
        rows = select_split(data.preferences, split, data_cfg.confidence_mode).filter(
            lambda s: s in keep, input_columns="split", desc=f"{split}: training rows")
        if len(rows) == 0:
            raise ValueError(f"{split} has no rows with split in {sorted(keep)} (set policy.row_splits)")
    rows = rows.shuffle(seed=seed)
    if cfg.max_train_rows is not None and len(rows) > cfg.max_train_rows:
        rows = rows.select(range(cfg.max_train_rows))
    ds, counts = tokenize_preference_dataset(rows, tokenizer, max_prompt_length=cfg.max_prompt_length,
                                             max_length=cfg.max_length, template=cfg.template)
    if len(ds) == 0:
        raise ValueError(f"no {split} pairs left after the length filter: {counts}")
    paths = stage_paths(cfg, name, runs_dir)
    cache = precompute_cache_dir(name, runs_dir)
    kw = dict(cache_dir=cache, batch_size=cfg.precompute_batch_size, pad_token_id=tokenizer.pad_token_id)
    ds = precompute_ref_logps(paths["init"], ds, logp_reduction=cfg.logp_reduction, **kw)
    need_oracle = method == "drdo" or cfg.label_source == "oracle"
    if Path(paths["oracle"]).is_dir():
        ds = precompute_rewards(paths["oracle"], ds, column_prefix="oracle", **kw)
    elif need_oracle:
        raise FileNotFoundError(f"{method} (label_source={cfg.label_source}) needs an oracle at {paths['oracle']}; "
                                "train it first (notebook 03 / --stage oracle) or set policy.oracle_model")
    if method == "edpo":
        if not paths["ensemble"]:
            raise FileNotFoundError("e-DPO needs ensemble reward models (runs/<profile>/ensemble/member_*); train them "
                                    "first (notebook 03 / --stage ensemble) or set policy.ensemble_models")
        ds = precompute_rewards(paths["ensemble"], ds, column_prefix="ensemble", **kw)
    if cfg.label_source == "oracle":
        ds = order_by_oracle(ds)
    report = {"split": split, "method": method, "rows": counts, "train_pairs": len(ds), **paths}
    return ds, report


def run_policy(cfg: PolicyConfig, profile, method: str, split: str, *, seed: int | None = None,
               runs_dir: str | Path | None = None, rows=None, callbacks=None, progress: bool = True) -> Path:
    """Train one student (``method`` on ``split``) and return its run directory
    ``runs/<profile>/policy/<method>_<split>/`` holding ``final/`` (model + tokenizer, safetensors),
    ``metrics.jsonl`` (one line per logging step), ``summary.json`` and the resolved ``config.json``.

    ``profile`` is a profile name, a YAML path or an already-loaded mapping (the CLI passes one with overrides
    applied); ``seed`` defaults to its top-level ``seed`` and ``runs_dir`` to its top-level ``runs_dir`` (else
    ``runs/``). ``rows`` replaces the profile's preference data (see :func:`prepare_policy_dataset`). Works in one process and under ``torchrun`` /
    ``accelerate launch`` / ``deepspeed`` (data preparation runs on the main process first; others read its cache).
    """
    import shutil
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    from drdo_lib.config import save_config
    from drdo_lib.models import CausalLMWithRewardHead, count_parameters

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    prof = load_profile(profile)
    name = prof["profile"]
    seed = int(prof.get("seed", 0)) if seed is None else int(seed)
    runs_dir = runs_dir if runs_dir is not None else prof.get("runs_dir")
    out = policy_run_dir(name, method, split, runs_dir)
    args = training_arguments(cfg, out, seed, disable_tqdm=not progress or progress_disabled_by_env())
    transformers.set_seed(seed)
    paths = stage_paths(cfg, name, runs_dir)
    tokenizer = AutoTokenizer.from_pretrained(paths["init"])
    with args.main_process_first(desc="policy dataset"):
        ds, report = prepare_policy_dataset(cfg, prof, method, split, tokenizer, seed=seed, runs_dir=runs_dir,
                                            rows=rows)
    lm = AutoModelForCausalLM.from_pretrained(paths["init"])
    if cfg.gradient_checkpointing:
        lm.config.use_cache = False
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    use_head = method == "drdo" and cfg.student_reward == "head"
    model = CausalLMWithRewardHead.from_causal_lm(lm, head_seed=cfg.student_head_seed) if use_head else lm

    resume = cfg.resume_from_checkpoint
    if resume == "last":
        resume = get_last_checkpoint(str(out))
        if resume is None:
            logger.warning("resume_from_checkpoint='last' but %s has no checkpoint: training from scratch", out)
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
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    if args.should_save:
        final = out / "final"
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(final)
        tokenizer.save_pretrained(final)
        logs = [r for r in trainer.state.log_history if "loss" in r and "step" in r]
        start = json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"] if resume else 0
        steps_run = max(trainer.state.global_step - start, 1)
        summary = {
            "method": method, "split": split, "profile": name, "seed": seed, "steps": trainer.state.global_step,
            "train_seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps_run, 4),
            "world_size": args.world_size, "device": str(args.device), "bf16": bool(args.bf16),
            "parameters": count_parameters(model), "final": logs[-1] if logs else {}, **report,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return out
