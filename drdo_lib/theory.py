"""Theory sanity checks on a tabular "sequence bandit" with exact gradients (notebook 00).

The policy has no context: a response is a sequence of ``response_length`` tokens from a vocabulary of ``n_actions``
symbols, and each position has its own table of logits, ``θ ∈ R^{L×V}``:

    π_θ(y) = Π_t softmax(θ_t)[y_t],     z = log π_θ(y) = Σ_t log softmax(θ_t)[y_t]   (``logp_reduction="sum"``)

(``"mean"`` divides z by L, as :func:`drdo_lib.losses.sequence_logps` does). With ``response_length=1`` this is the
classic K-armed softmax bandit. Every quantity (π of any response, the mass on responses never seen as preferred)
is exact, and gradients are exact (autograd on the logit table, or the closed forms below).

Losses are never re-implemented here: the runs call :func:`~drdo_lib.losses.dpo_loss`,
:func:`~drdo_lib.losses.edpo_loss` and :func:`~drdo_lib.losses.drdo_loss`. The only formula written out by hand is
the paper's analytic gradient of the focal term (App. A.5, Eq. 32–33), which exists to be checked against autograd.

Paper references: Prop. 1 (App. A.1), Lemma 1 (App. A.2–A.3), Lemma 2 (App. A.4), Eq. 6 and Fig. 2, Eq. 28–34.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from drdo_lib.losses import EDPO_REDUCTIONS, LOGP_REDUCTIONS, dpo_loss, drdo_loss, edpo_loss, log1mexp

log = logging.getLogger(__name__)

__all__ = [
    "TheoryConfig",
    "PreferenceData",
    "RunHistory",
    "STUDENT_REWARDS",
    "METHODS",
    "init_logits",
    "response_logps",
    "make_scenario",
    "bt_mle_margin",
    "train_reward_models",
    "run_method",
    "run_all_methods",
    "prop1_table",
    "finite_sample_table",
    "lemma2_table",
    "fig2_curves",
    "focal_gradient_profile",
    "tie_gradients",
    "focal_grad_analytic",
    "focal_grad_autograd",
    "gradient_check",
    "focal_step_decomposition",
    "focal_only_effect",
    "logp_reduction_table",
    "dropped_term_table",
    "DROPPED_TERM_POINTS",
]

STUDENT_REWARDS = ("logprob", "head")
METHODS = ("dpo", "edpo", "drdo")


@dataclass(frozen=True)
class TheoryConfig:
    """Settings of notebook 00 (profile section ``theory:``). Every field is a papermill parameter."""

    # --- loss hyperparameters (paper defaults: α = 0.1, γ = 2, β = 0.1) ---
    alpha: float = 0.1  # DRDO weight of the focal log-unlikelihood term (Eq. 6); >= 0
    gamma: float = 2.0  # DRDO focal exponent in (1 - p_w)^γ (Eq. 6); >= 0
    beta: float = 0.1  # DPO / e-DPO temperature (Eq. 3, 4); also r̂ = β·z for DRDO when student_reward="logprob"; > 0
    logp_reduction: str = "sum"  # "sum" (z = Σ_t log π, the paper's notation) or "mean" (divided by response_length)
    student_reward: str = "logprob"  # DRDO r̂: "logprob" (r̂ = β·z, couples the reward term to π) or "head" (own table)
    # --- the bandit ---
    n_actions: int = 4  # vocabulary size V: choices per token position (response_length=1: a V-armed bandit)
    response_length: int = 5  # tokens per response L
    init_scale: float = 0.5  # std of the initial logits; the initial policy is also π_ref
    steps: int = 2000  # full-batch gradient-descent steps per run
    lr: float = 1.0  # gradient-descent step size on the logit table
    log_every: int = 10  # record the trajectory every this many steps
    seed: int = 0  # seeds initial logits, responses, reward-model initialisations and finite-sample draws
    # --- the preference data of the dynamics runs (Lemma 1 / 2) ---
    n_obs_deterministic: int = 4  # times the deterministic pair (p* ≈ 1) is observed, always in the same order
    nd_counts: tuple[int, int] = (3, 2)  # non-deterministic pair (p* = ½): observations in each order (both present)
    nd_one_sided_count: int = 1  # a second p* = ½ pair whose finite sample happened to show one order only
    oracle_reward_gap: float = 3.0  # true r*(y_w) - r*(y_l) of the deterministic pair (nd pairs: 0, Prop. 1)
    # --- reward models (e-DPO ensemble, Lemma 2) ---
    ensemble_size: int = 3  # K reward models (different initialisations), as e-DPO
    rm_steps: int = 2000  # Bradley–Terry gradient steps per reward model for the dynamics runs
    rm_lr: float = 1.0  # reward-model step size
    rm_steps_list: tuple[int, ...] = (10, 100, 1000, 10000)  # Lemma 2: reward-model training lengths to compare
    lemma2_policy_steps: int = 300  # e-DPO steps per reward model in the Lemma 2 sweep (it converges fast)
    # e-DPO ensemble reduction (drdo_lib.losses.edpo_loss). "min" here on purpose: Lemma 2 is about the DRDO paper's
    # Eq. 4 (distillation without a KL term); "pessimistic" adds Fisch et al.'s forward KL (weight 0.1), the policy
    # stage's default.
    edpo_reduction: str = "min"
    # --- Prop. 1 / finite samples ---
    sample_sizes: tuple[int, ...] = (1, 2, 3, 5, 10, 100)  # labels drawn per p* = ½ pair
    n_trials: int = 2000  # simulated datasets per sample size
    # --- Fig. 2 and the focal-gradient profile ---
    fig2_gammas: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0)  # γ values of Fig. 2
    fig2_pi_rejected: float = 0.3  # π(y_l) held fixed while π(y_w) sweeps (0, 1 − π(y_l)) in Fig. 2
    # --- logp_reduction effect on log(1 − π(y_l|x)) ---
    seq_lengths: tuple[int, ...] = (10, 30, 100, 300, 500)  # response lengths in tokens
    token_logps: tuple[float, ...] = (-1.0, -2.0, -3.0)  # per-token log-probabilities

    def __post_init__(self) -> None:
        # YAML gives lists; store tuples so the dataclass stays hashable and frozen in spirit.
        for name in ("nd_counts", "rm_steps_list", "sample_sizes", "fig2_gammas", "seq_lengths", "token_logps"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = []
        if self.alpha < 0:
            problems.append(f"alpha must be >= 0, got {self.alpha}")
        if self.gamma < 0:
            problems.append(f"gamma must be >= 0, got {self.gamma}")
        if self.beta <= 0:
            problems.append(f"beta must be > 0, got {self.beta}")
        if self.logp_reduction not in LOGP_REDUCTIONS:
            problems.append(f"logp_reduction must be one of {LOGP_REDUCTIONS}, got {self.logp_reduction!r}")
        if self.student_reward not in STUDENT_REWARDS:
            problems.append(f"student_reward must be one of {STUDENT_REWARDS}, got {self.student_reward!r}")
        if self.n_actions < 2 or self.response_length < 1:
            problems.append(f"need n_actions >= 2 and response_length >= 1, got {self.n_actions}, {self.response_length}")
        if self.n_actions**self.response_length < 6:
            problems.append("n_actions ** response_length must be >= 6 (the scenario needs 6 distinct responses)")
        if self.steps < 1 or self.lemma2_policy_steps < 1 or self.log_every < 1 or self.lr <= 0 or self.rm_lr <= 0 or self.rm_steps < 1:
            problems.append("steps, log_every, rm_steps must be >= 1 and lr, rm_lr > 0")
        if self.init_scale < 0:
            problems.append(f"init_scale must be >= 0, got {self.init_scale}")
        if len(self.nd_counts) != 2 or min(self.nd_counts) < 1:
            problems.append(f"nd_counts must be two counts >= 1 (both orders present), got {self.nd_counts}")
        if self.n_obs_deterministic < 1 or self.nd_one_sided_count < 1:
            problems.append("n_obs_deterministic and nd_one_sided_count must be >= 1")
        if self.ensemble_size < 1:
            problems.append(f"ensemble_size must be >= 1, got {self.ensemble_size}")
        if self.edpo_reduction not in EDPO_REDUCTIONS:
            problems.append(f"edpo_reduction must be one of {EDPO_REDUCTIONS}, got {self.edpo_reduction!r}")
        if not self.rm_steps_list or min(self.rm_steps_list) < 1:
            problems.append(f"rm_steps_list must hold positive step counts, got {self.rm_steps_list}")
        if not self.sample_sizes or min(self.sample_sizes) < 1 or self.n_trials < 1:
            problems.append("sample_sizes must be positive and n_trials >= 1")
        if not self.fig2_gammas or min(self.fig2_gammas) < 0:
            problems.append(f"fig2_gammas must be non-negative, got {self.fig2_gammas}")
        if not 0 < self.fig2_pi_rejected < 1:
            problems.append(f"fig2_pi_rejected must be in (0, 1), got {self.fig2_pi_rejected}")
        if not self.seq_lengths or min(self.seq_lengths) < 1 or not self.token_logps or max(self.token_logps) >= 0:
            problems.append("seq_lengths must be >= 1 and token_logps < 0")
        if problems:
            raise ValueError("TheoryConfig: " + "; ".join(problems))

    def replace(self, **changes: Any) -> "TheoryConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@contextlib.contextmanager
def single_thread():
    """Run tiny-tensor loops on one intra-op thread (≈10× faster than 2 threads here); restores the setting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------------------------
