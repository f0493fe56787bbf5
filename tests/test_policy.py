"""The policy stage (drdo_lib.policy), notebook 04's library side: a grid of runs, the final-metrics table, Fig. 4 and the reward-of-samples table."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from drdo_lib.plots import save_figure  # noqa: E402
from drdo_lib.plots.training import FIG4_PANELS, plot_fig4_training_curves  # noqa: E402
from drdo_lib.policy import final_metrics_table, load_run, run_grid, true_reward_table  # noqa: E402
from drdo_lib.run import Run  # noqa: E402

from policy_helpers import PROFILE, write_profile  # noqa: E402


def test_grid_table_fig4_and_sample_rewards(tmp_path):
    run = Run.create(write_profile(tmp_path, policy={"max_steps": 3, "save_steps": 100, "logging_steps": 1}))
    dirs = run_grid(run, methods=["drdo", "dpo"], splits=["D_all", "D_lc_le"], progress=False)
    assert [d.name for d in dirs] == ["drdo_D_all", "dpo_D_all", "drdo_D_lc_le", "dpo_D_lc_le"]

    table = final_metrics_table(dirs)
    assert list(table.index) == [("drdo", "D_all"), ("dpo", "D_all"), ("drdo", "D_lc_le"), ("dpo", "D_lc_le")]
    assert (table["steps"] == 3).all() and table[list(FIG4_PANELS)].notna().all().all()
    run = load_run(dirs[0])
    tail = [r["bt_accuracy"] for r in run["metrics"][-3:]]
    assert table.loc[("drdo", "D_all"), "bt_accuracy"] == sum(tail) / 3

    curves = {(r["method"], r["split"]): r["metrics"] for r in map(load_run, dirs)}
    fig = plot_fig4_training_curves(curves, methods=["drdo", "dpo"], splits=["D_all", "D_lc_le"])
    assert len(fig.axes) == 8 and all(len(ax.lines) == 4 for ax in fig.axes)  # 2 methods x (raw + smoothed)
    paths = save_figure(fig, tmp_path / "fig4")
    assert all(p.stat().st_size > 0 for p in paths)

    sft_dir = tmp_path / "runs" / PROFILE / "sft" / "final"
    prompts = ["POST: a b c TL;DR:", "POST: d e TL;DR:"]
    n_words = lambda ps, rs: [float(len(r.split())) for r in rs]  # noqa: E731  (a stand-in reward)
    rt = true_reward_table(dirs[:2], sft_dir, prompts, n_words, max_new_tokens=4)
    assert list(rt.index) == ["sft", "drdo/D_all", "dpo/D_all"]
    assert rt.loc["sft", "reward_minus_sft"] == 0.0 and rt["win_vs_sft"].between(0, 1).all()


def test_true_reward_oracle_kinds_feed_the_policy_without_a_trained_oracle(tmp_path):
    import shutil

    import numpy as np
    import yaml
    from transformers import AutoTokenizer

    from drdo_lib.data import pipeline as data_stage
    from drdo_lib.policy import PolicyConfig, prepare_dataset
    from drdo_lib.policy import run as run_policy

    path = write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 100})
    prof = yaml.safe_load(path.read_text())
    prof["oracle"] = {"kind": "noisy_true_reward", "noise_std": 0.3, "ensemble_size": 2, "ensemble_head_seeds": [1, 2]}
    path.write_text(yaml.safe_dump(prof))
    runs = tmp_path / "runs" / PROFILE
    shutil.rmtree(runs / "oracle")  # no trained Oracle or ensemble: the testbed's r* is the Oracle
    shutil.rmtree(runs / "ensemble")
    run = Run.create(path)
    cfg = run.config(PolicyConfig, "policy")
    tok = AutoTokenizer.from_pretrained(run.sft_model)
    ds, _ = prepare_dataset(run, cfg, "edpo", "D_all", tok)
    tb = data_stage.load(run).testbed
    exact = tb.true_rewards(ds["prompt"], ds["chosen"])
    noise = np.asarray(ds["oracle_chosen_reward"]) - exact
    assert 0.15 < noise.std() < 0.45
    ens = np.asarray(ds["ensemble_chosen_rewards"])
    assert ens.shape == (len(ds), 2) and not np.allclose(ens[:, 0], ens[:, 1])
    out = run_policy(run, cfg, "drdo", "D_all", progress=False)  # trains: no oracle folder needed
    assert (out / "final" / "model.safetensors").exists()
