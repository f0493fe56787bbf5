"""The locked environment of the CPU route: requirements/lock.txt pins what pyproject.toml asks for."""
from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "lock.txt"


def _lock() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"lock line is not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def _requirements(extras=("dev", "judge", "alpaca")) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for e in extras:
        reqs += project["optional-dependencies"][e]
    return [Requirement(r) for r in reqs]


def test_every_requirement_of_the_cpu_route_is_pinned_within_its_bounds():
    pins = _lock()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is required by pyproject.toml but not pinned in requirements/lock.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock pins {name}=={pins[name]}, outside {req}"


def test_torch_is_pinned_without_a_local_build_label():
    # 'torch==2.13.0' matches the CPU wheel (2.13.0+cpu) and, on a GPU node, PyPI's CUDA build of the same release
    assert "+" not in str(_lock()["torch"])


@pytest.mark.skipif(os.environ.get("DRDO_UNLOCKED") == "1", reason="DRDO_UNLOCKED=1: trying versions outside the lock")
@pytest.mark.parametrize("name", ["torch", "transformers", "trl", "datasets", "accelerate", "numpy"])
def test_this_environment_is_the_locked_one(name):
    """The environment running the tests is the one the lock describes (setup_env.sh installs with it as constraints);
    a mismatch means the tests ran against versions the committed notebooks were not recorded with."""
    installed = Version(metadata.version(name))
    assert Version(installed.base_version) == _lock()[canonicalize_name(name)], (
        f"{name} {installed} installed, lock says {_lock()[canonicalize_name(name)]}: run scripts/setup_env.sh")


def test_setup_and_conda_routes_use_the_lock():
    assert '-c "$lock"' in (REPO / "scripts" / "setup_env.sh").read_text()
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-c requirements/lock.txt" in pip_section
