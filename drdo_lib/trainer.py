"""Preference training of a policy: DRDO (Eq. 6), DPO (Eq. 3), IPO, e-DPO (Eq. 4) and the noise-robust DPO variants
(cDPO, rDPO, Dr. DPO) on one ``transformers.Trainer``.

The trainer only *dispatches* to :mod:`drdo_lib.losses`; no loss math lives here. Every method reads precomputed
dataset columns, so no oracle, ensemble or reference model is in memory while a student trains:

| column (per row)                                   | written by                          | read by              |
|----------------------------------------------------|-------------------------------------|----------------------|
| ``chosen_/rejected_input_ids``, ``_attention_mask``, ``_response_mask`` | ``data.tokenize``  | all                  |
| ``ref_chosen_logp``, ``ref_rejected_logp``         | ``precompute.precompute_ref_logps`` | dpo, ipo, edpo, cdpo, rdpo, drdpo (+ metrics) |
| ``oracle_chosen_reward``, ``oracle_rejected_reward`` | ``precompute.precompute_rewards`` | drdo (+ metrics, ``label_source="oracle"``) |
| ``ensemble_chosen_rewards``, ``ensemble_rejected_rewards`` (K floats) | ``precompute.precompute_rewards`` | edpo |

One forward pass scores chosen and rejected together (the batch is concatenated along the batch axis), and only the
logits of the response span are materialised (``logits_to_keep``), which is what makes a step cheaper than a
full-sequence LM head. Logged every ``logging_steps`` (``metrics.jsonl`` beside the checkpoints; the four panels of
the paper's Fig. 4): ``loss`` and its components, ``bt_accuracy`` (BT implicit-reward accuracy, the fraction of pairs
with ``(z_w − z_w^ref) − (z_l − z_l^ref) > 0``), ``oracle_reward_advantage`` (the precomputed Oracle reward, r* only
with ``oracle.kind: true_reward``, of the response the student prefers minus that of the other one, averaged over
training pairs; shown as "implicit-preference oracle margin (training pairs)", not the paper's Fig. 4 quantity), ``logps_chosen`` / ``logps_rejected``, ``p_w`` and
``grad_norm``; for DRDO also the gradient norm of each Eq. 6 term over the language model's parameters only,
``grad_norm_reward_lm`` / ``grad_norm_focal_lm``, the reward head's own ``grad_norm_reward_head``, and
``grad_norm_reward`` / ``grad_norm_focal`` over all trainable parameters (head included) (computed on logging steps
only; skipped under DeepSpeed; :meth:`PreferenceTrainer._record_term_grad_norms`), for e-DPO ``edpo_selected_member`` and ``edpo_forward_kl``.

The policy stage (:mod:`drdo_lib.policy`) builds the dataset, the student and the arguments; this module is the
trainer alone.
"""
from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import transformers

from drdo_lib import losses as L
from drdo_lib.hf import MetricsJsonlCallback, disable_dropout

logger = logging.getLogger(__name__)

__all__ = ["METHODS", "MARGIN_METHODS", "FLOAT_COLUMNS", "PreferenceCollator", "PreferenceTrainer"]

METHODS = ("drdo", "dpo", "ipo", "edpo", "cdpo", "rdpo", "drdpo")
#: Methods whose loss is a function of the DPO margin h alone (they read reference log-probs, no Oracle).
MARGIN_METHODS = ("dpo", "ipo", "cdpo", "rdpo", "drdpo")
#: Row columns the collator turns into float tensors when present (ensemble columns become (B, K)).
FLOAT_COLUMNS = (
    "ref_chosen_logp", "ref_rejected_logp", "oracle_chosen_reward", "oracle_rejected_reward",
    "ensemble_chosen_rewards", "ensemble_rejected_rewards",
)


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



# --------------------------------------------------------------------------------------------------------------
# The trainer


def is_reward_head_parameter(name: str) -> bool:
    """True for a parameter of the student's reward head (``reward_head.*``, also under a DDP ``module.`` prefix)."""
    return "reward_head" in name.split(".")


def _unwrap_lm(model: torch.nn.Module) -> transformers.PreTrainedModel:
    """The causal LM inside a student (the model itself, or ``.lm`` of a CausalLMWithRewardHead)."""
    return model if isinstance(model, transformers.PreTrainedModel) else model.lm


