"""Profiles and config helpers, plus run_all.sh's argument errors."""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from drdo_lib.config import REPO_ROOT, build_config, load_profile, profile_path
from drdo_lib.run import SECTIONS as SECTION_CLASSES


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


def test_run_fills_sections_from_yaml_and_lets_given_values_win(tmp_path):
    from drdo_lib.run import Run

    prof = load_profile("mini")
    run = Run.create("mini", sections={"data": {}})
    assert run.section("data") == prof["data"] and run.seed == prof["seed"] and run.name == "mini"
    run = Run.create("mini", seed=3, runs_dir=tmp_path / "r", figures_dir=tmp_path / "f",
                     sections={"data": {"confidence_mode": "raw"}, "theory": None})
    assert run.section("data") == {**prof["data"], "confidence_mode": "raw"}
    assert run.section("theory") == prof["theory"] and run.seed == 3 and run.profile["seed"] == 3
    assert run.sft_model == tmp_path / "r" / "mini" / "sft" / "final"
    assert run.policy_dir("drdo", "D_all") == tmp_path / "r" / "mini" / "policy" / "drdo_D_all"
    assert run.figures == tmp_path / "f" / "mini" and run.figures.is_dir()
    assert run.with_seed(5).seed == 5 and run.with_seed(5).runs_root == run.runs_root
    with pytest.raises(ValueError, match="seed must be an integer"):
        Run.create("mini", seed="1")


def test_run_validate_rejects_unknown_sections_keys_and_bad_values():
    from drdo_lib.run import Run

    Run.create("mini").validate()
    with pytest.raises(ValueError, match="unknown section.*polcy"):
        Run.create({**load_profile("mini"), "polcy": {"beta": 5.0}}).validate()
    with pytest.raises(ValueError, match="unknown setting.*betta"):
        Run.create("mini", sections={"policy": {"betta": 5.0}}).validate()
    with pytest.raises(ValueError, match="policy"):
        Run.create("mini", sections={"policy": {"alpha": "abc"}}).validate()


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
    from drdo_lib.policy import PolicyConfig

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
    # Table 6's batch is 12 x 4 = 48 pairs per GPU per step (96 on the paper's 2 A100s); App. D's text says 64,
    # which no GPU count gives: the profile keeps Table 6 and says so next to the setting
    assert pol.per_device_train_batch_size * pol.gradient_accumulation_steps == 48
    text = (REPO_ROOT / "configs" / f"{profile}.yaml").read_text()
    assert "effective batch size of 64" in text
    # gradient clipping is not the paper's: an explicit setting in the profile, not a silent library default
    assert "max_grad_norm" in prof["policy"] and "max_grad_norm" in prof["oracle"]
    assert pol.max_grad_norm == oracle.max_grad_norm == 1.0
    # the Oracle and the e-DPO reward models start from the base model + a reward head (paper Sec. 5), not the SFT policy
    assert oracle.init_model == sft.model_name_or_path == model
    # e-DPO: Fisch et al.'s pessimistic objective
    assert pol.edpo_reduction == "pessimistic" and pol.edpo_kl_coef >= 0


def _code_without_config_classes() -> str:
    """The library's and the notebooks' source with every config dataclass's field definitions and ``__post_init__``
    removed (defining or validating a field is not reading it)."""
    import ast

    parts = []
    for path in sorted((REPO_ROOT / "drdo_lib").rglob("*.py")) + sorted((REPO_ROOT / "notebooks").glob("*.py")):
        src = path.read_text()
        tree = ast.parse(src)
        lines = src.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
                # a field's definition and its validation are not reads; the class's other methods are
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) or (isinstance(item, ast.FunctionDef)
                                                           and item.name == "__post_init__"):
                        for i in range(item.lineno - 1, item.end_lineno):
                            lines[i] = ""
        parts.append("\n".join(lines))
    return "\n".join(parts)


def test_every_documented_setting_is_read_by_the_code():
    """Walk every profile YAML against the config dataclasses and the code: each key of each section is a field
    (build_config), and each field of each section's dataclass is read somewhere in drdo_lib outside its own
    class body, in the library or a notebook (``cfg.<field>`` or ``getattr(cfg, "<field>")``)."""
    import dataclasses
    import re

    from drdo_lib.run import section_class

    code = _code_without_config_classes()
    unread = []
    for name in SECTION_CLASSES:
        cls = section_class(name)
        for f in dataclasses.fields(cls):
            if not re.search(rf"\.{f.name}\b|getattr\([^)]*[\"']{f.name}[\"']", code):
                unread.append(f"{name}.{f.name}")
    assert not unread, f"settings no code reads: {unread}"
    top = {"profile", "seed", "runs_dir", "figures_dir"}
    for path in sorted((REPO_ROOT / "configs").glob("*.yaml")):
        prof = load_profile(path)
        assert set(prof) <= set(SECTION_CLASSES) | top, path
        for name in set(prof) & set(SECTION_CLASSES):
            build_config(section_class(name), prof[name] or {})


def test_require_model_passes_hub_ids_and_names_missing_local_models(tmp_path):
    from drdo_lib.run import MissingStageOutput, Run

    run = Run.create("mini", runs_dir=tmp_path)
    for hub_id in ("gpt2", "facebook/opt-125m"):
        assert str(run.require_model(hub_id, "model", "sft")) == hub_id
    with pytest.raises(MissingStageOutput, match="run the sft stage"):
        run.require_model(run.sft_model, "the SFT policy", "sft")
    with pytest.raises(MissingStageOutput):
        run.require_model("no/such/run/sft/final", "the SFT policy", "sft")


def test_environment_sends_runs_and_figures_elsewhere(tmp_path, monkeypatch):
    from drdo_lib.run import Run

    monkeypatch.setenv("DRDO_RUNS_DIR", str(tmp_path / "env_runs"))
    monkeypatch.setenv("DRDO_FIGURES_DIR", str(tmp_path / "env_figs"))
    run = Run.create("mini")
    assert run.runs_root == tmp_path / "env_runs" and run.figures_root == tmp_path / "env_figs"
    # a profile's own value and an explicit argument win over the environment
    assert Run.create({"profile": "x", "runs_dir": str(tmp_path / "prof")}).runs_root == tmp_path / "prof"
    assert Run.create("mini", runs_dir=tmp_path / "arg").runs_root == tmp_path / "arg"
    monkeypatch.delenv("DRDO_RUNS_DIR")
    assert Run.create("mini").runs_root != tmp_path / "env_runs"
