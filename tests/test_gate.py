"""The sanity gate (drdo_lib.gate): clean labels by r*, and a gate that fails loudly when DPO does not beat SFT."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import yaml

from drdo_lib import gate
from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed
from drdo_lib.run import Run

from policy_helpers import PROFILE, write_profile


def test_clean_pairs_prefer_the_higher_true_reward_and_drop_ties():
    tb = SyntheticTestbed(SyntheticConfig(seed=0, ref_quality_min=0.3, tie_fraction=0.2))
    raw = tb.comparison_rows(400)
    rows = datasets.Dataset.from_list([{"prompt": r["info"]["post"], "chosen": r["summaries"][r["choice"]]["text"],
                                        "rejected": r["summaries"][1 - r["choice"]]["text"], "id": str(i)}
                                       for i, r in enumerate(raw)])
    clean = gate.clean_pairs(rows, tb)
    rc = tb.true_rewards(clean["prompt"], clean["chosen"])
    rr = tb.true_rewards(clean["prompt"], clean["rejected"])
    assert np.all(rc > rr)
    # independent count: pairs of unequal r*, and the noisy labels disagree with r* on some of them
    r = np.array([[tb.true_reward(x["info"]["post"], s["text"]) for s in x["summaries"]] for x in raw])
    assert len(clean) == int((r[:, 0] != r[:, 1]).sum())
    agree = np.array([r[i, x["choice"]] > r[i, 1 - x["choice"]] for i, x in enumerate(raw) if r[i, 0] != r[i, 1]])
    assert 0.5 < agree.mean() < 1.0
    assert set(clean["id"]) == {str(i) for i in range(len(raw)) if r[i, 0] != r[i, 1]}


def test_gate_fails_loudly_when_dpo_does_not_beat_sft(tmp_path):
    path = write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 100, "learning_rate": 1e-6})
    prof = yaml.safe_load(path.read_text())
    prof["gate"] = {"n_prompts": 8, "max_new_tokens": 4, "n_bootstrap": 200}
    path.write_text(yaml.safe_dump(prof))
    run = Run.create(path).validate()
    with pytest.raises(gate.GateFailed, match="cannot show an improvement"):
        gate.run(run)  # 2 steps at lr 1e-6 leave the random SFT model's greedy samples unchanged: difference 0
    res = json.loads((tmp_path / "runs" / PROFILE / "gate" / "result.json").read_text())
    assert res["status"] == "failed" and res["ci_low"] <= 0 and res["n_prompts"] == 4  # 4 held-out SFT rows
    # the gate's run is kept apart from the method runs
    assert not (tmp_path / "runs" / PROFILE / "policy" / "dpo_clean").exists()
    assert (tmp_path / "runs" / PROFILE / "gate" / PROFILE / "policy" / "dpo_clean" / "final").is_dir()


def test_gate_can_be_disabled(tmp_path):
    path = write_profile(tmp_path)
    run = Run.create(path, sections={"gate": {"enabled": False}})
    assert gate.run(run)["status"] == "skipped"
