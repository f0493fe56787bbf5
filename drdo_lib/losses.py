"""Preference-learning losses as pure functions on per-example tensors.

Notation (paper Sec. 3–4): ``z = log π_θ(y|x)`` is the sequence log-probability of a response (sum over
response tokens, EOS included; see :func:`sequence_logps`), ``z^ref`` the same under the frozen reference policy,
``r*`` an oracle reward, ``r̂`` the student's reward. Subscripts ``w``/``l`` are the preferred/dispreferred response.

Every loss takes tensors of shape ``(B,)`` (``(K, B)`` for ensemble rewards) and returns a :class:`LossOutput`
with ``.losses`` (shape ``(B,)``), ``.loss`` (their mean, the scalar to back-propagate), ``.components`` (per-example
tensors of each term, for logging) and ``.metrics`` (a ``dict`` of Python floats). Losses are computed in float32
whatever the input dtype (bfloat16 inputs are upcast; gradients flow back in the input dtype).

| function | paper |
|---|---|
| :func:`dpo_loss` | Eq. 3 (Rafailov et al. 2023) |
| :func:`ipo_loss` | Azar et al. 2023 |
| :func:`cdpo_loss` | conservative DPO, label smoothing (Mitchell 2023) |
| :func:`rdpo_loss` | robust DPO (Chowdhury et al., ICML 2024) |
| :func:`drdpo_loss` | Dr. DPO, distributionally robust DPO (Wu et al., ICLR 2025) |
| :func:`edpo_loss` | Eq. 4; Fisch et al. (TMLR 2025) pessimistic distillation over a K-member ensemble |
| :func:`drdo_loss` | Eq. 6 (reward-difference regression + focal log-unlikelihood) |
| :func:`oracle_loss` | Eq. 5 (BT reward loss + α · SFT NLL, Yang et al. 2024) |
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = [
    "LossOutput",
    "sequence_logps",
    "log1mexp",
    "dpo_loss",
    "ipo_loss",
    "cdpo_loss",
    "rdpo_loss",
    "drdpo_loss",
    "edpo_loss",
    "drdo_loss",
    "oracle_loss",
    "EDPO_REDUCTIONS",
    "EDPO_KL_COEF",
    "LOGP_REDUCTIONS",
]

EDPO_REDUCTIONS = ("pessimistic", "min", "mean", "max")
#: Default weight of the forward-KL term of e-DPO's pessimistic objective (``policy.edpo_kl_coef``): our setting,
#: to be chosen by evidence; not a value from Fisch et al.
EDPO_KL_COEF = 0.1
LOGP_REDUCTIONS = ("sum", "mean")

#: ``log1mexp`` clamps its input to ``z ≤ -LOG1MEXP_EPS`` so that ``log(1 - exp(0)) = -inf`` never appears.
#: log(1 - exp(-1e-6)) ≈ -13.8: a sequence with π(y_l|x) = 1 contributes a large but finite penalty, and its
#: gradient through the clamped argument is zero (documented behaviour, tested).
LOG1MEXP_EPS = 1e-6


@dataclass
class LossOutput:
    """Result of a loss: ``losses`` (B,), ``loss`` = mean, ``components`` (name → (B,) tensor), ``metrics`` (floats)."""

    losses: torch.Tensor
    loss: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _f32(*xs: torch.Tensor) -> list[torch.Tensor]:
    return [x.float() for x in xs]


def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"all inputs must have the same shape (B,), got {shapes}")
    (shape,) = set(shapes.values())
    if len(shape) != 1:
        raise ValueError(f"inputs must be 1-D per-example tensors of shape (B,), got {shapes}")


def _mean(x: torch.Tensor) -> float:
    return float(x.detach().float().mean()) if x.numel() else float("nan")


def sequence_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    reduction: str = "sum",
) -> torch.Tensor:
    """Sequence log-probabilities ``z`` of the response tokens.

    Args:
        logits: ``(B, T, V)`` model outputs for ``input_ids`` of shape ``(B, T)``.
        labels: ``(B, T)`` token ids aligned with ``input_ids`` (*not* shifted; this function shifts: the logits at
            position ``t`` score ``labels[:, t + 1]``).
        mask: ``(B, T)`` bool/0-1, true on response tokens (EOS included) of ``labels``; prompt and padding false.
        reduction: ``"sum"`` (z = Σ log π, the paper's notation) or ``"mean"`` (divided by the number of response
            tokens; a per-token average that keeps log(1 − π(y_l|x)) informative for long sequences).

    Returns:
        ``(B,)`` float32 tensor.
    """
    if reduction not in LOGP_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LOGP_REDUCTIONS}, got {reduction!r}")
    if logits.dim() != 3 or labels.shape != logits.shape[:2] or mask.shape != labels.shape:
        raise ValueError(
            f"expected logits (B, T, V) and labels/mask (B, T); got {tuple(logits.shape)}, "
            f"{tuple(labels.shape)}, {tuple(mask.shape)}"
        )
    logits = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    m = mask[:, 1:].to(logits.dtype)
    safe_targets = torch.where(m.bool(), targets, torch.zeros_like(targets))
    token_logps = torch.gather(logits, 2, safe_targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return reduce_logps((token_logps * m).sum(-1), mask, reduction)


def reduce_logps(total: torch.Tensor, mask: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Apply ``reduction`` to ``(B,)`` sums of response-token log-probs: ``"sum"`` returns them, ``"mean"`` divides
    by the number of scored response tokens (``mask[:, 1:]``: position 0 is never scored), at least 1."""
    if reduction not in LOGP_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LOGP_REDUCTIONS}, got {reduction!r}")
    if reduction == "sum":
        return total
    return total / mask[:, 1:].to(total.dtype).sum(-1).clamp(min=1.0)


