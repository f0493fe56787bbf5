"""Tests of drdo_lib.losses, each against an independent computation (the loss contract of drdo_lib.losses)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from drdo_lib.losses import (
    cdpo_loss,
    dpo_loss,
    drdpo_loss,
    drdo_loss,
    edpo_loss,
    ipo_loss,
    log1mexp,
    oracle_loss,
    rdpo_loss,
    sequence_logps,
)

ATOL = 1e-6


def _rand_logps(b, gen, lo=-30.0, hi=-0.5, dtype=torch.float64):
    return (torch.rand(b, generator=gen, dtype=dtype) * (hi - lo) + lo)


# ---------------------------------------------------------------------------------------------------------------
# DRDO: the paper's analytic gradient (App. A.5, Eq. 32-33) equals autograd
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha,gamma", [(0.1, 2.0), (1.0, 0.0), (0.5, 1.0), (0.1, 5.0), (0.3, 0.5)])
def test_drdo_focal_gradient_matches_paper_eq32_33(alpha, gamma):
    gen = torch.Generator().manual_seed(0)
    b = 64
    # log-probs in float64 so the comparison is about the formula, not rounding; include p_w near 1/2 and near 1
    zw = _rand_logps(b, gen, -8.0, -0.05).requires_grad_(True)
    zl = _rand_logps(b, gen, -8.0, -0.05).requires_grad_(True)
    zero = torch.zeros(b, dtype=torch.float64)
    out = drdo_loss(zw, zl, zero, zero, zero, zero, alpha=alpha, gamma=gamma)
    # drdo_loss computes in float32; compare autograd of the per-example sum with the analytic formula
    gw, gl = torch.autograd.grad(out.losses.sum(), [zw, zl])

    zw_, zl_ = zw.detach(), zl.detach()
    p = torch.sigmoid(zw_ - zl_)
    pi_l = torch.exp(zl_)
    log_ratio = zw_ - torch.log(1 - pi_l)  # log(π_w / (1 − π_l))
    # Eq. 32: αγ(1−p_w)^γ p_w (∇z_w − ∇z_l) · log(π_w / (1 − π_l))
    first = alpha * gamma * (1 - p) ** gamma * p * log_ratio
    # Eq. 33: −α(1−p_w)^γ (∇π_w/π_w + ∇π_l/(1−π_l)); ∇π_w/π_w = ∇z_w and ∇π_l = π_l ∇z_l
    dzw = first - alpha * (1 - p) ** gamma
    dzl = -first - alpha * (1 - p) ** gamma * pi_l / (1 - pi_l)
    torch.testing.assert_close(gw, dzw, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gl, dzl, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Closed forms of every loss on random inputs (written out here independently of the implementation)
# ---------------------------------------------------------------------------------------------------------------
def test_dpo_and_ipo_closed_form():
    gen = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (_rand_logps(16, gen, dtype=torch.float32) for _ in range(4))
    beta = 0.3
    h = (pc - rc) - (pr - rr)
    expected = torch.tensor([math.log1p(math.exp(-beta * v)) for v in h.tolist()])
    out = dpo_loss(pc, pr, rc, rr, beta=beta)
    torch.testing.assert_close(out.losses, expected, atol=ATOL, rtol=1e-6)
    assert out.loss.shape == () and torch.isclose(out.loss, expected.mean(), atol=ATOL)
    assert out.metrics["reward_accuracy"] == pytest.approx(float((h > 0).float().mean()))
    ipo = ipo_loss(pc, pr, rc, rr, beta=beta)
    torch.testing.assert_close(ipo.losses, (h - 1 / (2 * beta)) ** 2, atol=1e-4, rtol=1e-6)


def test_oracle_loss_eq5():
    gen = torch.Generator().manual_seed(2)
    rw, rl = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    nll = torch.rand(8, generator=gen) * 5
    alpha = 0.01
    expected = [(1 - alpha) * math.log1p(math.exp(-(a - b))) + alpha * n for a, b, n in zip(rw.tolist(), rl.tolist(), nll.tolist())]
    out = oracle_loss(rw, rl, nll, alpha=alpha)
    torch.testing.assert_close(out.losses, torch.tensor(expected), atol=ATOL, rtol=1e-6)
    assert out.metrics["accuracy"] == pytest.approx(float((rw > rl).float().mean()))
    # alpha = 0 is the plain Bradley-Terry reward loss (Eq. 2)
    torch.testing.assert_close(oracle_loss(rw, rl, nll, alpha=0.0).losses, -F.logsigmoid(rw - rl), atol=ATOL, rtol=0)


def test_drdo_closed_form():
    gen = torch.Generator().manual_seed(3)
    b = 32
    zw, zl = _rand_logps(b, gen, -20, -0.01, torch.float32), _rand_logps(b, gen, -20, -0.01, torch.float32)
    sc, sr, oc, orj = (torch.randn(b, generator=gen) for _ in range(4))
    alpha, gamma = 0.1, 2.0
    expected = []
    for i in range(b):
        p = 1 / (1 + math.exp(-(zw[i].item() - zl[i].item())))
        reward = (oc[i].item() - orj[i].item() - (sc[i].item() - sr[i].item())) ** 2
        focal = alpha * (1 - p) ** gamma * (zw[i].item() - math.log(1 - math.exp(zl[i].item())))
        expected.append(reward - focal)
    out = drdo_loss(zw, zl, sc, sr, oc, orj, alpha=alpha, gamma=gamma)
    torch.testing.assert_close(out.losses, torch.tensor(expected), atol=1e-5, rtol=1e-6)
    assert out.losses.shape == (b,)


# ---------------------------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------------------------
def test_drdo_alpha_zero_is_pure_reward_regression():
    gen = torch.Generator().manual_seed(4)
    zw, zl = _rand_logps(10, gen, dtype=torch.float32), _rand_logps(10, gen, dtype=torch.float32)
    sc, sr, oc, orj = (torch.randn(10, generator=gen) for _ in range(4))
    out = drdo_loss(zw, zl, sc, sr, oc, orj, alpha=0.0, gamma=2.0)
    torch.testing.assert_close(out.losses, (oc - orj - (sc - sr)) ** 2, atol=ATOL, rtol=0)


def test_drdo_gamma_zero_drops_the_focal_modulation():
    gen = torch.Generator().manual_seed(5)
    zw, zl = _rand_logps(10, gen, dtype=torch.float32), _rand_logps(10, gen, dtype=torch.float32)
    zeros = torch.zeros(10)
    out = drdo_loss(zw, zl, zeros, zeros, zeros, zeros, alpha=0.5, gamma=0.0)
    expected = -0.5 * (zw - torch.log1p(-torch.exp(zl)))
    torch.testing.assert_close(out.losses, expected, atol=ATOL, rtol=1e-6)
    assert torch.all(out.components["focal_weight"] == 1)


def test_drdo_reward_term_zero_when_differences_match():
    gen = torch.Generator().manual_seed(6)
    oc, orj = torch.randn(12, generator=gen), torch.randn(12, generator=gen)
    shift = torch.randn(12, generator=gen)  # pointwise rewards differ, differences match
    zw, zl = _rand_logps(12, gen, dtype=torch.float32), _rand_logps(12, gen, dtype=torch.float32)
    out = drdo_loss(zw, zl, oc + shift, orj + shift, oc, orj, alpha=0.1, gamma=2.0)
    torch.testing.assert_close(out.components["reward"], torch.zeros(12), atol=1e-10, rtol=0)
    assert out.metrics["reward_loss"] == pytest.approx(0.0, abs=1e-10)


def test_edpo_k1_equals_plain_distillation_and_reductions():
    gen = torch.Generator().manual_seed(7)
    b, beta = 20, 0.1
    pc, pr, rc, rr = (_rand_logps(b, gen, dtype=torch.float32) for _ in range(4))
    oc, orj = torch.randn(3, b, generator=gen), torch.randn(3, b, generator=gen)
    h = (pc - rc) - (pr - rr)
    per_member = (oc - orj - beta * h) ** 2  # (K, B), Eq. 4
    # K = 1 (given as (B,) and as (1, B)) is plain reward distillation
    for o1, o2 in ((oc[0], orj[0]), (oc[:1], orj[:1])):
        for red in ("min", "mean", "max"):
            out = edpo_loss(pc, pr, rc, rr, o1, o2, beta=beta, reduction=red)
            torch.testing.assert_close(out.losses, per_member[0], atol=1e-5, rtol=1e-6)
    means = per_member.mean(1)
    for red, exp_loss, exp_losses in (
        ("min", means.min(), per_member[means.argmin()]),
        ("max", means.max(), per_member[means.argmax()]),
        ("mean", means.mean(), per_member.mean(0)),
    ):
        out = edpo_loss(pc, pr, rc, rr, oc, orj, beta=beta, reduction=red)
        assert torch.isclose(out.loss, exp_loss, atol=1e-5), red
        torch.testing.assert_close(out.losses, exp_losses, atol=1e-5, rtol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        edpo_loss(pc, pr, rc, rr, oc, orj, reduction="median")
    with pytest.raises(ValueError, match=r"\(K, B\)"):
        edpo_loss(pc, pr, rc, rr, oc[:, :5], orj[:, :5])


def test_edpo_pessimistic_worked_example():
    """Fisch et al. (TMLR 2025) pessimistic ensemble distillation on a hand-computed batch (B = 2, K = 2, β = ½).

    h = (z_w − z_w^ref) − (z_l − z_l^ref) = [1, 1], so βh = [½, ½].
    member 0: Δr = [1.5, 0.5] → residuals [1, 0] → squares [1, 0], batch mean ½
    member 1: Δr = [0.5, 2.5] → residuals [0, 2] → squares [0, 4], batch mean 2
    forward KL estimate per pair ½[(z_w^ref − z_w) + (z_l^ref − z_l)] = [0, ½], batch mean ¼
    pessimistic, kl_coef 0.2: min(½, 2) + 0.2·¼ = 0.55;   min: ½;   mean: 1.25;   max: 2.
    ∂/∂z_w of example 0 (1/B = ½): distillation 2·1·(−β)·½ = −½, KL 0.2·(−½)·½ = −0.05 → −0.55.
    """
    pc = torch.tensor([-1.0, -2.0], requires_grad=True)
    pr = torch.tensor([-2.0, -2.0], requires_grad=True)
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-1.5, -1.0])
    oc = torch.tensor([[1.5, 0.5], [0.5, 2.5]])
    orj = torch.zeros(2, 2)
    out = edpo_loss(pc, pr, rc, rr, oc, orj, beta=0.5, reduction="pessimistic", kl_coef=0.2)
    assert out.loss.item() == pytest.approx(0.55, abs=1e-6)
    torch.testing.assert_close(out.losses, torch.tensor([1.0 + 0.2 * 0.0, 0.0 + 0.2 * 0.5]), atol=1e-6, rtol=0)
    assert out.metrics["selected_member"] == 0.0
    assert out.metrics["forward_kl"] == pytest.approx(0.25, abs=1e-6)
    assert out.metrics["member_0_loss"] == pytest.approx(0.5) and out.metrics["member_1_loss"] == pytest.approx(2.0)
    gw, gl = torch.autograd.grad(out.loss, [pc, pr])
    # example 0: −0.55 (above); example 1: residual 0 → KL only: 0.2·(−½)·½ = −0.05
    torch.testing.assert_close(gw, torch.tensor([-0.55, -0.05]), atol=1e-6, rtol=0)
    # ∂/∂z_l: distillation +2·r·β·½ = [+½, 0], KL −0.05 each
    torch.testing.assert_close(gl, torch.tensor([0.45, -0.05]), atol=1e-6, rtol=0)
    for red, want in (("min", 0.5), ("mean", 1.25), ("max", 2.0)):
        assert edpo_loss(pc, pr, rc, rr, oc, orj, beta=0.5, reduction=red, kl_coef=0.2).loss.item() == pytest.approx(want)
    # the default is the pessimistic objective; kl_coef = 0 reduces it to the min over members
    default = edpo_loss(pc, pr, rc, rr, oc, orj, beta=0.5, kl_coef=0.2)
    assert default.loss.item() == pytest.approx(0.55, abs=1e-6)
    no_kl = edpo_loss(pc, pr, rc, rr, oc, orj, beta=0.5, reduction="pessimistic", kl_coef=0.0)
    assert no_kl.loss.item() == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="kl_coef"):
        edpo_loss(pc, pr, rc, rr, oc, orj, kl_coef=-1.0)


def test_policy_value_under_its_own_implicit_reward_is_the_forward_kl():
    """Why the pessimistic objective carries a forward KL (Fisch et al., Sec. on pessimistic distillation): for the
    implicit reward r_π = β log(π/π_ref) of a policy π, E_π[r_π] − E_ref[r_π] − β KL(π‖π_ref) = β KL(π_ref‖π).
    Checked exactly on a random categorical policy (an independent computation, no drdo_lib code)."""
    gen = torch.Generator().manual_seed(3)
    beta = 0.3
    pi = torch.softmax(torch.randn(7, generator=gen, dtype=torch.float64), 0)
    ref = torch.softmax(torch.randn(7, generator=gen, dtype=torch.float64), 0)
    r = beta * (pi.log() - ref.log())
    value = (pi * r).sum() - (ref * r).sum() - beta * (pi * (pi / ref).log()).sum()
    forward_kl = (ref * (ref / pi).log()).sum()
    assert float(value) == pytest.approx(float(beta * forward_kl), rel=1e-12)


def test_shape_and_setting_validation():
    x = torch.zeros(4)
    with pytest.raises(ValueError, match="same shape"):
        dpo_loss(x, torch.zeros(3), x, x)
    with pytest.raises(ValueError, match="alpha"):
        drdo_loss(x, x, x, x, x, x, alpha=-1)
    with pytest.raises(ValueError):
        oracle_loss(x, x, x, alpha=2.0)
    with pytest.raises(ValueError):
        sequence_logps(torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3), reduction="max")


# ---------------------------------------------------------------------------------------------------------------
# Numerics: no NaN/inf for logps in [-1e4, 0] incl. exactly 0 and -inf-like values, float32 and bfloat16
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_drdo_finite_everywhere(dtype, gamma):
    grid = torch.tensor([0.0, -1e-8, -1e-6, -1e-3, -0.5, -1.0, -10.0, -100.0, -1e3, -1e4], dtype=dtype)
    zw, zl = torch.meshgrid(grid, grid, indexing="ij")
    zw, zl = zw.reshape(-1).clone().requires_grad_(True), zl.reshape(-1).clone().requires_grad_(True)
    r = torch.zeros_like(zw)
    out = drdo_loss(zw, zl, r, r, r + 1.0, r, alpha=0.1, gamma=gamma)
    assert torch.isfinite(out.losses).all()
    gw, gl = torch.autograd.grad(out.loss, [zw, zl])
    assert torch.isfinite(gw).all() and torch.isfinite(gl).all()
    for name, value in out.metrics.items():
        assert math.isfinite(value), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_other_losses_finite_at_extremes(dtype):
    v = torch.tensor([0.0, -1e4, -1e-8, -1e4], dtype=dtype)
    w = torch.tensor([-1e4, 0.0, -1e4, -1e-8], dtype=dtype)
    for out in (dpo_loss(v, w, w, v), ipo_loss(v, w, w, v), edpo_loss(v, w, w, v, v.unsqueeze(0), w.unsqueeze(0))):
        assert torch.isfinite(out.losses).all()


def test_log1mexp_accuracy_and_clamp():
    z = torch.tensor([-1e-5, -1e-3, -0.1, -0.69, -0.7, -1.0, -5.0, -30.0, -1e4], dtype=torch.float64)
    expected = torch.tensor([math.log(-math.expm1(v)) for v in z.tolist()], dtype=torch.float64)
    torch.testing.assert_close(log1mexp(z), expected, atol=1e-12, rtol=1e-10)
    # exactly 0: clamped to -eps, finite, and the gradient through the clamp is zero (documented)
    z0 = torch.tensor([0.0], requires_grad=True)
    y = log1mexp(z0)
    assert torch.isfinite(y).all() and y.item() == pytest.approx(math.log(-math.expm1(-1e-6)), rel=1e-4)
    (g,) = torch.autograd.grad(y.sum(), [z0])
    assert g.item() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# sequence_logps against an explicit per-token loop
# ---------------------------------------------------------------------------------------------------------------
def test_sequence_logps_matches_loop():
    gen = torch.Generator().manual_seed(8)
    b, t, v = 3, 7, 11
    logits = torch.randn(b, t, v, generator=gen)
    labels = torch.randint(0, v, (b, t), generator=gen)
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[0, 3:] = True
    mask[1, 5:6] = True
    mask[2, 2:5] = True  # followed by padding positions that must be ignored
    out_sum = sequence_logps(logits, labels, mask, "sum")
    out_mean = sequence_logps(logits, labels, mask, "mean")
    for i in range(b):
        total, n = 0.0, 0
        for pos in range(1, t):
            if mask[i, pos]:
                total += torch.log_softmax(logits[i, pos - 1], -1)[labels[i, pos]].item()
                n += 1
        assert out_sum[i].item() == pytest.approx(total, abs=1e-5)
        assert out_mean[i].item() == pytest.approx(total / n, abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Baselines built for noisy labels: cDPO, rDPO, Dr. DPO, each against its closed form written out in float64
# ---------------------------------------------------------------------------------------------------------------
def _log_sigmoid_by_hand(x: float) -> float:
    """log σ(x) = −log(1 + e^{−x}), written with math (no torch), stable for both signs."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _batch(gen, b=9):
    return [_rand_logps(b, gen, lo=-20.0, hi=-1.0) for _ in range(4)]


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.2, 0.5])
def test_cdpo_closed_form(eps):
    gen = torch.Generator().manual_seed(11)
    pc, pr, rc, rr = _batch(gen)
    beta = 0.3
    out = cdpo_loss(pc, pr, rc, rr, beta=beta, eps=eps)
    for i in range(len(pc)):
        h = float((pc[i] - rc[i]) - (pr[i] - rr[i]))
        want = -(1 - eps) * _log_sigmoid_by_hand(beta * h) - eps * _log_sigmoid_by_hand(-beta * h)
        assert float(out.losses[i]) == pytest.approx(want, rel=1e-6, abs=ATOL)  # float32 losses
    assert float(out.loss) == pytest.approx(float(out.losses.mean()), abs=1e-7)
    if eps == 0.0:  # no smoothing: DPO itself
        torch.testing.assert_close(out.losses, dpo_loss(pc, pr, rc, rr, beta=beta).losses)


