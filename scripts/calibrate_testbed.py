"""Calibrate the synthetic testbed: SFT on a variant of the `mini` testbed, then preference runs from that SFT policy,
each scored with the true reward r* on held-out prompts (greedy and T = 0.7), as the difference to SFT with a 95 %
normal interval over prompts. This is the script behind the numbers in README "Choices made by evidence" and in
``drdo_lib/data/synthetic.py``'s docstring.

    python scripts/calibrate_testbed.py --runs-dir /tmp/calib/c \\
        --synthetic '{"ref_quality_min": 0.7, "temperature": 0.25, "min_post_words": 16, "max_post_words": 28,
                      "min_keys": 2, "max_keys": 5}' \\
        --runs '[{"method": "dpo"}]'
    ORACLE='{"kind": "true_reward"}' python scripts/calibrate_testbed.py --runs-dir /tmp/calib/c \\
        --synthetic '{..., "temperature": 0.5, "tie_fraction": 0.1}' \\
        --runs '[{"method": "drdo", "student_head_init": "zero"}, {"method": "drdo", "student_reward": "logprob"}]'

The SFT recipe of the ``study`` profile (README "Choices made by evidence"), per seed 0, 1, 2::

    python scripts/calibrate_testbed.py --threads 1 --seed 1 --runs-dir /tmp/calib/s1 --data '{"n_sft": 16000}' \
        --sft '{"max_steps": 2000, "lr_scheduler_type": "cosine", "warmup_steps": 50}' --clean \
        --runs '[{"method": "dpo"}, {"method": "dpo", "max_steps": 60}]'

``--seed`` sets the profile seed (the testbed draw and every initialisation), ``--sft`` / ``--data`` override those
sections; ``--synthetic`` overrides ``data.synthetic`` of configs/mini.yaml, each ``--runs`` entry overrides ``policy`` (its
``method`` key picks the method); ``--clean`` relabels the training pairs by r* (the gate's clean labels); the
environment variable ORACLE overrides the ``oracle`` section. The SFT policy is trained once per runs dir and reused
(its rows do not depend on the label temperature or tie share).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    import torch

    from drdo_lib import gate, policy, sft
    from drdo_lib.config import load_profile
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.generation import generate, load_policy
    from drdo_lib.run import Run

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs-dir", required=True)
    p.add_argument("--synthetic", default="{}", help="JSON: data.synthetic overrides")
    p.add_argument("--runs", default='[{"method": "dpo"}]', help="JSON list of policy overrides (+ method)")
    p.add_argument("--seed", type=int, default=0, help="profile seed: the testbed draw and the SFT/policy init")
    p.add_argument("--sft", default="{}", help="JSON: sft section overrides")
    p.add_argument("--data", default="{}", help="JSON: data section overrides (e.g. n_sft)")
    p.add_argument("--clean", action="store_true", help="relabel the training pairs by r* (ties dropped)")
    p.add_argument("--n-prompts", type=int, default=300)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    prof = load_profile("mini")
    prof["data"]["synthetic"].update(json.loads(a.synthetic))
    prof["oracle"].update(json.loads(os.environ.get("ORACLE", "{}")))
    prof["sft"].update(json.loads(a.sft))
    prof["data"].update(json.loads(a.data))
    prof["sft"]["eval_prompts"] = 0
    run = Run.create(prof, seed=a.seed, runs_dir=a.runs_dir)
    data = data_stage.load(run)
    if not (run.sft_model / "model.safetensors").exists():
        t0 = time.time()
        sft.run(run, progress=False)
        print(f"SFT trained in {time.time() - t0:.0f}s", flush=True)
    _, held = data.sft_rows()
    prompts = list(held["prompt"][: a.n_prompts])
    tb = data.testbed

    def score(model_dir, temperature):
        m, tok = load_policy(model_dir, device="cpu")
        s = generate(m, tok, prompts, temperature=temperature, top_p=0.8, max_new_tokens=16, seed=0, batch_size=128,
                     max_prompt_length=96, progress=False)
        resp = [x["response"] for x in s]
        return tb.true_rewards(prompts, resp), float(np.mean([len(r.split()) for r in resp]))

    base = {t: score(run.sft_model, t) for t in (0.0, 0.7)}
    print("SFT r* (greedy, T 0.7):", {t: round(float(v[0].mean()), 3) for t, v in base.items()}, flush=True)
    rows = data.split("D_all").filter(lambda s: s == "train", input_columns="split")
    if a.clean:
        rows = gate.clean_pairs(rows, tb)
    for i, ov in enumerate(json.loads(a.runs)):
        method = ov.pop("method", "dpo")
        cfg = run.config(policy.PolicyConfig, "policy", **ov)
        t0 = time.time()
        d = policy.run(run, cfg, method, f"calib{i}", rows=rows, progress=False)
        for t in (0.0, 0.7):
            r, length = score(d / "final", t)
            diff = r - base[t][0]
            print(f"{method} {ov} T {t}: r* {r.mean():.3f}, minus SFT {diff.mean():+.3f} "
                  f"+- {1.96 * diff.std() / np.sqrt(len(diff)):.3f}, mean length {length:.2f} words "
                  f"({time.time() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
