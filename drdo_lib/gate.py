"""The sanity gate: before any method comparison, check that the testbed can show an improvement at all.

On *clean* labels (every training pair relabelled by the testbed's true reward r*: the response with the higher r*
is preferred, pairs of equal r* dropped), DPO with β = ``gate.beta`` (0.1) and the profile's policy settings must
beat the SFT policy it starts from on r* of held-out prompts, with the paired 95 % bootstrap interval of the mean
difference (resampling prompts) above 0. If it does not, the testbed (or the training budget) cannot tell methods
apart and every later comparison would be noise: :func:`run` raises :class:`GateFailed`, which stops a notebook
run loudly. Real data has no r*: the gate is skipped there (and says so).

The gate's DPO run lives apart from the method runs (``runs/<profile>/gate/``), so no table or figure of the
methods picks it up. Its result is written to ``runs/<profile>/gate/result.json``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["GateConfig", "GateFailed", "run", "clean_pairs"]


class GateFailed(AssertionError):
    """DPO on clean labels did not beat SFT on r*: the experiment cannot compare methods."""


@dataclass(frozen=True)
class GateConfig:
    """Settings of the sanity gate (profile section ``gate``)."""

    enabled: bool = True  # run the gate before the method comparisons (notebook 04); real data skips it anyway
    beta: float = 0.1  # DPO β of the gate run
    max_steps: int | None = None  # DPO steps; None: the profile's policy.max_steps
    split: str = "D_all"  # the preference split whose training pairs are relabelled
    n_prompts: int = 300  # held-out prompts scored with r*
    temperature: float = 0.0  # decoding of the scored samples: 0 = greedy
    seeds: tuple[int, ...] = (0,)  # sampling seeds (temperature > 0); rewards are averaged per prompt
    max_new_tokens: int = 16  # generation cap of the scored samples
    level: float = 0.95  # confidence level of the interval that must exclude 0
    n_bootstrap: int = 2000  # bootstrap resamples of prompts

    def __post_init__(self) -> None:
        if isinstance(self.seeds, (list, int)):
            object.__setattr__(self, "seeds", tuple([self.seeds] if isinstance(self.seeds, int) else self.seeds))
        checks = [
            (isinstance(self.enabled, bool), "enabled must be true or false"),
            (self.beta > 0, "beta must be > 0"),
            (self.max_steps is None or self.max_steps > 0, "max_steps must be > 0 or null"),
            (self.n_prompts > 1 and self.max_new_tokens > 0, "n_prompts must be > 1, max_new_tokens > 0"),
            (self.temperature >= 0 and len(self.seeds) > 0, "temperature must be >= 0, seeds non-empty"),
            (0.5 < self.level < 1 and self.n_bootstrap >= 100, "level in (0.5, 1), n_bootstrap >= 100"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"GateConfig: {msg}")


def clean_pairs(rows, testbed):
    """Preference rows relabelled by r*: ``chosen`` is the response with the higher true reward; pairs whose two
    responses have equal r* (no clean label exists) are dropped. The swap is the policy stage's
    :func:`~drdo_lib.policy.order_by_oracle`, with r* as the Oracle."""
    import numpy as np

    from drdo_lib.policy import order_by_oracle

    rc = testbed.true_rewards(rows["prompt"], rows["chosen"])
    rr = testbed.true_rewards(rows["prompt"], rows["rejected"])
    keep = np.flatnonzero(rc != rr)
    rows = rows.select(keep).add_column("oracle_chosen_reward", rc[keep].tolist()) \
        .add_column("oracle_rejected_reward", rr[keep].tolist())
    return order_by_oracle(rows).remove_columns(["oracle_chosen_reward", "oracle_rejected_reward"])


def _gate_run(run):
    """The run the gate trains in: the same profile and seed under ``runs/<profile>/gate/`` (its own policy and
    precompute folders), with the Oracle set to ``trained`` so that nothing but DPO's reference log-probs is needed."""
    import dataclasses

    prof = dict(run.profile)
    prof["oracle"] = {**(prof.get("oracle") or {}), "kind": "trained"}
    return dataclasses.replace(run, profile=prof, runs_root=run.dir / "gate")