def test_cdpo_gradient_vanishes_at_the_bounded_margin():
    eps, beta = 0.1, 0.5
    h = torch.tensor([math.log((1 - eps) / eps) / beta], dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(1, dtype=torch.float64)
    (g,) = torch.autograd.grad(cdpo_loss(h, zero, zero, zero, beta=beta, eps=eps).loss, [h])
    (g0,) = torch.autograd.grad(cdpo_loss(h * 0.5, zero, zero, zero, beta=beta, eps=eps).loss, [h])
    assert abs(float(g)) < 1e-6 < abs(float(g0))  # losses are computed in float32


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3, 0.45])
def test_rdpo_closed_form(eps):
    gen = torch.Generator().manual_seed(12)
    pc, pr, rc, rr = _batch(gen)
    beta = 0.2
    out = rdpo_loss(pc, pr, rc, rr, beta=beta, eps=eps)
    for i in range(len(pc)):
        h = float((pc[i] - rc[i]) - (pr[i] - rr[i]))
        want = (-(1 - eps) * _log_sigmoid_by_hand(beta * h) + eps * _log_sigmoid_by_hand(-beta * h)) / (1 - 2 * eps)
        assert float(out.losses[i]) == pytest.approx(want, rel=1e-6, abs=ATOL)  # float32 losses
    if eps == 0.0:
        torch.testing.assert_close(out.losses, dpo_loss(pc, pr, rc, rr, beta=beta).losses)