def log1mexp(z: torch.Tensor, eps: float = LOG1MEXP_EPS) -> torch.Tensor:
    """Stable ``log(1 − exp(z))`` for ``z ≤ 0`` (Mächler 2012), with ``z`` clamped to ``≤ −eps``.

    Uses ``log(−expm1(z))`` for ``z > −log 2`` and ``log1p(−exp(z))`` otherwise. Finite for every ``z ≤ 0``
    including exactly 0 and −inf-like values (``log1mexp(-1e4) = 0``).
    """
    z = torch.clamp(z, max=-eps)
    return torch.where(z > -math.log(2.0), torch.log(-torch.expm1(z)), torch.log1p(-torch.exp(z)))


def _implicit_margin(pc, pr, rc, rr):
    """h = (z_w − z_w^ref) − (z_l − z_l^ref), the log-ratio margin."""
    return (pc - rc) - (pr - rr)


def _margin_inputs(pc, pr, rc, rr):
    """The four (B,) log-probs of a loss on the DPO margin, shape-checked and in float32, and their margin h."""
    _check_same_shape(pc=pc, pr=pr, rc=rc, rr=rr)
    pc, pr, rc, rr = _f32(pc, pr, rc, rr)
    return pc, pr, rc, rr, _implicit_margin(pc, pr, rc, rr)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> LossOutput:
    """DPO, Eq. 3: ``losses = −log σ(β[(z_w − z_w^ref) − (z_l − z_l^ref)])``. All inputs ``(B,)``.

    Metrics: ``reward_accuracy`` (fraction with positive implicit-reward margin), ``margin`` (mean β·h),
    ``rewards_chosen`` / ``rewards_rejected`` (mean β(z − z^ref)).
    """
    pc, pr, rc, rr, h = _margin_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    return _margin_output(-F.logsigmoid(beta * h), h, beta, pc, pr, rc, rr)


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> LossOutput:
    """IPO (Azar et al. 2023): ``losses = (h − 1/(2β))²`` with ``h = (z_w − z_w^ref) − (z_l − z_l^ref)``."""
    if beta <= 0:
        raise ValueError(f"IPO needs beta > 0, got {beta}")
    pc, pr, rc, rr, h = _margin_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    losses = (h - 1.0 / (2.0 * beta)) ** 2
    return LossOutput(
        losses=losses,
        loss=losses.mean(),
        components={"rewards_chosen": beta * (pc - rc), "rewards_rejected": beta * (pr - rr)},
        metrics={"loss": _mean(losses), "reward_accuracy": _mean((h > 0).float()), "margin": _mean(beta * h)},
    )


