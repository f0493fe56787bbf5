"""How good a reward model is the student? Pairwise agreement and correlation of its rewards r̂ on held-out pairs.

The paper's student is a policy *and* a reward model. :func:`student_pair_rewards` reads r̂ for every pair
(``student_reward="head"``: the student's reward head at the last real token; ``"logprob"``: r̂ = β·z, the summed
log-probability of the response) and :func:`reward_fit` compares the differences r̂_w − r̂_l with

- the labels (y_w is the labelled winner): ``acc_labels`` = share of pairs with r̂_w > r̂_l;
- the Oracle (the rewards the student distils): ``acc_oracle`` = share of the pairs the Oracle decides
  (r_O,w ≠ r_O,l) on which r̂ orders the two responses as the Oracle does, and ``pearson_oracle``, the Pearson
  correlation of r̂_w − r̂_l with r_O,w − r_O,l;
- the true reward r* when known (the synthetic testbed): ``acc_true`` on the pairs r* decides.

A tie of r̂ (e.g. a zero-initialised head) counts ½ in every accuracy. The Oracle's own ``oracle_acc_labels`` and
``oracle_acc_true`` are returned beside, so "the student is as good a reward model as its Oracle" reads
``acc_true`` against ``oracle_acc_true`` on the same pairs.

::

    from drdo_lib.reward_fit import reward_fit, student_pair_rewards
    r = student_pair_rewards(model, tokenized_pairs, pad_token_id, student_reward="head")   # (N, 2)
    fit = reward_fit(r[:, 0], r[:, 1], oracle_chosen, oracle_rejected, true_chosen, true_rejected)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["pairwise_agreement", "pearson", "reward_fit", "student_pair_rewards", "FIT_KEYS"]

#: Keys of :func:`reward_fit`'s result (floats; ``acc_true``/``oracle_acc_true`` NaN without r*).
FIT_KEYS = ("acc_labels", "acc_oracle", "acc_true", "pearson_oracle", "oracle_acc_labels", "oracle_acc_true",
            "n_pairs", "n_oracle_decided", "n_true_decided")


def pairwise_agreement(pred_diff: Sequence[float], ref_diff: Sequence[float]) -> tuple[float, int]:
    """``(share, n)``: among the ``n`` pairs with ``ref_diff ≠ 0``, the share where ``pred_diff`` has the same sign
    (``pred_diff == 0`` counts ½). NaN when no pair is decided by the reference."""
    p, r = np.asarray(pred_diff, dtype=float), np.asarray(ref_diff, dtype=float)
    if p.shape != r.shape:
        raise ValueError(f"pred_diff and ref_diff must have the same shape, got {p.shape} and {r.shape}")
    decided = r != 0
    n = int(decided.sum())
    if n == 0:
        return float("nan"), 0
    agree = np.where(p[decided] == 0, 0.5, (np.sign(p[decided]) == np.sign(r[decided])).astype(float))
    return float(agree.mean()), n


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of ``x`` and ``y``; NaN when either is constant or fewer than 2 values."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def reward_fit(student_chosen, student_rejected, oracle_chosen, oracle_rejected, true_chosen=None,
               true_rejected=None) -> dict[str, float]:
    """The student's fit as a reward model on pairs whose ``chosen`` is the labelled winner (module docstring)."""
    sd = np.asarray(student_chosen, dtype=float) - np.asarray(student_rejected, dtype=float)
    od = np.asarray(oracle_chosen, dtype=float) - np.asarray(oracle_rejected, dtype=float)
    if sd.shape != od.shape or sd.ndim != 1:
        raise ValueError(f"student and oracle rewards must be 1-D of one length, got {sd.shape} and {od.shape}")
    ones = np.ones_like(sd)
    out: dict[str, Any] = {"n_pairs": int(sd.size)}
    out["acc_labels"], _ = pairwise_agreement(sd, ones)
    out["oracle_acc_labels"], _ = pairwise_agreement(od, ones)
    out["acc_oracle"], out["n_oracle_decided"] = pairwise_agreement(sd, od)
    out["pearson_oracle"] = pearson(sd, od)
    if true_chosen is not None and true_rejected is not None:
        td = np.asarray(true_chosen, dtype=float) - np.asarray(true_rejected, dtype=float)
        out["acc_true"], out["n_true_decided"] = pairwise_agreement(sd, td)
        out["oracle_acc_true"], _ = pairwise_agreement(od, td)
    else:
        out["acc_true"] = out["oracle_acc_true"] = float("nan")
        out["n_true_decided"] = 0
    return {k: out[k] for k in FIT_KEYS}


def student_pair_rewards(model, tok_ds, pad_token_id: int, *, student_reward: str = "head", beta: float = 0.1,
                         logp_reduction: str = "sum", batch_size: int = 64):
    """``(N, 2)`` float array of r̂ (chosen, rejected) for a tokenised preference dataset (``data.tokenize``'s
    columns): the reward head's output (``student_reward="head"``, a ``CausalLMWithRewardHead``) or β·z
    (``"logprob"``, any causal LM; z reduced by ``logp_reduction``)."""
    import torch

    from drdo_lib import losses as L
    from drdo_lib.data.tokenize import collate_preference

    if student_reward not in ("head", "logprob"):
        raise ValueError(f"student_reward must be head or logprob, got {student_reward!r}")
    if student_reward == "head" and not hasattr(model, "reward_head"):
        raise ValueError("student_reward='head' needs a model with a reward head (CausalLMWithRewardHead)")
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(tok_ds), batch_size):
                b = collate_preference([tok_ds[j] for j in range(i, min(i + batch_size, len(tok_ds)))], pad_token_id,
                                       padding_side="right")
                pair = []
                for side in ("chosen", "rejected"):
                    ids = b[f"{side}_input_ids"].to(dev)
                    attn = b[f"{side}_attention_mask"].to(dev)
                    if student_reward == "head":
                        r = model(input_ids=ids, attention_mask=attn, return_logits=False)["rewards"]
                    else:
                        logits = model(input_ids=ids, attention_mask=attn).logits
                        z = L.sequence_logps(logits, ids, b[f"{side}_response_mask"].to(dev), reduction=logp_reduction)
                        r = beta * z
                    pair.append(r.float().cpu().numpy())
                out.append(np.stack(pair, 1))
    finally:
        model.train(was_training)
    return np.concatenate(out, 0) if out else np.zeros((0, 2))
