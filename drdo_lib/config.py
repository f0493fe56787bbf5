"""Profiles and stage configs.

A profile is one YAML file in ``configs/`` (``mini``, ``sample``, ``tldr``, ``ultrafeedback``). Its top level holds
run-wide values (``profile``, ``seed``, ``runs_dir``, ``figures_dir``) and one mapping per stage (``theory``,
``data``, ``sft``, ``oracle``, ``policy``, ``eval``). Each stage mapping mirrors the fields of one frozen dataclass
defined beside the code that uses it; :func:`build_config` turns a mapping into that dataclass and rejects unknown
keys, so a typo in a profile fails loudly instead of silently falling back to a default.

papermill passes the same YAML to every notebook (``-f configs/<profile>.yaml``), so each stage mapping arrives in
the notebook as a ``dict`` parameter of the same name; :class:`drdo_lib.run.Run` merges those over the profile's
sections and resolves the seed and every path once.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")

#: Repository root (the folder holding ``configs/``) when drdo_lib is used from a checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


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


@contextlib.contextmanager
def file_lock(path: str | Path):
    """An exclusive advisory lock on ``path`` (created): processes sharing a filesystem (study shards, two fetches
    of the SmolLM2 weights) build a shared artefact once."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