class PreferenceTrainer(transformers.Trainer):
    """``transformers.Trainer`` whose loss is one of :data:`METHODS`, dispatched to :mod:`drdo_lib.losses`.

    Args:
        model: the student: a causal LM (dpo/ipo/edpo, DRDO with ``student_reward="logprob"``) or a
            ``drdo_lib.models.CausalLMWithRewardHead`` (DRDO with ``student_reward="head"``).
        policy_config: the policy stage's :class:`drdo_lib.policy.PolicyConfig` (loss settings are read from it;
            the trainer does not import the stage above it).
        method: one of :data:`METHODS`.
        args, train_dataset, processing_class, callbacks, ...: as for ``transformers.Trainer``. ``train_dataset``
            is a tokenized preference dataset with the precomputed columns the method needs (module docstring).
    """

    def __init__(self, model, policy_config: Any, method: str, *, args, train_dataset, pad_token_id: int,
                 **kwargs):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.policy_config = policy_config
        self.method = method
        need = {"edpo": ("ref_chosen_logp", "ensemble_chosen_rewards"), "drdo": ("oracle_chosen_reward",)
                }.get(method, ("ref_chosen_logp",))
        missing = [c for c in need if c not in train_dataset.column_names]
        if missing:
            raise ValueError(f"{method} needs precomputed column(s) {missing}; dataset has {train_dataset.column_names}")
        if method == "drdo" and policy_config.student_reward == "head" and not hasattr(model, "reward_head"):
            raise ValueError("DRDO with student_reward='head' needs a CausalLMWithRewardHead student")
        if policy_config.disable_dropout:
            disable_dropout(model)
        kwargs.setdefault("data_collator", PreferenceCollator(pad_token_id))
        super().__init__(model=model, args=args, train_dataset=train_dataset, **kwargs)
        self.model_accepts_loss_kwargs = False  # our loss is a mean over pairs; Trainer divides by GA steps
        self._metric_sums: dict[str, list[float]] = defaultdict(list)
        self.add_callback(MetricsJsonlCallback())

    # ---- optimizer: the student's reward head may have its own learning rate -----------------------------------
    def create_optimizer(self, model=None):
        """``transformers.Trainer``'s optimizer; with ``policy.head_learning_rate`` set, the reward head's parameters
        move to their own param groups (same weight decay split) at that peak lr. The scheduler, built next from
        each group's lr, applies the same warm-up/decay factor to both."""
        opt = super().create_optimizer(model)
        head_lr = getattr(self.policy_config, "head_learning_rate", None)
        if head_lr is None or self.is_deepspeed_enabled:
            return opt
        model = self.model if model is None else model
        head = {id(p) for n, p in model.named_parameters() if is_reward_head_parameter(n)}
        if not head:
            return opt
        moved = []
        for g in opt.param_groups:
            mine = [p for p in g["params"] if id(p) in head]
            if mine:
                g["params"] = [p for p in g["params"] if id(p) not in head]
                moved.append({**{k: v for k, v in g.items() if k != "params"}, "params": mine, "lr": head_lr})
        opt.param_groups[:] = [g for g in opt.param_groups if g["params"]]
        for g in moved:
            opt.add_param_group(g)
        return opt

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
        if self.method == "cdpo":
            return L.cdpo_loss(zw, zl, *ref, beta=c.beta, eps=c.label_noise_eps)
        if self.method == "rdpo":
            return L.rdpo_loss(zw, zl, *ref, beta=c.beta, eps=c.label_noise_eps)
        if self.method == "drdpo":
            return L.drdpo_loss(zw, zl, *ref, beta=c.beta, beta_prime=c.drdpo_beta)
        return L.edpo_loss(zw, zl, *ref, batch["ensemble_chosen_rewards"].T, batch["ensemble_rejected_rewards"].T,
                           beta=c.beta, reduction=c.edpo_reduction, kl_coef=c.edpo_kl_coef)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        fw = self.concatenated_forward(model, inputs)
        out = self.preference_loss(fw, inputs)
        if not torch.isfinite(out.loss.detach()).all():
            self._raise_non_finite(out, inputs)
        self._record_metrics(fw, out, inputs)
        if self._term_grad_norms_due(model):
            self._record_term_grad_norms(model, out)
        return (out.loss, fw) if return_outputs else out.loss

    def _raise_non_finite(self, out: L.LossOutput, batch) -> None:
        """Stop training at the first non-finite loss (nothing past it is trained or saved), naming the step, the
        loss terms and the precomputed columns that are non-finite themselves."""
        terms = {f"loss_{self.method}": float(out.loss.detach().float().mean())}
        for name, comp in out.components.items():
            terms[f"loss_{name}"] = float(comp.detach().float().mean())
        bad_cols = [k for k in ("ref_chosen_logp", "ref_rejected_logp", "oracle_chosen_reward",
                                "oracle_rejected_reward", "ensemble_chosen_rewards", "ensemble_rejected_rewards")
                    if k in batch and not torch.isfinite(batch[k]).all()]
        raise FloatingPointError(
            f"{self.method}: non-finite loss at step {self.state.global_step + 1} (loss terms: "
            + ", ".join(f"{k}={v}" for k, v in terms.items()) + ")"
            + (f"; non-finite precomputed column(s) in the batch: {bad_cols}" if bad_cols else "")
            + ". Training stopped; no model was saved for this step")

    # ---- per-term gradient norms of DRDO (logging steps only) ---------------------------------------------------
    def _term_grad_norms_due(self, model) -> bool:
        """True on a training micro-batch of a step that will be logged (DRDO, not under DeepSpeed)."""
        if self.method != "drdo" or not torch.is_grad_enabled() or not model.training:
            return False
        if self.is_deepspeed_enabled:  # ZeRO partitions gradients through hooks: extra autograd.grad calls skipped
            return False
        if self.args.logging_strategy != transformers.IntervalStrategy.STEPS:
            return False
        every = self.args.logging_steps
        if every < 1:  # a fraction of training, resolved as transformers.Trainer does
            every = max(math.ceil((self.state.max_steps or self.args.max_steps) * every), 1)
        step = self.state.global_step + 1  # the optimizer step this micro-batch belongs to
        return step % int(every) == 0 or (self.args.logging_first_step and step == 1)

    def _record_term_grad_norms(self, model, out: L.LossOutput) -> None:
        """The gradient norm of each DRDO term (Eq. 6: the reward-difference regression, and the focal term
        α(1 − p_w)^γ log(π_w/(1 − π_l)) that the loss subtracts), of the term's batch mean on this micro-batch, before
        clipping and not divided by ``gradient_accumulation_steps``:

        - ``grad_norm_reward_lm`` / ``grad_norm_focal_lm``: L2 norm over the **language model's** parameters only
          (the student's reward head excluded): how hard each term pulls the policy;
        - ``grad_norm_reward_head``: the L2 norm over the reward head's own parameters (``student_reward="head"``
          only; the focal term does not reach the head, so this is the head's whole gradient);
        - ``grad_norm_reward`` / ``grad_norm_focal``: over every trainable parameter (LM and head together;
          ``grad_norm_reward² = grad_norm_reward_lm² + grad_norm_reward_head²``). With a head these mostly measure
          the head; kept for continuity with earlier runs.

        Two extra ``torch.autograd.grad`` calls (``retain_graph``) on logging steps only; ``.grad`` is untouched, so
        training is unchanged. With gradient accumulation the logged value is the mean of the logging step's
        micro-batch norms, an upper bound on the norm of the term's accumulated gradient (norm is convex). With one
        micro-batch per step the logged ``grad_norm`` (of reward − focal, all parameters) lies between
        ``|grad_norm_reward − grad_norm_focal|`` and their sum."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        in_head = [is_reward_head_parameter(n) for n, _ in named]
        has_head = any(in_head)
        for name in ("reward", "focal"):
            term = out.components[name].mean()
            sq_lm = sq_head = 0.0
            if term.requires_grad:
                grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
                for g, h in zip(grads, in_head):
                    if g is None:
                        continue
                    v = float(g.detach().float().pow(2).sum())
                    if h:
                        sq_head += v
                    else:
                        sq_lm += v
            self._metric_sums[f"grad_norm_{name}"].append(math.sqrt(sq_lm + sq_head))
            self._metric_sums[f"grad_norm_{name}_lm"].append(math.sqrt(sq_lm))
            if has_head and name == "reward":
                self._metric_sums["grad_norm_reward_head"].append(math.sqrt(sq_head))

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
                m["edpo_forward_kl"] = torch.tensor(out.metrics["forward_kl"])
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


