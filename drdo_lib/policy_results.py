"""Notebook 04's library side: train a grid of students (method × split), collect their curves and final metrics,
and score greedy samples of each policy with a reward function (the synthetic testbed's true reward r*).

Evaluation proper (temperatures, win rates, judges) is notebook 05's; this is the quick check that preference
training moved the policy at all, and in which direction, next to the SFT policy it started from.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from drdo_lib.trainer import PolicyConfig, read_metrics, run_policy

logger = logging.getLogger(__name__)

__all__ = ["run_policy_grid", "load_run", "final_metrics_table", "true_reward_table"]

#: Final metrics shown in notebook 04's summary table (metrics.jsonl keys).
SUMMARY_METRICS = ("loss", "bt_accuracy", "oracle_reward_advantage", "logps_chosen", "logps_rejected", "p_w",
                   "grad_norm")


def run_policy_grid(cfg: PolicyConfig, profile, *, methods: Sequence[str] | None = None,
                    splits: Sequence[str] | None = None, seed: int | None = None, runs_dir=None,
                    progress: bool = True) -> list[Path]:
    """Train every ``method`` on every ``split`` (defaults: ``cfg.methods`` × ``cfg.splits``); returns run dirs."""
    from tqdm.auto import tqdm

    grid = [(m, s) for s in (splits or cfg.splits) for m in (methods or cfg.methods)]
    out = []
    for method, split in tqdm(grid, desc="policy runs", disable=not progress):
        logger.info("training %s on %s", method, split)
        out.append(run_policy(cfg, profile, method, split, seed=seed, runs_dir=runs_dir, progress=False))
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
        run = load_run(d)
        tail = run["metrics"][-last_n:]
        rec = {"method": run["method"], "split": run["split"], "steps": run["summary"]["steps"],
               "pairs": run["summary"]["train_pairs"], "s/step": run["summary"]["seconds_per_step"]}
        for k in SUMMARY_METRICS:
            vals = [r[k] for r in tail if k in r]
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
        run = load_run(d)
        r = scores(run["final_dir"])
        recs.append({"policy": f"{run['method']}/{run['split']}", "method": run["method"], "split": run["split"],
                     "reward": r.mean(), "reward_minus_sft": (r - base).mean(),
                     "win_vs_sft": float(np.mean((r > base) + 0.5 * (r == base)))})
    return pd.DataFrame(recs).set_index("policy")
