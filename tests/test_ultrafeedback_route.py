"""The UltraFeedback route of the data stage (``data.task: ultrafeedback``): pairs, a hashed test split, SFT rows made
of the chosen responses (paper Sec. 5), ``D_all`` without confidence labels, and the profile's stages end to end
(SFT → Oracle → DRDO through the CLI) with a tiny OPT on hand-made rows in the published schema."""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

import pytest
import yaml

from drdo_lib.data import DataConfig, load_sources
from drdo_lib.data.splits import select_split

REPO = Path(__file__).resolve().parent.parent
TOPICS = ["rivers", "trains", "apples", "clouds", "music", "chess", "bread", "lamps"]


def write_ultrafeedback(root: Path, n: int = 80, seed: int = 0, ratings: bool = True) -> Path:
    """``root/ultrafeedback/train.jsonl`` in argilla's schema: chat-message responses and 1–5 ratings; every
    prompt appears twice (two pairs), as in UltraFeedback where one instruction has several completions."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = TOPICS[(i // 2) % len(TOPICS)]
        prompt = f"Write one sentence about {topic} number {i // 2}."
        good = f"{topic} are calm and kind and good ."
        bad = f"{topic} {rng.choice(['no', 'bad', 'ugh'])} {'meh' * (1 + i % 2)} ."
        rows.append({"prompt": prompt, "source": "toy", "chosen-rating": 5.0, "rejected-rating": 2.0,
                     "chosen-model": "a", "rejected-model": "b",
                     "chosen": [{"role": "user", "content": prompt}, {"role": "assistant", "content": good}],
                     "rejected": [{"role": "user", "content": prompt}, {"role": "assistant", "content": bad}]})
    if not ratings:  # like ../shared/data's text-only sample
        rows = [{k: v for k, v in r.items() if not k.endswith("-rating")} for r in rows]
    d = root / "ultrafeedback"
    d.mkdir(parents=True)
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_local_route_splits_by_pair_and_builds_sft_rows_from_chosen(tmp_path, monkeypatch):
    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)
    root = write_ultrafeedback(tmp_path)
    cfg = DataConfig(source="local", task="ultrafeedback", data_dir=str(root), test_fraction=0.3)
    data = load_sources(cfg, seed=0)
    prefs = data.preferences
    assert len(prefs) == 80 and data.ood is None and data.testbed is None and data.data_dir == root
    counts = Counter(prefs["split"])
    assert set(counts) == {"train", "test"} and 8 <= counts["test"] <= 40, counts
    by_pair = {}
    for pid, s in zip(prefs["pair_id"], prefs["split"]):
        assert by_pair.setdefault(pid, s) == s
    assert load_sources(cfg, seed=0).preferences["split"] == prefs["split"]  # deterministic
    assert all(c.endswith("good .") for c in prefs["chosen"])  # the assistant turn, not the chat list
    assert all(s is not None for s in prefs["strength"]) and set(prefs["strength"]) == {3.0}  # rating margin
    sft = data.sft
    assert len(sft) == len(set(prefs["prompt"])) == 40
    first = {}
    for p, c, s in zip(prefs["prompt"], prefs["chosen"], prefs["split"]):
        first.setdefault(p, (c, s))
    for row in sft:
        assert (row["response"], row["split"]) == first[row["prompt"]] and row["source"] == "ultrafeedback"
    assert len(load_sources(DataConfig(source="local", task="ultrafeedback", data_dir=str(root),
                                       test_fraction=0.0), seed=0).preferences.filter(
        lambda s: s == "test", input_columns="split")) == 0


def test_d_all_needs_no_confidence_but_the_confidence_splits_do(tmp_path, monkeypatch):
    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)
    prefs = load_sources(DataConfig(source="local", task="ultrafeedback",
                                    data_dir=str(write_ultrafeedback(tmp_path, ratings=False))), seed=0).preferences
    assert all(s is None for s in prefs["strength"])
    assert select_split(prefs, "D_all") is prefs
    with pytest.raises(ValueError, match="no row has a confidence"):
        select_split(prefs, "D_hc_he")
    with pytest.raises(ValueError, match="unknown split 'D_x'"):
        select_split(prefs, "D_x")


@pytest.mark.parametrize("bad,match", [({"task": "alpaca"}, "task must be one of"),
                                       ({"task": "ultrafeedback"}, "needs source 'local' or 'hub'"),
                                       ({"task": "ultrafeedback", "source": "hub", "test_fraction": 1.0},
                                        "test_fraction"),
                                       ({"task": "ultrafeedback", "source": "hub", "test_fraction": True},
                                        "test_fraction")])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**bad)


def test_missing_ultrafeedback_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="no UltraFeedback files under .*ultrafeedback"):
        load_sources(DataConfig(source="local", task="ultrafeedback", data_dir=str(tmp_path)), seed=0)


def test_real_sample():
    d = Path(os.environ.get("DRDO_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (d / "ultrafeedback").is_dir():
        pytest.skip(f"real data samples not found at {d} (set DRDO_DATA_DIR)")
    data = load_sources(DataConfig(source="local", task="ultrafeedback", data_dir=str(d)), seed=0)
    n = len(data.preferences)
    assert n == 1000
    n_test = Counter(data.preferences["split"])["test"]
    assert 0.02 * n < n_test < 0.10 * n  # test_fraction 0.05
    assert len(data.sft) == len(set(data.preferences["prompt"]))


def test_ultrafeedback_profile_stages_end_to_end_through_the_cli(tmp_path, monkeypatch):
    """A tiny OPT (the paper's UltraFeedback family) through `--stage sft`, `--stage oracle`, `--stage policy` on an
    ultrafeedback-task profile: the route feeds every stage."""
    from drdo_lib.cli import main

    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    root = write_ultrafeedback(tmp_path / "data", n=96)
    small = {"max_prompt_length": 24, "max_length": 40, "logging_steps": 1, "template": "chat"}
    prof = {
        "profile": "uftest", "seed": 0, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": "local", "task": "ultrafeedback", "data_dir": str(root), "test_fraction": 0.2},
        "sft": {"model_name_or_path": "tiny-opt", "model_size": "micro", "learning_rate": 5e-3, "warmup_steps": 0,
                "max_steps": 4, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1,
                "eval_prompts": 4, "eval_max_new_tokens": 4, **small},
        "oracle": {"learning_rate": 5e-3, "max_steps": 4, "per_device_train_batch_size": 8,
                   "gradient_accumulation_steps": 1, "ensemble_size": 0, "ensemble_head_seeds": [], **small},
        "policy": {"methods": ["drdo"], "splits": ["D_all"], "max_steps": 3, "per_device_train_batch_size": 4,
                   "gradient_accumulation_steps": 1, "learning_rate": 5e-3, "warmup_steps": 0, "save_steps": 100,
                   "optim": "adamw_torch", "precompute_batch_size": 16, **small},
    }
    cfg = tmp_path / "uftest.yaml"
    cfg.write_text(yaml.safe_dump(prof, sort_keys=False))
    for stage in ("sft", "oracle", "policy"):
        extra = ["--method", "drdo", "--split", "D_all"] if stage == "policy" else []
        assert main(["train", "--config", str(cfg), "--stage", stage, *extra]) == 0, stage
    runs = tmp_path / "runs" / "uftest"
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(runs / "sft" / "final").model_type == "opt"
    oracle = json.loads((runs / "oracle" / "metrics.json").read_text())
    assert oracle["steps"] == 4 and oracle["heldout"]["pairs"] > 0  # held out = the hashed test pairs
    out = runs / "policy" / "drdo_D_all"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["method"] == "drdo"
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3 and all("oracle_reward_advantage" in m for m in metrics)
