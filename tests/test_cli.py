"""The CLI (``python -m drdo_lib train ...``): override parsing, errors, and one real policy run in a subprocess."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drdo_lib.cli import _build_parser, apply_overrides, main

from policy_helpers import PROFILE, write_profile

REPO = Path(__file__).resolve().parent.parent


def test_overrides_go_to_the_stage_section_a_named_section_or_the_top_level():
    prof = {"seed": 0, "policy": {"beta": 0.1}, "data": {"n_train": 10}}
    out = apply_overrides(prof, "policy", ["beta=0.5", "methods=[dpo, ipo]", "data.n_train=7", "seed=3",
                                           "deepspeed=null", "bf16=true", "learning_rate=3e-5"])
    assert out["policy"] == {"beta": 0.5, "methods": ["dpo", "ipo"], "deepspeed": None, "bf16": True,
                             "learning_rate": 3e-5}
    assert out["data"] == {"n_train": 7} and out["seed"] == 3
    assert prof["policy"] == {"beta": 0.1} and prof["seed"] == 0  # the input is not modified
    assert apply_overrides({}, "ensemble", ["lr=1"])["oracle"] == {"lr": 1}  # the ensemble reads the oracle section


@pytest.mark.parametrize("bad", ["beta", "=3", "policy.=1"])
def test_malformed_overrides_are_rejected(bad):
    with pytest.raises(ValueError):
        apply_overrides({"policy": {}}, "policy", [bad])


def test_parser_accepts_the_deepspeed_launcher_local_rank():
    args = _build_parser().parse_args(["train", "--config", "x.yaml", "--local_rank=1", "--method", "dpo", "beta=1"])
    assert args.local_rank == 1 and args.method == "dpo" and args.overrides == ["beta=1"]


def test_unknown_setting_fails_with_the_accepted_fields(tmp_path, capsys):
    cfg = write_profile(tmp_path)
    assert main(["train", "--config", str(cfg), "--method", "dpo", "betta=0.2"]) == 2
    assert re.search("unknown setting.*betta.*accepted", capsys.readouterr().err)
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.parametrize("override,match", [("polcy.beta=5.0", "unknown section.*polcy"),
                                            ("data.n_trian=5", "unknown setting.*n_trian"),
                                            ("policy.alpha=abc", "policy")])
def test_overrides_of_other_sections_are_validated_before_anything_runs(tmp_path, capsys, override, match):
    cfg = write_profile(tmp_path)
    assert main(["train", "--config", str(cfg), "--stage", "policy", override]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "runs" / PROFILE / "policy").exists()  # nothing ran


def test_cli_subprocess_trains_a_policy(tmp_path):
    cfg = write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 10})
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "drdo_lib", "train", "--config", str(cfg), "--stage", "policy",
                           "--method", "drdo", "--split", "D_all", "alpha=0.5", "student_reward=logprob"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "runs" / PROFILE / "policy" / "drdo_D_all"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["method"] == "drdo" and summary["world_size"] == 1
    assert summary["provenance"]["packages"]["torch"] and "torch_threads" in summary["provenance"]["device"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["alpha"] == 0.5 and saved["student_reward"] == "logprob"
    assert (out / "final" / "model.safetensors").exists() and not (out / "final" / "reward_head.safetensors").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("method", ["cdpo", "rdpo", "drdpo"])
def test_cli_trains_the_noise_robust_baselines(tmp_path, method):
    cfg = write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 10})
    assert main(["train", "--config", str(cfg), "--stage", "policy", "--method", method, "--split", "D_all",
                 "label_noise_eps=0.2", "drdpo_beta=0.5"]) == 0
    out = tmp_path / "runs" / PROFILE / "policy" / f"{method}_D_all"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and summary["steps"] == 2
    assert json.loads((out / "config.json").read_text())["label_noise_eps"] == 0.2
    import math

    assert math.isfinite(summary["final"][f"loss_{method}"])


def test_cli_rejects_an_impossible_flip_rate(tmp_path, capsys):
    cfg = write_profile(tmp_path)
    assert main(["train", "--config", str(cfg), "--method", "rdpo", "label_noise_eps=0.5"]) == 2
    assert "label_noise_eps" in capsys.readouterr().err


def test_cli_sft_stage_passes_the_profile_name(tmp_path, monkeypatch):
    import yaml

    import drdo_lib.config as C

    cfg = write_profile(tmp_path)
    prof = yaml.safe_load(cfg.read_text())
    prof["sft"] = {"model_name_or_path": "tiny-gpt2", "model_size": "micro", "max_steps": 2, "warmup_steps": 0,
                   "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "logging_steps": 1,
                   "max_prompt_length": 96, "max_length": 128, "eval_prompts": 0}
    cfg.write_text(yaml.safe_dump(prof))
    monkeypatch.setattr(C, "CONFIG_DIR", tmp_path)  # the SFT stage reads configs/<name>.yaml by name
    assert main(["train", "--config", PROFILE, "--stage", "sft", "learning_rate=1e-3"]) == 0
    out = tmp_path / "runs" / PROFILE / "sft"
    assert (out / "final" / "model.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 1e-3


@pytest.mark.parametrize("missing,match", [("sft", "SFT policy.*run the sft"), ("oracle", "Oracle.*run the oracle"),
                                           ("weights", "no \\*.safetensors weights")])
def test_a_stage_whose_inputs_are_missing_says_which_stage_to_run(tmp_path, capsys, missing, match):
    import shutil

    cfg = write_profile(tmp_path)
    runs = tmp_path / "runs" / PROFILE
    if missing == "sft":
        shutil.rmtree(runs / "sft")
    elif missing == "oracle":
        shutil.rmtree(runs / "oracle")
    else:
        for f in (runs / "sft" / "final").glob("*.safetensors"):
            f.unlink()  # an interrupted save: config.json but no weights
    assert main(["train", "--config", str(cfg), "--stage", "policy", "--method", "drdo"]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err
    assert not (runs / "policy").exists()  # nothing was created before the check


def test_bad_yaml_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: x\npolicy: {beta: [0.1\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drdo_lib train:") and "Traceback" not in err


def test_all_trains_every_method_and_split_of_the_profile(tmp_path):
    cfg = write_profile(tmp_path, policy={"methods": ["dpo", "ipo"], "max_steps": 1, "save_steps": 10})
    assert main(["train", "--config", str(cfg), "--stage", "policy", "--all"]) == 0
    runs = tmp_path / "runs" / PROFILE / "policy"
    assert sorted(p.parent.name for p in runs.glob("*/summary.json")) == ["dpo_D_all", "ipo_D_all"]


@pytest.mark.parametrize("args", [["--stage", "sft", "--all"], ["--stage", "policy", "--all", "--method", "dpo"],
                                  ["--stage", "evaluate", "--split", "D_all"]])
def test_all_method_split_misuse_is_one_line_and_creates_nothing(tmp_path, capsys, args):
    cfg = write_profile(tmp_path)
    capsys.readouterr()  # the fixture's own progress output
    assert main(["train", "--config", str(cfg), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drdo_lib train: ")
    assert "--method/--split/--all apply to --stage policy only" in err[0] or "without --method/--split" in err[0]
    assert not (tmp_path / "runs" / PROFILE / "policy").exists()


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--stage policy --all" in out and "--stage evaluate" in out