# the policy
# ---------------------------------------------------------------------------------------------------------------

def init_logits(cfg: TheoryConfig) -> torch.Tensor:
    """Seeded initial logit table ``(L, V)`` (float64); the initial policy doubles as π_ref."""
    g = torch.Generator().manual_seed(cfg.seed)
    return cfg.init_scale * torch.randn(cfg.response_length, cfg.n_actions, generator=g, dtype=torch.float64)


def response_logps(logits: torch.Tensor, responses: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """z = log π(y) for each response. ``logits`` (L, V), ``responses`` (N, L) token ids → ``(N,)``.

    ``reduction="mean"`` divides by L (the per-token average, as ``sequence_logps(..., reduction="mean")``).
    """
    if reduction not in LOGP_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LOGP_REDUCTIONS}, got {reduction!r}")
    logp_table = torch.log_softmax(logits, dim=-1)  # (L, V)
    positions = torch.arange(logits.shape[0])
    z = logp_table[positions.unsqueeze(0), responses].sum(-1)  # (N,)
    return z if reduction == "sum" else z / logits.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# preference data
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class PreferenceData:
    """A finite preference data set over a handful of responses.

    ``responses`` (R, L) token ids; per observation b: ``winners[b]``, ``losers[b]`` index into ``responses`` and
    ``pair[b]`` names the unordered pair it belongs to. ``true_reward`` (R,) is r*, the ground truth that generated
    the labels (p* = σ(Δr*)). ``pair_names[k]`` → (index of y, index of y') in the orientation used for margins.
    """

    responses: torch.Tensor
    winners: torch.Tensor
    losers: torch.Tensor
    pair: torch.Tensor
    pair_members: list[tuple[int, int]]
    pair_names: list[str]
    true_reward: torch.Tensor

    @property
    def preferred_set(self) -> list[int]:
        """Indices of responses that appear at least once as preferred."""
        return sorted(set(self.winners.tolist()))

    @property
    def dispreferred_set(self) -> list[int]:
        """Indices of responses that appear at least once as dispreferred (the set C(y_l) of Lemma 1c)."""
        return sorted(set(self.losers.tolist()))

    @property
    def counts(self) -> dict[str, tuple[int, int]]:
        """Per pair: (times y ≻ y', times y' ≻ y)."""
        out = {}
        for k, (a, b) in enumerate(self.pair_members):
            m = self.pair == k
            out[self.pair_names[k]] = (int((self.winners[m] == a).sum()), int((self.winners[m] == b).sum()))
        return out


