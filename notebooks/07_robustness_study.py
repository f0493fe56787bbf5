# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (drdo)
#     language: python
#     name: drdo
# ---

# %% [markdown]
# # 07 · Robustness study: does DRDO's claim hold when the label noise is varied?
#
# The paper claims that DPO and e-DPO degenerate on non-deterministic preference pairs (p\* ≈ ½) while DRDO stays
# robust (Lemmas 1–2, Sec. 4), but it never varies the amount of noise. On the synthetic testbed the true reward r\*
# is known, so the claim becomes a controlled experiment (`drdo_lib.study`):
#
# * **methods**: DRDO with both student rewards (`head`, `logprob` = β·z), DPO, e-DPO, IPO, DRDO α = 0 (pure reward
#   distillation), DRDO γ = 0 (no focal modulation), each a named variant of the policy settings;
# * **noise levels**: the Bradley–Terry temperature of the labels and the share of exactly tied pairs (p\* = ½),
#   from least to most noisy;
# * **oracle kinds** for the methods that distil an Oracle (DRDO, e-DPO): `trained` (a reward model learnt from the
#   same labels) and `true_reward` (r\* itself, the paper's "converged Oracle");
# * **training seeds** (each also draws its own testbed unless `study.data_seed` is set).
#
# Each cell is an independent run cached by a hash of its settings (`runs/<profile>/study/cells/<key>.json`): this
# notebook runs the missing cells and merges the cached ones; `python -m drdo_lib study --config
# configs/<profile>.yaml [--shard i/N]` runs the same grid from a shell (or a Slurm array). Per cell, on held-out
# prompts: gold r\* of the greedy sample and of a T = 0.7 sample, the Monte-Carlo KL(π‖π_SFT) and entropy from
# ancestral samples; on training pairs: log π(y_w), log π(y_l) binned by p\*, the margin growth on p\* = ½ pairs
# (and its trajectory during training), the share of samples never seen as preferred and the exact probability
# mass on the responses seen as preferred (Lemma 1c's prediction). The `sft` cells measure the SFT policy the same
# way; every gain is paired with it (same seed, noise level and prompts).
#
# The `mini` profile runs a reduced grid (a smoke test of the machinery, not a result); the `study` profile runs
# the full grid and its figures and reading drive the README's "Does DRDO's claim hold?" section.

# %% tags=["parameters"]
profile = "mini"  # profile name: configs/<profile>.yaml, runs/<profile>/, figures/<profile>/
seed = 0  # run-wide seed (the study's training seeds are study.seeds)
study = {}  # the `study:` section: fields of drdo_lib.study.StudyConfig (the grid and what is measured)
data = {}  # the `data:` section (the testbed; each noise level overrides data.synthetic)
sft = {}  # the `sft:` section (the study's SFT policies; study.sft overrides it)
oracle = {}  # the `oracle:` section (the trained Oracle / ensemble; study.oracle overrides it)
policy = {}  # the `policy:` section (every cell; study.policy and each variant override it)
gate = {}  # the `gate:` section (the sanity gate run per seed when study.gate is not off)

# %%
import logging

import pandas as pd
from IPython.display import Image, Markdown, display

from drdo_lib import study as study_lib
from drdo_lib import study_reading
from drdo_lib.run import Run

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("drdo_lib").setLevel(logging.WARNING)
run = Run.create(profile, seed=seed, sections={"study": study, "data": data, "sft": sft, "oracle": oracle,
                                               "policy": policy, "gate": gate}).validate()
cfg = run.config(study_lib.StudyConfig, "study")
cells = study_lib.expand_grid(cfg)
levels = "; ".join(cfg.noise_name(i) for i in range(len(cfg.noise_levels)))
print(f"{len(cells)} cells: variants {list(cfg.selected)} × {len(cfg.noise_levels)} noise levels ({levels}) "
      f"× oracle kinds {list(cfg.oracle_kinds)} (DRDO, e-DPO) × seeds {list(cfg.seeds)}, plus an SFT cell per noise "
      "level and seed")

# %% [markdown]
# ## Run the grid
# Finished cells are read back from `runs/<profile>/study/cells/` (never recomputed); missing ones are trained and
# measured. With `study.gate: require` a failed sanity gate stops the notebook here (`record`: the reading says
# every verdict cannot tell).

