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