def _distinct_responses(cfg: TheoryConfig, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(cfg.seed + 1)
    seen: list[tuple[int, ...]] = []
    while len(seen) < n:
        y = tuple(torch.randint(cfg.n_actions, (cfg.response_length,), generator=g).tolist())
        if y not in seen:
            seen.append(y)
    return torch.tensor(seen, dtype=torch.long)


def make_scenario(cfg: TheoryConfig) -> PreferenceData:
    """The data set of the dynamics runs: three pairs over six distinct responses.

    - ``deterministic``: y0 ≻ y1, observed ``n_obs_deterministic`` times, always in that order; Δr* = gap.
    - ``nd_both_orders``: y2 vs y3 with p* = ½ (Δr* = 0, Prop. 1), observed ``nd_counts = (a, b)`` times in each order.
    - ``nd_one_sided``: y4 vs y5 with p* = ½ too, but its small sample (``nd_one_sided_count`` labels) happened to
      show only y4 ≻ y5 (probability 2^{1−n} for n labels): the empirical preference is 1 (Lemma 1b's premise).
    """
    resp = _distinct_responses(cfg, 6)
    a, b = cfg.nd_counts
    obs = [(0, 1, 0)] * cfg.n_obs_deterministic + [(2, 3, 1)] * a + [(3, 2, 1)] * b + [(4, 5, 2)] * cfg.nd_one_sided_count
    w, l_, p = (torch.tensor(c, dtype=torch.long) for c in zip(*obs))
    true_reward = torch.tensor([cfg.oracle_reward_gap, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    return PreferenceData(
        responses=resp, winners=w, losers=l_, pair=p,
        pair_members=[(0, 1), (2, 3), (4, 5)],
        pair_names=["deterministic", "nd_both_orders", "nd_one_sided"],
        true_reward=true_reward,
    )


# ---------------------------------------------------------------------------------------------------------------
# reward models (Bradley–Terry, tabular over the responses of the data set)
# ---------------------------------------------------------------------------------------------------------------

def bt_mle_margin(n_ab: int, n_ba: int) -> float:
    """Closed-form Bradley–Terry MLE of r(y) − r(y') from counts: logit(n_ab / (n_ab + n_ba)) (±inf if one-sided)."""
    if n_ab + n_ba == 0:
        raise ValueError("need at least one observation")
    if n_ba == 0:
        return math.inf
    if n_ab == 0:
        return -math.inf
    return math.log(n_ab / n_ba)


@single_thread()
def train_reward_models(
    data: PreferenceData, steps: int, lr: float, k: int, seed: int, init_scale: float = 0.1
) -> torch.Tensor:
    """Train ``k`` tabular BT reward models (Eq. 2) by full-batch gradient descent; returns rewards ``(k, R)``.

    Each member starts from its own seeded random rewards (like the paper's different reward-head initialisations).
    A pair seen in one order only has no finite optimum: its reward gap grows like log(steps).
    """
    g = torch.Generator().manual_seed(seed + 1000)
    r = (init_scale * torch.randn(k, data.responses.shape[0], generator=g, dtype=torch.float64)).requires_grad_(True)
    for _ in range(steps):
        margin = r[:, data.winners] - r[:, data.losers]  # (k, B)
        loss = -F.logsigmoid(margin).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, r)
        with torch.no_grad():
            r -= lr * grad
    return r.detach()


# ---------------------------------------------------------------------------------------------------------------
# training runs
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class RunHistory:
    """Trajectory of one run: arrays indexed by recorded step."""

    method: str
    steps: np.ndarray
    loss: np.ndarray
    margins: dict[str, np.ndarray]  # per pair: β·[(z_y − z_y^ref) − (z_y' − z_y'^ref)], z as the loss reduces it
    logp_gaps: dict[str, np.ndarray]  # per pair: z_y − z_y' (sum-reduced log-probabilities)
    probs: np.ndarray  # (T, R) π of each data-set response
    mass_dispreferred: np.ndarray  # π(C(y_l)): total mass on responses that appear as dispreferred
    mass_preferred: np.ndarray  # total mass on responses that appear as preferred
    mass_never_preferred: np.ndarray  # 1 − mass_preferred: responses never seen as preferred (incl. unseen ones)
    mass_unseen: np.ndarray  # mass on responses absent from the data set
    final_logits: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]

    def final(self) -> dict[str, float]:
        """Last recorded values as plain floats."""
        out = {"loss": float(self.loss[-1])}
        out.update({f"margin_{k}": float(v[-1]) for k, v in self.margins.items()})
        out.update({
            "mass_dispreferred": float(self.mass_dispreferred[-1]),
            "mass_preferred": float(self.mass_preferred[-1]),
            "mass_never_preferred": float(self.mass_never_preferred[-1]),
            "mass_unseen": float(self.mass_unseen[-1]),
        })
        return out


def _method_loss(method, cfg, data, logits, ref_z, head, oracle_rewards):
    z = response_logps(logits, data.responses, cfg.logp_reduction)
    zw, zl = z[data.winners], z[data.losers]
    if method == "dpo":
        return dpo_loss(zw, zl, ref_z[data.winners], ref_z[data.losers], beta=cfg.beta).loss
    if method == "edpo":
        return edpo_loss(
            zw, zl, ref_z[data.winners], ref_z[data.losers],
            oracle_rewards[:, data.winners], oracle_rewards[:, data.losers],
            beta=cfg.beta, reduction=cfg.edpo_reduction,
        ).loss
    if method == "drdo":
        rhat = cfg.beta * z if cfg.student_reward == "logprob" else head
        return drdo_loss(
            zw, zl, rhat[data.winners], rhat[data.losers],
            oracle_rewards[data.winners], oracle_rewards[data.losers],
            alpha=cfg.alpha, gamma=cfg.gamma,
        ).loss
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


@single_thread()
def run_method(
    method: str,
    cfg: TheoryConfig,
    data: PreferenceData,
    oracle_rewards: torch.Tensor | None = None,
    steps: int | None = None,
) -> RunHistory:
    """Full-batch gradient descent of one loss on the bandit; returns the recorded trajectory.

    ``oracle_rewards``: e-DPO needs ``(K, R)`` reward-model rewards; DRDO needs ``(R,)`` oracle rewards (default:
    the true r* of ``data``); DPO ignores it. π_ref is the initial policy.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "edpo" and (oracle_rewards is None or oracle_rewards.dim() != 2):
        raise ValueError("e-DPO needs reward-model rewards of shape (K, R); see train_reward_models")
    if method == "drdo" and oracle_rewards is None:
        oracle_rewards = data.true_reward
    steps = cfg.steps if steps is None else steps
    logits0 = init_logits(cfg)
    ref_z = response_logps(logits0, data.responses, cfg.logp_reduction).detach()
    logits = logits0.clone().requires_grad_(True)
    head = torch.zeros(data.responses.shape[0], dtype=torch.float64, requires_grad=True)
    params = [logits, head] if (method == "drdo" and cfg.student_reward == "head") else [logits]

    pref, disp = data.preferred_set, data.dispreferred_set
    rec: dict[str, list] = {k: [] for k in ("step", "loss", "probs", "mdisp", "mpref", "munseen")}
    rec_m: dict[str, list] = {n: [] for n in data.pair_names}
    rec_g: dict[str, list] = {n: [] for n in data.pair_names}

    def record(step: int, loss_val: float) -> None:
        with torch.no_grad():
            zs = response_logps(logits, data.responses, "sum")
            zr = response_logps(logits, data.responses, cfg.logp_reduction)
            probs = zs.exp()
            rec["step"].append(step)
            rec["loss"].append(loss_val)
            rec["probs"].append(probs.numpy().copy())
            rec["mdisp"].append(float(probs[disp].sum()))
            rec["mpref"].append(float(probs[pref].sum()))
            rec["munseen"].append(1.0 - float(probs.sum()))
            for k, (a, b) in enumerate(data.pair_members):
                name = data.pair_names[k]
                dz = zs[a] - zs[b]
                rec_g[name].append(float(dz))
                rec_m[name].append(float(cfg.beta * ((zr[a] - ref_z[a]) - (zr[b] - ref_z[b]))))

    for step in range(steps + 1):
        loss = _method_loss(method, cfg, data, logits, ref_z, head, oracle_rewards)
        if step % cfg.log_every == 0 or step == steps:
            record(step, float(loss.detach()))
        if step == steps:
            break
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for p_, g_ in zip(params, grads):
                if g_ is not None:
                    p_ -= cfg.lr * g_
    probs = np.stack(rec["probs"])
    return RunHistory(
        method=method,
        steps=np.asarray(rec["step"]),
        loss=np.asarray(rec["loss"]),
        margins={k: np.asarray(v) for k, v in rec_m.items()},
        logp_gaps={k: np.asarray(v) for k, v in rec_g.items()},
        probs=probs,
        mass_dispreferred=np.asarray(rec["mdisp"]),
        mass_preferred=np.asarray(rec["mpref"]),
        mass_never_preferred=1.0 - np.asarray(rec["mpref"]),
        mass_unseen=np.asarray(rec["munseen"]),
        final_logits=logits.detach(),
    )


def run_all_methods(cfg: TheoryConfig, steps: int | None = None) -> tuple[PreferenceData, torch.Tensor, dict[str, RunHistory]]:
    """DPO, e-DPO (trained BT ensemble) and DRDO (oracle = true r*) on :func:`make_scenario`'s data.

    Returns ``(data, reward_models (K, R), {method: history})``.
    """
    data = make_scenario(cfg)
    rms = train_reward_models(data, cfg.rm_steps, cfg.rm_lr, cfg.ensemble_size, cfg.seed)
    runs = {
        "dpo": run_method("dpo", cfg, data, steps=steps),
        "edpo": run_method("edpo", cfg, data, oracle_rewards=rms, steps=steps),
        "drdo": run_method("drdo", cfg, data, steps=steps),
    }
    return data, rms, runs


# ---------------------------------------------------------------------------------------------------------------
# Prop. 1, finite samples, Lemma 2
# ---------------------------------------------------------------------------------------------------------------

def prop1_table(p_stars: Sequence[float] = (0.5, 0.6, 0.75, 0.9, 0.99)) -> list[dict[str, float]]:
    """Prop. 1: the BT reward gap that reproduces p*, Δr = logit(p*) (0 exactly at p* = ½), checked by solving
    σ(Δ) = p* numerically (bisection) rather than by the closed form."""
    rows = []
    for p in p_stars:
        lo, hi = -50.0, 50.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if 1.0 / (1.0 + math.exp(-mid)) < p:
                lo = mid
            else:
                hi = mid
        rows.append({"p_star": p, "delta_r_solved": 0.5 * (lo + hi), "delta_r_logit": math.log(p / (1 - p))})
    return rows


def finite_sample_table(cfg: TheoryConfig, p_star: float = 0.5) -> list[dict[str, float]]:
    """Draw ``n`` labels of a p* pair ``n_trials`` times; the BT/DPO optimum margin is logit(p̂).

    Columns: exact and simulated probability that the sample is one-sided (p̂ ∈ {0, 1}: no finite optimum, the
    margin diverges, Lemma 1b), and the mean |logit(p̂)| over the samples where it is finite.
    """
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for n in cfg.sample_sizes:
        wins = rng.binomial(n, p_star, size=cfg.n_trials)
        one_sided = (wins == 0) | (wins == n)
        finite = ~one_sided
        with np.errstate(divide="ignore"):
            gaps = np.abs(np.log(wins[finite] / (n - wins[finite]))) if finite.any() else np.array([np.nan])
        rows.append({
            "n_labels": n,
            "p_one_sided_exact": p_star**n + (1 - p_star) ** n,
            "p_one_sided_simulated": float(one_sided.mean()),
            "mean_abs_finite_gap": float(np.mean(gaps)) if gaps.size else float("nan"),
        })
    return rows


def lemma2_table(cfg: TheoryConfig) -> list[dict[str, float]]:
    """Lemma 2: e-DPO distils whatever gap the reward models learnt. For each reward-model training length, the
    ensemble's gap on the one-sided p* = ½ pair and on the both-orders pair, and the e-DPO policy margin after
    ``cfg.lemma2_policy_steps`` steps (margin = β·h; e-DPO's optimum is β·h = Δr̂)."""
    data = make_scenario(cfg)
    rows = []
    for n in cfg.rm_steps_list:
        rms = train_reward_models(data, n, cfg.rm_lr, cfg.ensemble_size, cfg.seed)
        hist = run_method("edpo", cfg, data, oracle_rewards=rms, steps=cfg.lemma2_policy_steps)
        row = {"rm_steps": n}
        for k, (a, b) in enumerate(data.pair_members):
            name = data.pair_names[k]
            row[f"rm_gap_{name}"] = float((rms[:, a] - rms[:, b]).mean())
            row[f"edpo_margin_{name}"] = float(hist.margins[name][-1])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Fig. 2 and the focal gradient
# ---------------------------------------------------------------------------------------------------------------

def _focal_only(zw, zl, alpha, gamma):
    """DRDO loss with the reward term zeroed: exactly −α(1 − p_w)^γ log(π_w / (1 − π_l)) per example."""
    zeros = torch.zeros_like(zw)
    return drdo_loss(zw, zl, zeros, zeros, zeros, zeros, alpha=alpha, gamma=gamma)


def fig2_curves(gammas: Sequence[float], pi_rejected: float = 0.3, alpha: float = 1.0, n: int = 400) -> dict[str, Any]:
    """Fig. 2: the DRDO preference loss −α(1 − p_w)^γ · log(π_w / (1 − π_l)) against the log-unlikelihood ratio
    x = log(π_w / (1 − π_l)), for each γ. π(y_l) is held at ``pi_rejected`` and π(y_w) sweeps (0, 1 − π_l), so
    x ∈ (−∞, 0] and p_w = σ(z_w − z_l) rises with x. (The paper does not state how p_w and x are tied in its
    figure; this is one consistent choice, stated.) Values come from :func:`drdo_loss`."""
    pw_max = 1.0 - pi_rejected
    pi_w = torch.logspace(-4, math.log10(pw_max), n, dtype=torch.float64)
    zw = pi_w.log().float()
    zl = torch.full_like(zw, math.log(pi_rejected))
    out: dict[str, Any] = {"gammas": list(gammas), "pi_rejected": pi_rejected, "alpha": alpha}
    for g in gammas:
        res = _focal_only(zw, zl, alpha, g)
        out[g] = {
            "x": (zw - log1mexp(zl)).numpy(),
            "p_w": res.components["p_w"].numpy(),
            "loss": res.losses.numpy(),
        }
    return out


def focal_gradient_profile(
    gammas: Sequence[float], alpha: float = 0.1, logp_rejected: float = -10.0, n: int = 201
) -> dict[str, Any]:
    """Gradient of the focal term w.r.t. (z_w, z_l) by autograd through :func:`drdo_loss`, as p_w = σ(z_w − z_l)
    sweeps (0.01, 0.999) at fixed z_l. Also the focal weight (1 − p_w)^γ and DPO's per-example gradient scale
    σ(−h) (β = 1, no reference) for comparison."""
    p_w = torch.linspace(0.01, 0.999, n, dtype=torch.float64)
    d = torch.log(p_w / (1 - p_w))
    out: dict[str, Any] = {"p_w": p_w.numpy(), "gammas": list(gammas), "logp_rejected": logp_rejected}
    for g in gammas:
        zw = (logp_rejected + d).float().clamp(max=-1e-6).requires_grad_(True)
        zl = torch.full_like(zw, logp_rejected).requires_grad_(True)
        res = _focal_only(zw, zl, alpha, g)
        gw, gl = torch.autograd.grad(res.losses.sum(), [zw, zl])
        out[g] = {
            "weight": res.components["focal_weight"].detach().numpy(),
            "grad_zw": gw.numpy(),
            "grad_zl": gl.numpy(),
            "grad_norm": torch.sqrt(gw**2 + gl**2).numpy(),
        }
    out["dpo_scale"] = torch.sigmoid(-d).numpy()
    return out


def tie_gradients(cfg: TheoryConfig, logp: float = -2.0) -> dict[str, float]:
    """A p* = ½ pair observed once in each order, at a tie (z_y = z_y' = ``logp``, policy = reference).

    DPO's two per-example gradients cancel exactly (the pair teaches nothing, Lemma 1a). DRDO's focal term does
    not cancel: both orders ask to raise log(π_w / (1 − π_l)), i.e. both responses' log-probabilities.
    Returns the summed gradient w.r.t. (z_y, z_y') for each loss (reward term of DRDO zero: Δr* = 0, r̂ tied).
    """
    def grads(fn):
        z = torch.tensor([logp, logp], requires_grad=True)
        zw, zl = torch.stack([z[0], z[1]]), torch.stack([z[1], z[0]])
        loss = fn(zw, zl).losses.sum()
        (g,) = torch.autograd.grad(loss, z)
        return g.tolist()

    ref = torch.tensor([logp, logp])
    dpo = grads(lambda zw, zl: dpo_loss(zw, zl, ref, ref, beta=cfg.beta))
    drdo = grads(lambda zw, zl: _focal_only(zw, zl, cfg.alpha, cfg.gamma))
    return {"dpo_grad_y": dpo[0], "dpo_grad_y'": dpo[1], "drdo_grad_y": drdo[0], "drdo_grad_y'": drdo[1]}


def _grad_z(logits: torch.Tensor, response: torch.Tensor, reduction: str) -> torch.Tensor:
    """Closed-form ∇_θ z for one response: row t is onehot(y_t) − softmax(θ_t) (÷ L for ``mean``)."""
    g = F.one_hot(response, logits.shape[1]).to(logits.dtype) - torch.softmax(logits, dim=-1)
    return g if reduction == "sum" else g / logits.shape[0]


def focal_grad_analytic(
    logits: torch.Tensor, y_w: torch.Tensor, y_l: torch.Tensor, alpha: float, gamma: float, reduction: str = "sum"
) -> torch.Tensor:
    """The paper's gradient of −α(1 − p_w)^γ log(π_w / (1 − π_l)) w.r.t. the logit table (App. A.5, Eq. 32–33):

        αγ(1 − p_w)^γ p_w (∇z_w − ∇z_l) · log(π_w / (1 − π_l))  −  α(1 − p_w)^γ (∇π_w / π_w + ∇π_l / (1 − π_l))

    with ∇π_w/π_w = ∇z_w, ∇π_l = π_l ∇z_l and π = exp(z) for the chosen reduction (for ``mean``, z is the
    per-token average and "π" = exp(z) is the geometric-mean token probability, as in the loss). Note the sign of
    the last term: the gradient contains −α(1 − p_w)^γ π_l/(1 − π_l)·∇z_l, so a descent step *raises* z_l.
    """
    logits = logits.detach().to(torch.float64)
    zw = response_logps(logits, y_w.unsqueeze(0), reduction)[0]
    zl = response_logps(logits, y_l.unsqueeze(0), reduction)[0]
    gw, gl = _grad_z(logits, y_w, reduction), _grad_z(logits, y_l, reduction)
    p_w = torch.sigmoid(zw - zl)
    pi_l = zl.exp()
    log_odds = zw - torch.log1p(-pi_l)
    weight = (1 - p_w) ** gamma
    eq32 = alpha * gamma * weight * p_w * (gw - gl) * log_odds
    eq33 = -alpha * weight * (gw + pi_l / (1 - pi_l) * gl)
    return eq32 + eq33


def focal_grad_autograd(
    logits: torch.Tensor, y_w: torch.Tensor, y_l: torch.Tensor, alpha: float, gamma: float, reduction: str = "sum"
) -> torch.Tensor:
    """Autograd of :func:`drdo_loss` (reward term zero) w.r.t. the logit table, for the same single pair."""
    th = logits.detach().clone().requires_grad_(True)
    z = response_logps(th, torch.stack([y_w, y_l]), reduction)
    res = _focal_only(z[:1], z[1:], alpha, gamma)
    (g,) = torch.autograd.grad(res.loss, th)
    return g


@single_thread()
def gradient_check(cfg: TheoryConfig, n_cases: int = 20) -> list[dict[str, float]]:
    """Eq. 32–33 vs autograd on ``n_cases`` seeded random logit tables and pairs, for each reduction and each
    γ in ``fig2_gammas``. Returns rows with the max absolute and relative difference."""
    g = torch.Generator().manual_seed(cfg.seed + 7)
    rows = []
    for reduction in LOGP_REDUCTIONS:
        for gamma in cfg.fig2_gammas:
            max_abs, max_rel = 0.0, 0.0
            for _ in range(n_cases):
                logits = 1.5 * torch.randn(cfg.response_length, cfg.n_actions, generator=g, dtype=torch.float64)
                y = torch.randint(cfg.n_actions, (2, cfg.response_length), generator=g)
                a = focal_grad_analytic(logits, y[0], y[1], cfg.alpha, gamma, reduction)
                b = focal_grad_autograd(logits, y[0], y[1], cfg.alpha, gamma, reduction).to(torch.float64)
                diff = float((a - b).abs().max())
                max_abs = max(max_abs, diff)
                max_rel = max(max_rel, diff / max(float(a.abs().max()), 1e-12))
            rows.append({"reduction": reduction, "gamma": gamma, "max_abs_diff": max_abs, "max_rel_diff": max_rel})
    return rows


def focal_step_decomposition(
    logits: torch.Tensor, y_w: torch.Tensor, y_l: torch.Tensor, alpha: float, gamma: float, reduction: str = "sum"
) -> dict[str, float]:
    """First-order change of z_w and z_l under one unit gradient-descent step (−∇) on the focal term, split into
    the three parts of Eq. 32–33: the focal-weight part (Eq. 32), the ∇π_w/π_w part and the ∇π_l/(1 − π_l) part
    (Eq. 33). A positive ``dzl_*`` means that part raises log π(y_l)."""
    logits = logits.detach().to(torch.float64)
    zw = response_logps(logits, y_w.unsqueeze(0), reduction)[0]
    zl = response_logps(logits, y_l.unsqueeze(0), reduction)[0]
    gw, gl = _grad_z(logits, y_w, reduction), _grad_z(logits, y_l, reduction)
    p_w = torch.sigmoid(zw - zl)
    pi_l = zl.exp()
    weight = (1 - p_w) ** gamma
    parts = {
        "eq32_focal_weight": alpha * gamma * weight * p_w * (gw - gl) * (zw - torch.log1p(-pi_l)),
        "eq33_pi_w": -alpha * weight * gw,
        "eq33_pi_l": -alpha * weight * pi_l / (1 - pi_l) * gl,
    }
    out: dict[str, float] = {}
    total_w, total_l = 0.0, 0.0
    for name, grad in parts.items():
        out[f"dzw_{name}"] = float((gw * -grad).sum())
        out[f"dzl_{name}"] = float((gl * -grad).sum())
        total_w += out[f"dzw_{name}"]
        total_l += out[f"dzl_{name}"]
    out["dzw_total"], out["dzl_total"] = total_w, total_l
    return out


@single_thread()
def focal_only_effect(
    cfg: TheoryConfig, response_length: int = 1, steps: int = 200, alpha: float = 1.0, gamma: float | None = None
) -> dict[str, float]:
    """Gradient descent on the focal term alone (no reward term) for one pair y_w ≻ y_l from a uniform policy.

    Returns π(y_w), π(y_l) and p_w before and after: shows which way the term moves π(y_l) (see the note in
    :func:`focal_grad_analytic`). ``response_length=1`` is a ``n_actions``-armed bandit, where π(y_l) is large
    enough for 1/(1 − π_l) to matter.
    """
    logits = torch.zeros(response_length, cfg.n_actions, dtype=torch.float64, requires_grad=True)
    y = torch.stack([torch.zeros(response_length, dtype=torch.long), torch.ones(response_length, dtype=torch.long)])
    out: dict[str, float] = {}
    for step in range(steps + 1):
        z = response_logps(logits, y, "sum")
        if step in (0, steps):
            tag = "start" if step == 0 else "end"
            zd = z.detach()
            out[f"pi_w_{tag}"] = float(zd[0].exp())
            out[f"pi_l_{tag}"] = float(zd[1].exp())
            out[f"p_w_{tag}"] = float(torch.sigmoid(zd[0] - zd[1]))
        if step == steps:
            break
        loss = _focal_only(z[:1], z[1:], alpha, cfg.gamma if gamma is None else gamma).loss
        (g,) = torch.autograd.grad(loss, logits)
        with torch.no_grad():
            logits -= cfg.lr * g
    return out


#: (label, z_w, z_l): a tie at summed log-probs of ~100 tokens at −0.16 nats/token, and the same tie with
#: ``logp_reduction="mean"`` (per-token log-probs of a pretrained LM are typically −0.1…−0.2).
DROPPED_TERM_POINTS = (("sum, 100 tokens x -0.16", -16.0, -16.0), ("mean, -0.15 per token", -0.15, -0.15))


def dropped_term_table(
    points: Sequence[tuple[str, float, float]] = DROPPED_TERM_POINTS,
    alpha: float = 0.1,
    gammas: Sequence[float] = (2.0, 0.0),
) -> list[dict[str, Any]]:
    """The term App. A.5 drops, with numbers from autograd.

    For the focal part of DRDO's loss, L = −α w X with w = (1 − p_w)^γ, p_w = σ(z_w − z_l) and
    X = z_w − log(1 − e^{z_l}) (the log-odds), the gradient w.r.t. (z_w, z_l) has two parts:

    - through the focal weight (App. A.5 Eq. 32, dropped there as "α small"): ``αγ w p_w X · (+1, −1)``;
    - through the log-odds (Eq. 33, kept): ``−α w · (1, π_l/(1 − π_l))``.

    Both carry the same α, so α cannot justify dropping one: their ratio on z_w is γ·p_w·|X| (16 at a tie at
    z = −16, summed log-probs), i.e. the dropped part is the dominant contrastive force; with γ = 0 it vanishes and
    ∂L/∂z_l ≈ 0 at summed log-probs. With ``logp_reduction="mean"`` at per-token log-probs of a pretrained LM
    (z ≈ −0.15) X > 0 and π_l/(1 − π_l) is large, so a descent step (−∇) *lowers* z_w and *raises* z_l.

    Each row: the point, γ, p_w, X, the autograd gradient of :func:`drdo_loss` (reward term zero) ``dL_dzw`` /
    ``dL_dzl``, the two parts ``eq32_*`` / ``eq33_*`` (closed forms above; ``eq32 + eq33`` equals autograd, tested),
    ``ratio_eq32_eq33_zw`` = |eq32_dzw| / |eq33_dzw| and the direction of a descent step on each log-prob.
    """
    rows = []
    for label, zw0, zl0 in points:
        for gamma in gammas:
            zw = torch.tensor([zw0], dtype=torch.float64, requires_grad=True)
            zl = torch.tensor([zl0], dtype=torch.float64, requires_grad=True)
            res = _focal_only(zw, zl, alpha, gamma)
            gw, gl = torch.autograd.grad(res.loss, [zw, zl])
            with torch.no_grad():
                p = torch.sigmoid(zw - zl)
                w = (1 - p) ** gamma
                x = zw - log1mexp(zl)
                pi_l = zl.exp()
                eq32 = alpha * gamma * w * p * x
                eq33_w, eq33_l = -alpha * w, -alpha * w * pi_l / (1 - pi_l)
            rows.append({
                "point": label, "z_w": zw0, "z_l": zl0, "gamma": gamma, "alpha": alpha,
                "p_w": float(p), "log_odds": float(x),
                "dL_dzw": float(gw), "dL_dzl": float(gl),
                "eq32_dzw": float(eq32) + 0.0, "eq32_dzl": float(-eq32) + 0.0,
                "eq33_dzw": float(eq33_w), "eq33_dzl": float(eq33_l),
                "ratio_eq32_eq33_zw": float(eq32.abs() / eq33_w.abs()),
                "descent_z_w": "up" if float(gw) < 0 else ("down" if float(gw) > 0 else "still"),
                "descent_z_l": "up" if float(gl) < -1e-6 else ("down" if float(gl) > 1e-6 else "still"),
            })
    return rows


# ---------------------------------------------------------------------------------------------------------------
# logp_reduction: sum vs mean
# ---------------------------------------------------------------------------------------------------------------

def logp_reduction_table(seq_lengths: Sequence[int], token_logps: Sequence[float]) -> list[dict[str, float]]:
    """log(1 − π(y_l|x)) (by :func:`log1mexp`) and its sensitivity d/dz_l = −π/(1 − π), for a response of L tokens
    with per-token log-probability u: z_sum = L·u, z_mean = u."""
    rows = []
    for u in token_logps:
        for L in seq_lengths:
            row: dict[str, float] = {"tokens": L, "token_logp": u}
            for name, z in (("sum", L * u), ("mean", u)):
                zt = torch.tensor([z], dtype=torch.float64, requires_grad=True)
                val = log1mexp(zt)
                (gz,) = torch.autograd.grad(val.sum(), zt)
                row[f"z_{name}"] = z
                row[f"log1m_pi_{name}"] = float(val.detach())
                row[f"dlog1m_dz_{name}"] = float(gz)
            rows.append(row)
    return rows