# %%
df = study_lib.run(run, cfg)
df[["label", "noise_name", "oracle", "seed", "gold_greedy", "gold_sample", "kl", "tie_margin_growth", "dlogp_l",
    "never_preferred_share", "seconds"]].round(3)

# %% [markdown]
# ## Figures, tables and the reading
# Written under `figures/<profile>/` as `study_*` (PNG + PDF, CSV + Markdown). Training seeds are the unit of
# replication (`drdo_lib.stats`): values are paired per seed and prompt (with the SFT cell of the same seed and noise
# level, or another method), and each interval is the wider of a seed-level t interval and a hierarchical bootstrap
# (seeds, then prompts or pairs inside each drawn seed). `study_testbed` holds the testbed facts measured from the
# generated pairs (share of exactly tied pairs, flip rate on decided pairs, label ceiling): `tie_fraction` is a
# generator setting, not the share of tied pairs.

# %%
out = study_lib.report(run, cfg)
if out["missing"]:
    print(f"{len(out['missing'])} cells of the grid are missing (another shard?): the tables cover the rest")
out["summary"].round(3)

# %% [markdown]
# ### Gold r\* vs noise level (the headline figure)
# r\* gain over SFT on held-out prompts, per method, with the seed-level interval (dots: each seed's mean).
# The paper's robustness claim predicts DRDO's curve falls less than DPO's and e-DPO's as the noise grows.

# %%
display(Image(str(run.figures / "study_gold_vs_noise.png")))

# %% [markdown]
# ### The r\*–KL frontier
# Each point is a cell: how far the policy moved from SFT (Monte-Carlo KL from ancestral samples) against what it
# gained on r\*.

# %%
display(Image(str(run.figures / "study_frontier.png")))

# %% [markdown]
# ### π(y_l) collapse vs p\* (Lemma 1c)
# Change of log π(y_l) (solid) and log π(y_w) (dashed) from SFT on training pairs, by the pair's p\* (p\* < ½: the
# label went against r\*). Lemma 1 predicts DPO lowers π(y_l) whatever p\*, including p\* = ½.

# %%
display(Image(str(run.figures / "study_pyl_collapse.png")))

# %% [markdown]
# ### Margin on p\* = ½ pairs vs step (Lemmas 1b, 2)
# [log π(y_w) − log π(y_l)] − the same under SFT on pairs of exactly equal r\*, measured during training. Lemma 1b
# predicts DPO's grows without bound; Lemma 2 the same for e-DPO with reward models learnt from the labels.

# %%
display(Image(str(run.figures / "study_tie_margin.png")))

# %% [markdown]
# ### The reading
# One row per claim, computed from the numbers above (`drdo_lib.study.reading`, a table of claims in
# `drdo_lib.study_reading`): the effect and every seed's estimate, the interval and the smallest effect it could
# detect (its half-width), the p-value and its Holm–Bonferroni adjustment over all claims, and the raw and the
# adjusted verdict side by side ("supports" / "contradicts" only when p < 0.05 and the interval excludes 0; fewer
# than `study.min_seeds` seeds: "cannot tell"). Then the training seeds (SFT attempts, gates, seeds left out) and
# the measured testbed facts, as `study_reading.md` writes them.

# %%
display(Markdown("\n".join(f"- {r['sentence']}" for r in out["reading"])))
display(Markdown((run.figures / "study_reading.md").read_text().split("## Claims")[0]))
study_reading.reading_table(out["reading"]).round(3)

# %%
# NBVAL_CHECK_OUTPUT
print(f"profile={profile} cells={len(cells)} finished={len(df)} missing={len(out['missing'])}")
print("variants:", sorted(set(df["variant"])), "oracle kinds:", sorted(set(df["oracle"])))
print("claims:", [r["claim"] for r in out["reading"]])
print("verdicts in {supports, contradicts, cannot tell}:",
      all(r["verdict"] in ("supports", "contradicts", "cannot tell") for r in out["reading"]))
print("Holm verdicts never stronger than raw:",
      all(r["verdict_holm"] in (r["verdict"], "cannot tell") for r in out["reading"]))
print("testbed facts per noise level and seed:", len(out["testbed"]) == len(cfg.noise_levels) * len(cfg.seeds))
print("figures written:", all((run.figures / f"{n}.png").exists() for n in
      ("study_gold_vs_noise", "study_frontier", "study_pyl_collapse", "study_tie_margin")))
