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
# # 02 · Supervised fine-tuning of the initial policy
#
# Every method in the paper starts from an SFT policy: it is the initial student, the frozen **reference policy**
# π_ref of DPO / e-DPO (the z^ref terms of Eq. 3–4) and the initialisation of the Oracle and the e-DPO reward models
# (notebook 03). The paper fine-tunes with TRL (App. D: learning rate 1e-5, cosine schedule, 100 warm-up steps);
# so do we, with `trl.SFTTrainer` and a **completion-only loss**: the prompt tokens are masked out and only the
# summary (and its EOS) is learned.
#
# * Rows `{prompt, response}` come from the data stage (notebook 01): the TL;DR SFT set, or, for `mini`, the
#   synthetic testbed's noisy reference summaries.
# * Tokenisation (`drdo_lib.data.tokenize`) is shared with the preference stages: the TL;DR prompt, the response,
#   EOS appended; pairs longer than `max_length` are dropped and counted, never truncated.
# * `mini` / `sample` train a tiny GPT-2-style model **from scratch** (no pretrained weights here) with a word-level
#   tokenizer trained on the profile's text; the GPU profiles start from the hub checkpoint named in `sft:`.
#
# Outputs: `runs/<profile>/sft/final/` (model + tokenizer, safetensors), `metrics.json(l)`, `config.json`.

# %% tags=["parameters"]
profile = "mini"  # profile name: configs/<profile>.yaml, runs/<profile>/, figures/<profile>/
seed = 0  # run-wide seed (model initialisation, data order)
data = {}  # the `data:` section (drdo_lib.data.DataConfig): where the SFT rows come from
sft = {}  # the `sft:` section: fields of drdo_lib.sft.SFTConfig

# %%
import json
import logging
import time

import pandas as pd
from IPython.display import display

from drdo_lib import sft as sft_stage
from drdo_lib.data import pipeline as data_stage
from drdo_lib.plots import save_figure
from drdo_lib.plots.training import plot_metric_curves
from drdo_lib.run import Run
from drdo_lib.sft import SFTConfig, evaluate_sft

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("drdo_lib").setLevel(logging.INFO)
run = Run.create(profile, seed=seed, sections={"data": data, "sft": sft})  # by hand: the profile's YAML fills in
cfg = run.config(SFTConfig, "sft")
figdir = run.figures
cfg

# %% [markdown]
# ## Data
# Training rows are the SFT rows with split `train`; held-out rows (split `test` / `valid`) are used below to check
# what the policy learned. The tokenizer corpus is every text of the profile (SFT, comparisons, OOD articles).

# %%
loaded = data_stage.load(run)  # the data stage's artefact (notebook 01)
train_rows, heldout_rows = loaded.sft_rows()
corpus = loaded.corpus()
print(f"SFT rows: {len(train_rows)} train, {len(heldout_rows)} held out; tokenizer corpus: {len(corpus)} texts")
display(pd.DataFrame(train_rows.select(range(3)).select_columns(["prompt", "response"]).to_pandas()))

# %% [markdown]
# ## Training
# One call: tokenise (prompt masked), build the model, `SFTTrainer.train()`, save.

# %%
t0 = time.perf_counter()
final_dir = sft_stage.run(run, cfg, train_rows=train_rows, corpus=corpus)
wall = time.perf_counter() - t0
metrics = json.loads((final_dir.parent / "metrics.json").read_text())
print(f"trained {metrics['model']} ({metrics['parameters']:,} parameters, vocabulary {metrics['vocab_size']}) "
      f"for {metrics['steps']} steps in {wall:.0f}s ({metrics['seconds_per_step']:.3f} s/step on {metrics['device']})")
print("length filter:", metrics["rows"])

# %%
curve = [json.loads(x) for x in (final_dir.parent / "metrics.jsonl").read_text().splitlines()]
fig = plot_metric_curves({"SFT": curve}, ["loss", "mean_token_accuracy", "grad_norm", "learning_rate"],
                         titles={"loss": "completion NLL (nats/token)", "mean_token_accuracy": "token accuracy"},
                         suptitle=f"SFT training ({profile})")
_ = save_figure(fig, figdir / "sft_training")

# %% [markdown]
# ## Did the policy learn the task?
# The per-token NLL of held-out reference summaries, for the SFT policy and for the same architecture with random
# weights. On the synthetic testbed (`mini`) the true reward r* of greedy samples is known exactly: the SFT policy
# should score far above a random model (which invents words) and above an empty summary (r* = 0), towards its noisy
# references (the ideal summary scores 4).
# Preference training (notebook 04) then has to move r* further up.

# %%
ev = evaluate_sft(final_dir, heldout_rows, testbed=loaded.testbed, n_prompts=cfg.eval_prompts,
                  max_new_tokens=cfg.eval_max_new_tokens, max_length=cfg.max_length, template=cfg.template, seed=seed)
rows = [{"model": "SFT policy", "held-out NLL": ev["nll"]["sft"]},
        {"model": "random init", "held-out NLL": ev["nll"]["random_init"]}]
if ev["true_reward"] is not None:
    tr = ev["true_reward"]
    rows[0]["r* (greedy)"], rows[1]["r* (greedy)"] = tr["sft"], tr["random_init"]
    rows += [{"model": "reference summaries", "r* (greedy)": tr["reference"]},
             {"model": "ideal summaries", "r* (greedy)": tr["ideal"]},
             {"model": "empty summary", "r* (greedy)": tr["empty"]}]
summary = pd.DataFrame(rows).set_index("model")
summary.to_csv(figdir / "sft_summary.csv")
display(summary)
display(pd.DataFrame(ev["samples"]))

# %%
# NBVAL_CHECK_OUTPUT
print(f"profile={profile} model={metrics['model']} vocab={metrics['vocab_size']} "
      f"rows_kept={metrics['rows']['rows_kept']} steps={metrics['steps']}")
print(f"held-out NLL below random init: {ev['nll']['sft'] < ev['nll']['random_init']}")
if ev["true_reward"] is not None:
    tr = ev["true_reward"]
    print(f"r*: reference {tr['reference']:.1f}, ideal {tr['ideal']:.1f}, empty {tr['empty']:.1f}")
    print(f"SFT clearly above random init: {tr['sft'] > tr['random_init'] + 1.0}; "
          f"SFT clearly above an empty summary: {tr['sft'] > tr['empty'] + 1.0}")
