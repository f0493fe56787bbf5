"""How good are the study's trained Oracles? For every (noise level, seed) whose Oracle the study trained, its
held-out pairwise accuracy against the labels and against r*, the label ceiling (how often the labels agree with
r* on pairs of different r*), and the Spearman correlation of its rewards with r* (``drdo_lib.oracle.
reward_agreement``, the numbers notebook 03 shows for `mini`). Prints a Markdown table; reads only finished work.

    python scripts/study_oracles.py --config configs/study.yaml
"""
from __future__ import annotations

import argparse


def main() -> None:
    import numpy as np

    from drdo_lib import study
    from drdo_lib.config import load_profile
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.oracle import OracleConfig, reward_agreement
    from drdo_lib.run import Run

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/study.yaml")
    p.add_argument("--max-pairs", type=int, default=1000, help="held-out pairs scored per Oracle")
    a = p.parse_args()
    run = Run.create(load_profile(a.config))
    cfg = run.config(study.StudyConfig, "study")
    print("| noise level | seed | held-out pairs | acc. vs labels | label ceiling (labels vs r*) | acc. vs r* | "
          "Spearman(r, r*) |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for n in range(len(cfg.noise_levels)):
        for s in cfg.seeds:
            drun = study.data_run(run, cfg, n, s)
            if not (drun.oracle_model / "config.json").exists():
                continue
            ocfg = drun.config(OracleConfig, "oracle")
            data = data_stage.load(drun)
            _, valid = data.preference_pairs(ocfg.train_split)
            valid = valid.select(range(min(a.max_pairs, len(valid))))
            ag = reward_agreement(drun.oracle_model, valid, cfg=ocfg, true_reward_fn=data.testbed.true_rewards)
            rows.append(ag)
            print(f"| {cfg.noise_name(n)} | {s} | {ag['pairs']} | {ag['accuracy_vs_labels']:.3f} | "
                  f"{ag['labels_vs_true']:.3f} | {ag['accuracy_vs_true']:.3f} | {ag['spearman_reward']:.3f} |",
                  flush=True)
    if rows:
        m = {k: float(np.mean([r[k] for r in rows])) for k in ("accuracy_vs_labels", "labels_vs_true",
                                                               "accuracy_vs_true", "spearman_reward")}
        print(f"| mean of {len(rows)} | | | {m['accuracy_vs_labels']:.3f} | {m['labels_vs_true']:.3f} | "
              f"{m['accuracy_vs_true']:.3f} | {m['spearman_reward']:.3f} |")


if __name__ == "__main__":
    main()
