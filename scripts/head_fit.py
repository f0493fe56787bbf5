"""Does the DRDO student's reward head learn its Oracle's reward? Train DRDO (``student_reward: head`` unless a setting
says otherwise) on the ``mini`` profile with several head settings, and measure each student on the held-out pairs
of D_all (``drdo_lib.policy.heldout_reward_fit``): pairwise accuracy of r̂ against the labels, the Oracle and r*,
the Pearson correlation of r̂ differences with the Oracle's, and the policy's greedy r* gain over SFT on held-out
prompts. This is the script behind README "Choices made by evidence" (the student's reward head).

    OMP_NUM_THREADS=1 python scripts/head_fit.py --out /tmp/head_fit.json \\
        --settings '[{}, {"head_learning_rate": 1e-2}, {"student_head_init": "fit"}]'

The mini profile's data, SFT policy and Oracle are built once under its runs dir (``runs/mini``) and reused; each
setting overrides the ``policy`` section (the LM's ``learning_rate`` stays the profile's unless a setting changes
it) and trains ``drdo`` on D_all into ``runs/mini/policy/drdo_D_all`` (overwritten by the next setting).
``--oracle-kind true_reward`` distils the exact r* instead of the trained Oracle.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time


def main() -> None:
    import numpy as np

    from drdo_lib import policy
    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.hf import read_metrics
    from drdo_lib.models import CausalLMWithRewardHead
    from drdo_lib.run import Run
    from drdo_lib.sft import SFTConfig, true_reward_of_samples

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="mini")
    ap.add_argument("--settings", default='[{}]', help="JSON list of policy-section overrides, one run each")
    ap.add_argument("--oracle-kind", default=None, help="override oracle.kind (trained | true_reward | ...)")
    ap.add_argument("--n-prompts", type=int, default=200, help="held-out prompts for the r* gain (greedy)")
    ap.add_argument("--max-pairs", type=int, default=1000, help="held-out pairs for the reward fit")
    ap.add_argument("--out", default=None, help="write the records as JSON here")
    args = ap.parse_args()

    run = Run.create(args.config)
    if args.oracle_kind:
        run = dataclasses.replace(run, profile={**run.profile, "oracle": {**(run.profile.get("oracle") or {}),
                                                                          "kind": args.oracle_kind}})
    data = data_stage.load(run)
    scfg = run.config(SFTConfig, "sft")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run.sft_model)
    _, held = data.sft_rows()
    prompts = list(held["prompt"][: args.n_prompts])
    gkw = dict(max_new_tokens=scfg.eval_max_new_tokens, max_prompt_length=scfg.max_prompt_length, batch_size=128)
    sft_r = np.asarray(true_reward_of_samples(str(run.sft_model), tok, prompts, data.testbed.true_rewards,
                                              **gkw)["rewards"])
    # held-out pairs: their log-probs under SFT, to measure how far each student moved log π(y_w) and log π(y_l)
    from transformers import AutoModelForCausalLM

    from drdo_lib.data.tokenize import tokenize_preference_dataset
    from drdo_lib.study import _pair_logps

    base = run.config(policy.PolicyConfig, "policy")
    _, held_pairs = data.preference_pairs("D_all")
    held_tok, _ = tokenize_preference_dataset(held_pairs.select(range(min(args.max_pairs, len(held_pairs)))), tok,
                                              max_prompt_length=base.max_prompt_length, max_length=base.max_length,
                                              template=base.template)
    z_sft = _pair_logps(AutoModelForCausalLM.from_pretrained(run.sft_model, use_safetensors=True), held_tok,
                        tok.pad_token_id)
    records = []
    for over in json.loads(args.settings):
        over = dict(over)
        pcfg = run.config(policy.PolicyConfig, "policy", **over)
        t0 = time.perf_counter()
        out = policy.run(run, pcfg, "drdo", "D_all", progress=False)
        secs = time.perf_counter() - t0
        if pcfg.student_reward == "head":
            model = CausalLMWithRewardHead.from_pretrained(out / "final")
        else:
            model = AutoModelForCausalLM.from_pretrained(out / "final", use_safetensors=True)
        fit = policy.heldout_reward_fit(run, pcfg, model, tok, "D_all", max_pairs=args.max_pairs)
        pol_r = np.asarray(true_reward_of_samples(getattr(model, "lm", model), tok, prompts,
                                                  data.testbed.true_rewards, **gkw)["rewards"])
        gain = pol_r - sft_r
        dz = _pair_logps(model, held_tok, tok.pad_token_id) - z_sft
        metrics = read_metrics(out)
        mean = lambda k: float(np.mean([m[k] for m in metrics if k in m])) if any(k in m for m in metrics) \
            else float("nan")  # noqa: E731
        summary = json.loads((out / "summary.json").read_text())
        rec = {"setting": over, "oracle_kind": args.oracle_kind or run.section("oracle").get("kind", "trained"),
               "lm_learning_rate": pcfg.learning_rate, **{f"fit_{k}": v for k, v in fit.items()},
               "r_gain": float(gain.mean()), "r_gain_se": float(gain.std(ddof=1) / np.sqrt(len(gain))),
               "dlogp_w": float(dz[:, 0].mean()), "dlogp_l": float(dz[:, 1].mean()),
               "per_prompt_r": pol_r.tolist(), "per_pair_dlogp": dz.round(5).tolist(),
               "grad_norm_reward_lm": mean("grad_norm_reward_lm"), "grad_norm_focal_lm": mean("grad_norm_focal_lm"),
               "grad_norm_reward_head": mean("grad_norm_reward_head"), "loss_reward_final": metrics[-1].get("loss_reward"),
               "head_warmup_fit": summary.get("head_fit"), "oracle_scale": summary.get("oracle_scale"),
               "seconds": round(secs, 1)}
        records.append(rec)
        print(json.dumps({k: v for k, v in rec.items() if not k.startswith("per_")}), flush=True)
    print()
    print("| setting | head acc vs Oracle | vs r* | vs labels | Pearson vs Oracle | Oracle acc vs r* | r* gain (greedy, "
          "± se) | Δlog π(y_w) | Δlog π(y_l) | ‖∇reward‖ LM | ‖∇focal‖ LM |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        print(f"| `{json.dumps(r['setting'])}` | {r['fit_acc_oracle']:.3f} | {r['fit_acc_true']:.3f} | "
              f"{r['fit_acc_labels']:.3f} | {r['fit_pearson_oracle']:.3f} | {r['fit_oracle_acc_true']:.3f} | "
              f"{r['r_gain']:+.3f} ± {r['r_gain_se']:.3f} | {r['dlogp_w']:+.3f} | {r['dlogp_l']:+.3f} | "
              f"{r['grad_norm_reward_lm']:.3g} | "
              f"{r['grad_norm_focal_lm']:.3g} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