def test_rdpo_is_unbiased_under_known_flips():
    """Chowdhury et al.'s property: averaged over the label flip (probability ε), rDPO's loss is the clean DPO
    loss. Flipping a pair swaps chosen and rejected, i.e. h -> −h."""
    gen = torch.Generator().manual_seed(13)
    pc, pr, rc, rr = _batch(gen)
    eps, beta = 0.3, 0.4
    clean = rdpo_loss(pc, pr, rc, rr, beta=beta, eps=eps).losses
    flipped = rdpo_loss(pr, pc, rr, rc, beta=beta, eps=eps).losses
    torch.testing.assert_close((1 - eps) * clean + eps * flipped, dpo_loss(pc, pr, rc, rr, beta=beta).losses)


def test_drdpo_closed_form_and_limits():
    gen = torch.Generator().manual_seed(14)
    pc, pr, rc, rr = _batch(gen)
    beta = 0.1
    dpo = dpo_loss(pc, pr, rc, rr, beta=beta).losses.tolist()
    for bp in (0.5, 1.0, 3.0):
        out = drdpo_loss(pc, pr, rc, rr, beta=beta, beta_prime=bp)
        want = -bp * math.log(sum(math.exp(-x / bp) for x in dpo) / len(dpo))
        assert float(out.loss) == pytest.approx(want, rel=1e-6, abs=ATOL)
        torch.testing.assert_close(out.losses, torch.tensor(dpo, dtype=out.losses.dtype))  # the per-pair DPO losses
        w = out.components["weight"]
        want_w = [math.exp(-x / bp) / sum(math.exp(-y / bp) for y in dpo) * len(dpo) for x in dpo]
        torch.testing.assert_close(w, torch.tensor(want_w, dtype=w.dtype))
    # β′ -> ∞: the batch mean of DPO (Jensen: the objective is never above it)
    big = drdpo_loss(pc, pr, rc, rr, beta=beta, beta_prime=1e6)
    assert float(big.loss) == pytest.approx(sum(dpo) / len(dpo), abs=1e-5)
    assert float(drdpo_loss(pc, pr, rc, rr, beta=beta, beta_prime=1.0).loss) <= sum(dpo) / len(dpo) + 1e-12


