"""Profiles and config helpers, plus run_all.sh's argument errors."""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from drdo_lib.config import REPO_ROOT, build_config, load_profile, profile_path


@dataclasses.dataclass(frozen=True)
class _Toy:
    lr: float = 1e-3  # learning rate
    steps: int = 10  # optimisation steps

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


def test_build_config_rejects_unknown_keys_and_validates():
    assert build_config(_Toy, {"lr": 0.5}, steps=3) == _Toy(0.5, 3)
    with pytest.raises(ValueError, match="unknown setting.*'stpes'"):
        build_config(_Toy, {"stpes": 3})
    with pytest.raises(ValueError, match="lr must be"):
        build_config(_Toy, {"lr": -1})


@pytest.mark.parametrize("profile", ["mini", "sample"])
def test_profiles_load(profile):
    data = load_profile(profile)
    assert data["profile"] == profile
    assert isinstance(data.get("seed"), int)


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="unknown profile 'nope'.*available"):
        profile_path("nope")


def test_run_all_unknown_profile_exits_nonzero():
    res = subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), "--profile", "nope", "--no-setup"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "unknown profile 'nope'" in res.stderr and "mini" in res.stderr


def test_run_all_unknown_argument_exits_nonzero():
    res = subprocess.run(["bash", str(REPO_ROOT / "run_all.sh"), "--bogus"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "unknown argument" in res.stderr


def test_every_profile_yaml_is_a_mapping():
    for path in Path(REPO_ROOT / "configs").glob("*.yaml"):
        assert isinstance(load_profile(path), dict), path


def test_profile_sections_fill_from_yaml_and_let_given_values_win():
    from drdo_lib.config import profile_sections

    prof = load_profile("mini")
    assert profile_sections("mini", data={}) == prof["data"]
    data, theory = profile_sections("mini", data={"confidence_mode": "raw"}, theory=None)
    assert data == {**prof["data"], "confidence_mode": "raw"}
    assert theory == prof["theory"]


SECTION_CLASSES = {"theory": ("drdo_lib.theory", "TheoryConfig"), "data": ("drdo_lib.data", "DataConfig"),
                   "sft": ("drdo_lib.sft", "SFTConfig"), "oracle": ("drdo_lib.oracle", "OracleConfig"),
                   "policy": ("drdo_lib.trainer", "PolicyConfig"), "eval": ("drdo_lib.evaluation", "EvalConfig")}


@pytest.mark.parametrize("profile", ["mini", "sample", "tldr", "ultrafeedback"])
def test_every_section_of_every_profile_builds_its_config(profile):
    import importlib

    prof = load_profile(profile)
    unknown = set(prof) - set(SECTION_CLASSES) - {"profile", "seed", "runs_dir", "figures_dir"}
    assert not unknown, f"{profile}: sections without a config class {unknown}"
    for section, (module, cls) in SECTION_CLASSES.items():
        if section in prof:
            build_config(getattr(importlib.import_module(module), cls), prof[section] or {})


@pytest.mark.parametrize("profile,model,template,task", [
    ("tldr", "microsoft/Phi-3-mini-4k-instruct", "tldr", "tldr"),
    ("ultrafeedback", "facebook/opt-1.3b", "chat", "ultrafeedback")])
def test_paper_profiles_carry_table6_and_appendix_d(profile, model, template, task):
    from drdo_lib.data import DataConfig
    from drdo_lib.oracle import OracleConfig
    from drdo_lib.sft import SFTConfig
    from drdo_lib.trainer import PolicyConfig

    prof = load_profile(profile)
    data = build_config(DataConfig, prof["data"])
    sft = build_config(SFTConfig, prof["sft"])
    oracle = build_config(OracleConfig, prof["oracle"])
    pol = build_config(PolicyConfig, prof["policy"])
    assert data.source == "hub" and data.task == task
    # SFT (App. D): a hub model, TRL with lr 1e-5, cosine, 100 warm-up steps
    assert (sft.model_name_or_path, sft.template) == (model, template)
    assert (sft.learning_rate, sft.lr_scheduler_type, sft.warmup_steps) == (1e-5, "cosine", 100)
    # Oracle (App. D): the policy's batch, lr 1e-5, one epoch, Eq. 5 alpha 0.01; e-DPO: 3 reward models, alpha 0
    assert (oracle.per_device_train_batch_size, oracle.gradient_accumulation_steps) == \
        (pol.per_device_train_batch_size, pol.gradient_accumulation_steps) == (12, 4)
    assert (oracle.learning_rate, oracle.num_train_epochs, oracle.alpha) == (1e-5, 1, 0.01)
    assert (oracle.ensemble_size, oracle.ensemble_alpha, len(set(oracle.ensemble_head_seeds))) == (3, 0.0, 3)
    # Policy (Table 6)
    assert (pol.learning_rate, pol.lr_scheduler_type, pol.weight_decay, pol.optim) == \
        (5e-6, "cosine", 0.05, "paged_adamw_32bit")
    assert (pol.alpha, pol.gamma, pol.beta, pol.max_steps, pol.max_length) == (0.1, 2.0, 0.1, 1000, 1024)
    assert pol.gradient_checkpointing and sft.gradient_checkpointing and oracle.gradient_checkpointing