def _check_eps(eps: float, *, upper: float, inclusive: bool, name: str) -> None:
    ok = 0.0 <= eps <= upper if inclusive else 0.0 <= eps < upper
    if not ok:
        raise ValueError(f"{name}: eps (the assumed label flip rate) must be in [0, {upper}{']' if inclusive else ')'}, "
                         f"got {eps}")


def _margin_output(losses, h, beta, pc, pr, rc, rr, extra_components=None, extra_metrics=None) -> LossOutput:
    """The LossOutput of a loss on the DPO margin h: DPO's metrics beside the loss."""
    rew_c, rew_r = beta * (pc - rc), beta * (pr - rr)
    return LossOutput(
        losses=losses,
        loss=losses.mean(),
        components={"rewards_chosen": rew_c, "rewards_rejected": rew_r, **(extra_components or {})},
        metrics={"loss": _mean(losses), "reward_accuracy": _mean((h > 0).float()), "margin": _mean(beta * h),
                 "rewards_chosen": _mean(rew_c), "rewards_rejected": _mean(rew_r), **(extra_metrics or {})},
    )


def cdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    eps: float = 0.1,
) -> LossOutput:
    """Conservative DPO (cDPO; Mitchell 2023, "A note on DPO with noisy preferences"), DPO with label smoothing::

        losses = −(1 − ε) · log σ(βh) − ε · log σ(−βh),   h = (z_w − z_w^ref) − (z_l − z_l^ref)

    the cross-entropy against a label that is right with probability 1 − ε. Its gradient vanishes at
    βh = log((1 − ε)/ε), so margins stay bounded (ε = 0 is DPO). ``eps`` ∈ [0, 0.5] is the assumed flip rate.
    (Recent TRL versions ignore ``label_smoothing`` for their ``sigmoid`` loss, so this is tested against the
    closed form, not TRL.)
    """
    _check_eps(eps, upper=0.5, inclusive=True, name="cDPO")
    pc, pr, rc, rr, h = _margin_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    losses = -(1.0 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    return _margin_output(losses, h, beta, pc, pr, rc, rr)


def rdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    eps: float = 0.1,
) -> LossOutput:
    """Robust DPO (rDPO; Chowdhury, Kini, Natarajan, "Provably Robust DPO", ICML 2024)::

        losses = [−(1 − ε) · log σ(βh) + ε · log σ(−βh)] / (1 − 2ε)

    an unbiased estimate of the clean DPO loss when each label is flipped independently with probability ε
    (averaged over the flip, h ↦ −h, it equals DPO: tested). Equal to TRL's ``DPOTrainer`` ``loss_type="robust"``
    with ``label_smoothing = ε`` (tested). ``eps`` ∈ [0, 0.5); ε = 0 is DPO. Unlike cDPO the per-example loss is
    not bounded below for ε > 0 (the ε-weighted term rewards a large margin on either side less than it penalises).
    """
    _check_eps(eps, upper=0.5, inclusive=False, name="rDPO")
    pc, pr, rc, rr, h = _margin_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    losses = (-(1.0 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (1.0 - 2.0 * eps)
    return _margin_output(losses, h, beta, pc, pr, rc, rr)


def drdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    beta_prime: float = 1.0,
) -> LossOutput:
    """Dr. DPO (Wu et al., "Towards Robust Alignment of Language Models: Distributionally Robustifying Direct
    Preference Optimization", ICLR 2025): a distributionally robust objective over the batch's DPO losses
    ``ℓ_i = −log σ(βh_i)``::

        loss = −β′ · log( (1/B) Σ_i exp(−ℓ_i / β′) )

    computed stably (``logsumexp``, centred, float64). Its gradient is Σ_i w_i ∇ℓ_i with w = softmax(−ℓ/β′): pairs the policy fits badly
    (likely flipped labels) get less weight. β′ → ∞ gives DPO's batch mean; by Jensen the objective never exceeds
    it. ``beta_prime`` > 0 (1 in the paper's example).

    Unlike the other losses, ``.loss`` is **not** the mean of ``.losses``: the objective couples the batch, so there
    is no per-example loss. ``.losses`` holds the per-pair DPO losses ℓ_i that the objective reweights (what a
    per-example log or a non-finite check should see); ``components["weight"]`` holds B·w_i (mean 1: the factor by
    which pair i's DPO gradient is scaled). Metrics: DPO's, plus ``dpo_loss`` (mean ℓ) and ``weight_min``/``max``.
    """
    if not beta_prime > 0:
        raise ValueError(f"Dr. DPO: beta_prime must be > 0, got {beta_prime}")
    pc, pr, rc, rr, h = _margin_inputs(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    ell = -F.logsigmoid(beta * h)
    n = ell.shape[0]
    # Centred on the batch mean and in float64: for large β′ the log-mean-exp is a small correction to mean ℓ, which
    # float32 would lose to cancellation against log B.
    e64 = ell.double()
    m = e64.mean()
    objective = (m - beta_prime * (torch.logsumexp(-(e64 - m) / beta_prime, 0) - math.log(max(n, 1)))).float()
    weight = torch.softmax(-ell.detach() / beta_prime, 0) * n
    out = _margin_output(ell, h, beta, pc, pr, rc, rr, extra_components={"weight": weight},
                         extra_metrics={"dpo_loss": _mean(ell), "weight_min": float(weight.min()) if n else math.nan,
                                        "weight_max": float(weight.max()) if n else math.nan})
    out.loss = objective
    out.metrics["loss"] = float(objective.detach())
    return out


def edpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    oracle_chosen_rewards: torch.Tensor,
    oracle_rejected_rewards: torch.Tensor,
    beta: float = 0.1,
    reduction: str = "pessimistic",
    kl_coef: float = EDPO_KL_COEF,
) -> LossOutput:
    """e-DPO: reward-model distillation over a K-member reward ensemble (DRDO paper Eq. 4; Fisch et al. 2025).

    Fisch, Eisenstein, Zayats, Agarwal, Beirami, Nagpal, Shaw, Berant, "Robust Preference Optimization through Reward
    Model Distillation", TMLR 2025 (arXiv 2405.19316). Their distillation loss, for one target reward ``r_tgt``::

        L_distill(r_tgt, π_θ; ρ) = E_ρ[ ( r_tgt(x, y_1) − r_tgt(x, y_2)
                                         − β log( π_θ(y_1|x) π_ref(y_2|x) / (π_θ(y_2|x) π_ref(y_1|x)) ) )² ]

    and their *pessimistic* distillation over a family S of reward models (here: the ensemble's K members)::

        L_pdistill(π_θ; ρ) = min_{r_tgt ∈ S} L_distill(r_tgt, π_θ; ρ)  +  γ · E_x D_KL( π_ref(·|x) ‖ π_θ(·|x) )

    i.e. the policy must agree with *some* member of the family, and the pessimism (the worst case over the family
    of the policy's advantage over π_ref, minus the usual KL) enters as a **forward** KL to the reference policy:
    for the implicit reward r_π = β log(π/π_ref) of a policy, E_π[r_π] − E_ref[r_π] − β KL(π‖π_ref) = β KL(π_ref‖π)
    (tested in ``tests/test_losses.py``), so among policies consistent with the family the pessimistic one is the
    one with the smallest forward KL. Equation numbers are not given here on purpose: the text search available
    when this was written returned only the first page of their paper, so the two objectives above are written from
    their pessimistic-distillation section as we know it (a public summary of the paper agrees: "distill with an
    extra forward-KL term for pessimism"), and the identity is checked independently; compare with the paper
    before citing an equation number.

    Per member k here: ``d_k = (r*_k(x, y_w) − r*_k(x, y_l) − β h)²`` with ``h = (z_w − z_w^ref) − (z_l − z_l^ref)``.
    ``oracle_*_rewards`` have shape ``(K, B)`` (a ``(B,)`` tensor is treated as K = 1: plain distillation).
    ``reduction`` combines the K member batch means (each member's L_distill on this batch):

    - ``"pessimistic"`` (default; Fisch et al.'s L_pdistill): the smallest member batch mean plus
      ``kl_coef · KL̂``, with the Monte-Carlo forward-KL estimate ``KL̂ = ½[(z_w^ref − z_w) + (z_l^ref − z_l)]``
      per pair. The estimate is unbiased when the pair's responses are samples of π_ref (as in their setting, and
      in this project's testbed whose pairs are sampled from the SFT policy); its gradient is −½ kl_coef ∇(z_w + z_l),
      a likelihood term on both responses. ``kl_coef`` is their γ (``policy.edpo_kl_coef``); its value is our
      setting, not a number taken from their paper.
    - ``"min"``: the smallest member batch mean, no KL term. On its own this is **optimistic**: it trains on the
      member the policy already agrees with most. A labelled alternative (the project's earlier default).
    - ``"mean"``: the average over members (no KL). ``"max"``: the worst-fitting member (no KL); a worst case over
      the *loss*, not Fisch et al.'s pessimism over the *reward*.

    ``kl_coef`` is used by ``"pessimistic"`` only. ``.losses`` holds the selected member's per-example losses
    (+ ``kl_coef · KL̂`` per pair for pessimistic), or the member mean (mean). Metrics: ``member_k_loss``,
    ``selected_member`` (−1 for mean), ``forward_kl`` (the batch mean of KL̂; logged for every reduction).
    """
    if reduction not in EDPO_REDUCTIONS:
        raise ValueError(f"reduction must be one of {EDPO_REDUCTIONS}, got {reduction!r}")
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    _check_same_shape(pc=policy_chosen_logps, pr=policy_rejected_logps, rc=ref_chosen_logps, rr=ref_rejected_logps)
    oc, orj = oracle_chosen_rewards, oracle_rejected_rewards
    if oc.dim() == 1:
        oc, orj = oc.unsqueeze(0), orj.unsqueeze(0)
    if oc.shape != orj.shape or oc.dim() != 2 or oc.shape[1] != policy_chosen_logps.shape[0]:
        raise ValueError(
            f"oracle rewards must have shape (K, B) with B={policy_chosen_logps.shape[0]}, "
            f"got {tuple(oracle_chosen_rewards.shape)} and {tuple(oracle_rejected_rewards.shape)}"
        )
    pc, pr, rc, rr, oc, orj = _f32(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, oc, orj)
    h = _implicit_margin(pc, pr, rc, rr)
    per_member = (oc - orj - beta * h.unsqueeze(0)) ** 2  # (K, B)
    member_means = per_member.mean(dim=1)  # (K,)
    forward_kl = 0.5 * ((rc - pc) + (rr - pr))  # (B,) Monte-Carlo estimate of KL(π_ref ‖ π_θ) on the pair
    if reduction == "mean":
        losses = per_member.mean(dim=0)
        selected = -1
    else:
        selected = int(member_means.argmax() if reduction == "max" else member_means.argmin())
        losses = per_member[selected]
        if reduction == "pessimistic":
            losses = losses + kl_coef * forward_kl
    metrics = {
        "loss": _mean(losses),
        "reward_accuracy": _mean((h > 0).float()),
        "margin": _mean(beta * h),
        "selected_member": float(selected),
        "forward_kl": _mean(forward_kl),
    }
    for k, v in enumerate(member_means.detach().tolist()):
        metrics[f"member_{k}_loss"] = v
    return LossOutput(
        losses=losses,
        loss=losses.mean(),
        components={"rewards_chosen": beta * (pc - rc), "rewards_rejected": beta * (pr - rr),
                    "forward_kl": forward_kl},
        metrics=metrics,
    )


def drdo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    student_chosen_rewards: torch.Tensor,
    student_rejected_rewards: torch.Tensor,
    oracle_chosen_rewards: torch.Tensor,
    oracle_rejected_rewards: torch.Tensor,
    alpha: float = 0.1,
    gamma: float = 2.0,
    log1mexp_eps: float = LOG1MEXP_EPS,
) -> LossOutput:
    """DRDO, Eq. 6. All inputs ``(B,)``.

    ``losses = (r*_w − r*_l − (r̂_w − r̂_l))²  −  α (1 − p_w)^γ · [z_w − log(1 − exp(z_l))]``
    with ``p_w = σ(z_w − z_l)`` (not detached: its gradient is the first term of App. A.5, Eq. 32).

    Numerics: ``(1 − p_w)^γ`` is computed as ``exp(γ · log σ(z_l − z_w))`` (finite gradient at p_w = 1 for any
    γ ≥ 0; exactly 1 for γ = 0); ``log(1 − exp(z_l))`` by :func:`log1mexp` with ``z_l`` clamped to ``≤ −eps``.

    Components: ``reward`` (squared reward-difference error), ``focal`` (the subtracted focal term, i.e. the
    per-example value of ``α (1 − p_w)^γ [z_w − log(1 − π(y_l))]``), ``p_w``, ``focal_weight`` = (1 − p_w)^γ.
    """
    _check_same_shape(
        pc=policy_chosen_logps, pr=policy_rejected_logps, sc=student_chosen_rewards,
        sr=student_rejected_rewards, oc=oracle_chosen_rewards, orj=oracle_rejected_rewards,
    )
    if alpha < 0 or gamma < 0:
        raise ValueError(f"alpha and gamma must be >= 0, got alpha={alpha}, gamma={gamma}")
    zw, zl, sc, sr, oc, orj = _f32(
        policy_chosen_logps, policy_rejected_logps, student_chosen_rewards, student_rejected_rewards,
        oracle_chosen_rewards, oracle_rejected_rewards,
    )
    reward_term = (oc - orj - (sc - sr)) ** 2
    d = zw - zl
    p_w = torch.sigmoid(d)
    if gamma == 0:
        focal_weight = torch.ones_like(d)
    else:
        focal_weight = torch.exp(gamma * F.logsigmoid(-d))  # (1 - p_w)^gamma
    log_odds = zw - log1mexp(zl, eps=log1mexp_eps)  # log(π(y_w) / (1 − π(y_l)))
    focal_term = alpha * focal_weight * log_odds
    losses = reward_term - focal_term
    return LossOutput(
        losses=losses,
        loss=losses.mean(),
        components={"reward": reward_term, "focal": focal_term, "p_w": p_w, "focal_weight": focal_weight},
        metrics={
            "loss": _mean(losses),
            "reward_loss": _mean(reward_term),
            "focal_loss": _mean(-focal_term),
            "p_w": _mean(p_w),
            "preference_accuracy": _mean((d > 0).float()),
            "student_reward_accuracy": _mean((sc > sr).float()),
            "logps_chosen": _mean(zw),
            "logps_rejected": _mean(zl),
        },
    )


def oracle_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    chosen_nll: torch.Tensor,
    alpha: float = 0.01,
) -> LossOutput:
    """Oracle reward-model loss, Eq. 5: ``(1 − α)(−log σ(r_w − r_l)) + α · chosen_nll``.

    ``chosen_nll`` is the mean per-token negative log-likelihood of ``y_w`` given ``x`` under the oracle's LM head
    (shape ``(B,)``). α = 0 is the plain Bradley–Terry reward loss (Eq. 2), used for the e-DPO ensemble.
    """
    _check_same_shape(rc=chosen_rewards, rr=rejected_rewards, nll=chosen_nll)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rw, rl, nll = _f32(chosen_rewards, rejected_rewards, chosen_nll)
    bt = -F.logsigmoid(rw - rl)
    losses = (1.0 - alpha) * bt + alpha * nll
    return LossOutput(
        losses=losses,
        loss=losses.mean(),
        components={"bt": bt, "nll": nll},
        metrics={
            "loss": _mean(losses),
            "bt_loss": _mean(bt),
            "nll": _mean(nll),
            "accuracy": _mean((rw > rl).float()),
            "margin": _mean(rw - rl),
        },
    )