def test_drdpo_gradient_is_the_weighted_dpo_gradient():
    """∇ of −β′ log mean exp(−ℓ/β′) is Σ_i softmax(−ℓ/β′)_i ∇ℓ_i: high-loss pairs get less weight."""
    gen = torch.Generator().manual_seed(15)
    pc, pr, rc, rr = _batch(gen)
    pc = pc.clone().requires_grad_(True)
    out = drdpo_loss(pc, pr, rc, rr, beta=0.5, beta_prime=0.7)
    (g,) = torch.autograd.grad(out.loss, [pc])
    lp = pc.detach().clone().requires_grad_(True)
    ell = dpo_loss(lp, pr, rc, rr, beta=0.5).losses
    w = torch.softmax(-ell.detach() / 0.7, 0)
    (g_want,) = torch.autograd.grad((w * ell).sum(), [lp])
    torch.testing.assert_close(g, g_want)


def test_noise_robust_settings_are_validated():
    x = torch.zeros(4)
    for bad in (-0.1, 0.51):
        with pytest.raises(ValueError, match="eps"):
            cdpo_loss(x, x, x, x, eps=bad)
    for bad in (-0.1, 0.5, 0.7):
        with pytest.raises(ValueError, match="eps"):
            rdpo_loss(x, x, x, x, eps=bad)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="beta_prime"):
            drdpo_loss(x, x, x, x, beta_prime=bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_noise_robust_losses_finite_at_extremes(dtype):
    v = torch.tensor([0.0, -1e4, -1e-8, -1e4], dtype=dtype)
    w = torch.tensor([-1e4, 0.0, -1e4, -1e-8], dtype=dtype)
    for out in (cdpo_loss(v, w, w, v, eps=0.2), rdpo_loss(v, w, w, v, eps=0.2), drdpo_loss(v, w, w, v)):
        assert torch.isfinite(out.losses).all() and torch.isfinite(out.loss)


# ---------------------------------------------------------------------------------------------------------------
# dpo_loss (and rdpo_loss) equal TRL's DPOTrainer loss on the same batch and tiny model (built from a config, local tokenizer)
# ---------------------------------------------------------------------------------------------------------------
def _local_word_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


@pytest.mark.parametrize("loss_type,eps", [("sigmoid", 0.0), ("robust", 0.2), ("robust", 0.37)])
def test_dpo_loss_equals_trl_dpotrainer(tmp_path, loss_type, eps):
    """DPO = TRL ``sigmoid``; rDPO = TRL ``robust`` with ``label_smoothing`` = ε (TRL's own code computes it)."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel

    words = "the cat dog sat ran on mat log fast slow big small red blue a an".split()
    tok = _local_word_tokenizer(words)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    policy = GPT2LMHeadModel(cfg)
    torch.manual_seed(1)
    ref = GPT2LMHeadModel(cfg)  # a different reference so that log-ratios are non-zero
    rows = {
        "prompt": ["the cat sat on", "a dog ran", "the big red", "an small blue dog"],
        "chosen": [" the mat", " fast", " cat sat on a log", " ran"],
        "rejected": [" a log fast", " slow on the mat", " dog", " sat on the red mat"],
    }
    ds = Dataset.from_dict(rows)
    beta = 0.1
    args = trl.DPOConfig(output_dir=str(tmp_path), beta=beta, per_device_train_batch_size=4, report_to=[],
                         use_cpu=True, max_length=None, logging_steps=1, save_strategy="no", loss_type=[loss_type],
                         label_smoothing=eps)
    trainer = trl.DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    policy.eval()
    ref.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch)
        ids, attn, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        z = sequence_logps(policy(input_ids=ids, attention_mask=attn).logits, ids, comp.bool(), "sum")
        z_ref = sequence_logps(ref(input_ids=ids, attention_mask=attn).logits, ids, comp.bool(), "sum")
    zc, zr = z.chunk(2)
    rc, rr = z_ref.chunk(2)
    ours = dpo_loss(zc, zr, rc, rr, beta=beta) if loss_type == "sigmoid" else rdpo_loss(zc, zr, rc, rr, beta=beta, eps=eps)
    assert abs((zc - rc).abs().sum().item()) > 1e-3  # the check is not vacuous
    if loss_type == "robust":  # ... and rDPO differs from DPO on this batch by more than the tolerance
        assert abs(ours.loss.item() - dpo_loss(zc, zr, rc, rr, beta=beta).loss.item()) > 1e-3
    assert ours.loss.item() == pytest.approx(float(trl_loss), abs=1e-6)
