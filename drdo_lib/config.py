"""Profiles and stage configs.

A profile is one YAML file in ``configs/`` (``mini``, ``sample``, ``tldr``, ``ultrafeedback``). Its top level holds
run-wide values (``profile``, ``seed``, ``runs_dir``, ``figures_dir``) and one mapping per stage (``theory``,
``data``, ``sft``, ``oracle``, ``policy``, ``eval``). Each stage mapping mirrors the fields of one frozen dataclass
defined beside the code that uses it; :func:`build_config` turns a mapping into that dataclass and rejects unknown
keys, so a typo in a profile fails loudly instead of silently falling back to a default.

papermill passes the same YAML to every notebook (``-f configs/<profile>.yaml``), so each stage mapping arrives in
the notebook as a ``dict`` parameter of the same name.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")

#: Repository root (the folder holding ``configs/``) when drdo_lib is used from a checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


def progress_disabled_by_env() -> bool:
    """True when ``DRDO_PROGRESS=0``: batch runs (run_all.sh, scripts/test.sh) turn off the trainers' live progress
    displays, whose thousands of display updates flood a notebook kernel's output channel under papermill/nbval."""
    import os

    return os.environ.get("DRDO_PROGRESS", "1") == "0"


def profile_path(profile: str | Path) -> Path:
    """Return the YAML file of a profile name (``"mini"``) or pass an existing path through."""
    p = Path(profile)
    if p.suffix in {".yaml", ".yml"} and p.exists():
        return p
    cand = CONFIG_DIR / f"{profile}.yaml"
    if not cand.exists():
        avail = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"unknown profile {profile!r}: {cand} does not exist (available: {avail})")
    return cand


def load_profile(profile: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a profile YAML into a plain dict (stage mappings stay dicts; see :func:`build_config`).

    A mapping (a profile already loaded, e.g. with command-line overrides applied) is returned as a copy; it must
    name its ``profile`` (the ``runs/<profile>/`` folder of its stages)."""
    if isinstance(profile, Mapping):
        if not profile.get("profile"):
            raise ValueError("a profile mapping needs a 'profile' name (its runs/<profile>/ folder)")
        return dict(profile)
    path = profile_path(profile)
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a profile must be a mapping at the top level, got {type(data).__name__}")
    data.setdefault("profile", Path(path).stem)
    return data


def profile_name(profile: str | Path | Mapping[str, Any]) -> str:
    """The name under ``runs/`` of a profile given by name (``"mini"``), YAML path, or loaded mapping."""
    if isinstance(profile, Mapping) or (Path(profile).suffix in {".yaml", ".yml"} and Path(profile).exists()):
        return str(load_profile(profile)["profile"])
    return str(profile)  # a name: the stages' folder even without a configs/<name>.yaml (rows given directly)


def profile_sections(profile: str | Path, **given: Mapping[str, Any] | None) -> Any:
    """The named stage mappings of a profile, with values given in the notebook taking precedence.

    Notebooks call this right after their ``parameters`` cell: ``data, sft = profile_sections(profile, data=data,
    sft=sft)``. Under papermill the given mappings already hold the profile's values (``-f configs/<profile>.yaml``);
    opened by hand in JupyterLab they are ``{}``, and the profile's YAML supplies every value, so a notebook means
    the same thing however it is run. Returns one dict for one name, else a tuple in the order given.
    """
    prof = load_profile(profile)
    out = []
    for name, value in given.items():
        section = prof.get(name) or {}
        if not isinstance(section, dict):
            raise ValueError(f"profile {profile!r}: section {name!r} must be a mapping, got {type(section).__name__}")
        out.append({**section, **(value or {})})
    return out[0] if len(out) == 1 else tuple(out)


def build_config(cls: type[T], values: Mapping[str, Any] | None = None, **overrides: Any) -> T:
    """Build the frozen dataclass ``cls`` from a mapping plus keyword overrides.

    Unknown keys raise ``ValueError`` naming the key and the accepted fields; validation of values is the
    dataclass's own ``__post_init__``.
    """
    merged = dict(values or {})
    merged.update(overrides)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(merged) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}; accepted: {sorted(names)}")
    return cls(**merged)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write a dataclass config (or mapping) as JSON next to an artefact; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    return path


def run_dir(profile: str, stage: str, runs_dir: str | Path | None = None) -> Path:
    """``runs/<profile>/<stage>/`` (created), the home of one stage's checkpoints, caches and metrics."""
    base = Path(runs_dir) if runs_dir is not None else REPO_ROOT / "runs"
    d = base / profile / stage
    d.mkdir(parents=True, exist_ok=True)
    return d


def figures_dir(profile: str, figures_root: str | Path | None = None) -> Path:
    """``figures/<profile>/`` (created), where a profile's figures and tables are written."""
    base = Path(figures_root) if figures_root is not None else REPO_ROOT / "figures"
    d = base / profile
    d.mkdir(parents=True, exist_ok=True)
    return d