def run(run, cfg: GateConfig | None = None) -> dict[str, Any]:
    """Train the gate's DPO run, score it and SFT with r*, write and return the result; raise :class:`GateFailed`
    when the interval of r*(DPO) − r*(SFT) does not lie above 0 (see the module docstring)."""
    import numpy as np
    from transformers import AutoTokenizer

    from drdo_lib import policy
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.sft import true_reward_of_samples
    from drdo_lib.winrates import mean_advantage

    cfg = cfg if cfg is not None else run.config(GateConfig, "gate")
    out_dir = run.stage_dir("gate")
    data = data_stage.load(run)
    if not cfg.enabled or data.testbed is None:
        why = "disabled (gate.enabled: false)" if not cfg.enabled else "no true reward r* (real data)"
        logger.warning("sanity gate skipped: %s", why)
        res = {"status": "skipped", "reason": why}
        (out_dir / "result.json").write_text(json.dumps(res, indent=2))
        return res
    run.require_model(run.sft_model, "the SFT policy", "sft (notebook 02)")
    tb = data.testbed
    pcfg = run.config(policy.PolicyConfig, "policy")
    keep = set(pcfg.row_splits)
    rows = data.split(cfg.split).filter(lambda s: s in keep, input_columns="split", desc="gate: training rows")
    rows = clean_pairs(rows, tb)
    gcfg = run.config(policy.PolicyConfig, "policy", beta=cfg.beta, methods=("dpo",), splits=(cfg.split,),
                      label_source="human", init_model=str(run.sft_model),
                      max_steps=cfg.max_steps or pcfg.max_steps, resume_from_checkpoint=None)
    gate_dir = policy.run(_gate_run(run), gcfg, "dpo", "clean", rows=rows, progress=False)

    _, held = data.sft_rows()
    prompts = list(held["prompt"][: cfg.n_prompts])
    tok = AutoTokenizer.from_pretrained(run.sft_model)

    def rewards(model_dir) -> np.ndarray:
        per_seed = [true_reward_of_samples(str(model_dir), tok, prompts, tb.true_rewards, temperature=cfg.temperature,
                                           seed=s, max_new_tokens=cfg.max_new_tokens,
                                           max_prompt_length=pcfg.max_prompt_length)["rewards"]
                    for s in (cfg.seeds if cfg.temperature > 0 else cfg.seeds[:1])]
        return np.mean(np.asarray(per_seed, dtype=float), axis=0)

    r_sft, r_dpo = rewards(run.sft_model), rewards(gate_dir / "final")
    adv = mean_advantage(r_dpo, r_sft, n_boot=cfg.n_bootstrap, level=cfg.level, seed=run.seed)
    res = {"status": "passed" if adv["ci_low"] > 0 else "failed", "beta": cfg.beta, "steps": gcfg.max_steps,
           "clean_pairs": len(rows), "n_prompts": len(prompts), "temperature": cfg.temperature,
           "sft_reward": float(r_sft.mean()), "dpo_reward": float(r_dpo.mean()), "advantage": adv["advantage"],
           "ci_low": adv["ci_low"], "ci_high": adv["ci_high"], "level": cfg.level,
           "win_vs_sft": float(np.mean((r_dpo > r_sft) + 0.5 * (r_dpo == r_sft)))}
    (out_dir / "result.json").write_text(json.dumps(res, indent=2))
    msg = (f"sanity gate {res['status']}: DPO (beta {cfg.beta}, {gcfg.max_steps} steps, {len(rows)} clean pairs) "
           f"minus SFT on r* over {len(prompts)} held-out prompts = {adv['advantage']:+.3f} "
           f"[{adv['ci_low']:+.3f}, {adv['ci_high']:+.3f}] ({cfg.level:.0%} interval)")
    if res["status"] != "passed":
        raise GateFailed(msg + ": this testbed cannot show an improvement over SFT, so no method comparison is "
                               "reported (see drdo_lib/gate.py)")
    logger.info(msg)
    return res
