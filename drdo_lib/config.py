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
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from drdo_lib.errors import UserError, redact_obj

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A profile or setting that cannot be used (unknown key, wrong type, bad value, duplicate key, empty file)."""


#: A profile name is a folder under ``runs_dir`` and ``figures_dir``: letters, digits, ``._-``, no ``..``.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a safe single folder name (:data:`SAFE_NAME`), else :class:`ConfigError` naming it."""
    if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value:
        raise ConfigError(f"{what} must be a plain name (letters, digits, '.', '_', '-'; no '/' or '..'), "
                          f"got {value!r}")
    return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a key given twice in one mapping (YAML would keep the last silently)."""


def _construct_unique_mapping(loader, node, deep=False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        except TypeError:  # an unhashable key: the usual constructor reports it
            break
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, rejecting duplicate keys with one line naming the key, the file and the line."""
    path = Path(path)
    try:
        with open(path) as f:
            return yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: {problem}") from None

#: Repository root (the folder holding ``configs/``) when drdo_lib is used from a checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


class ProfileNotFound(UserError, FileNotFoundError):
    """No profile of that name or path."""


def profile_path(profile: str | Path) -> Path:
    """Return the YAML file of a profile name (``"mini"``) or pass an existing path through."""
    p = Path(profile)
    if p.suffix in {".yaml", ".yml"} and p.exists():
        return p
    cand = CONFIG_DIR / f"{profile}.yaml"
    if not cand.exists():
        avail = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
        raise ProfileNotFound(f"unknown profile {profile!r}: {cand} does not exist (available: {avail})")
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
    data = load_yaml(path)
    if data is None:
        raise ConfigError(f"{path}: the profile file is empty (a profile names its sections; see configs/mini.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a profile must be a mapping at the top level, got {type(data).__name__}")
    data.setdefault("profile", Path(path).stem)
    return data


def build_config(cls: type[T], values: Mapping[str, Any] | None = None, **overrides: Any) -> T:
    """Build the frozen dataclass ``cls`` from a mapping plus keyword overrides.

    Unknown keys raise :class:`ConfigError` (a ``ValueError``) naming the key and the accepted fields; then every
    value is checked against its field's annotation (:func:`check_types`: finite floats, integral ints, ...);
    the remaining rules are the dataclass's own ``__post_init__``.
    """
    merged = dict(values or {})
    merged.update(overrides)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(merged) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown setting(s) {unknown}; accepted: {sorted(names)}")
    return cls(**check_types(cls, merged))


def check_types(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked against the annotations of dataclass ``cls``: a ``float`` field takes a finite number
    (an int, or a string such as ``"3e-5"`` that YAML 1.1 leaves unparsed, is converted), an ``int`` field an
    integer (a float only when integral: ``1e3`` -> 1000), a ``bool`` field true/false, a ``str`` field a string,
    a ``tuple[X, ...]`` field a list of X (or one X); ``None`` only where the annotation allows it. Raises
    :class:`ConfigError` naming the field, the expected type and the value given; returns the converted values."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved is not checked here
        hints = {}
    out = dict(values)
    for name, value in values.items():
        hint = hints.get(name)
        if hint is None:
            continue
        ok, conv = _conform(hint, value)
        if not ok:
            raise ConfigError(f"{cls.__name__}.{name} must be {_describe(hint)}, got {value!r}")
        out[name] = conv
    return out


_UNCHECKED = object()


def _conform(hint: Any, value: Any) -> tuple[bool, Any]:
    """``(accepted, converted value)`` of ``value`` for annotation ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for alt in args:  # the alternatives in order; ints before floats keep an int an int
            ok, conv = _conform(alt, value)
            if ok:
                return True, conv
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return True, int(value)
        return False, value
    if hint is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return False, value
        if isinstance(value, (int, float)):
            return math.isfinite(value), value
        return False, value
    if hint is str:
        return isinstance(value, str), value
    if origin in (tuple, list) or hint in (tuple, list):
        if isinstance(value, (list, tuple)):
            if not args or (origin is tuple and (len(args) != 2 or args[1] is not Ellipsis)):
                return True, value  # a bare or fixed-length tuple: the dataclass checks its items
            items = [_conform(args[0], v) for v in value]
            if all(ok for ok, _ in items):
                return True, type(value)(conv for _, conv in items)
            return False, value
        if args and args[-1] is Ellipsis:  # one item for a tuple[X, ...] field (the dataclass wraps it)
            return _conform(args[0], value)
        return False, value
    if origin in (dict, Mapping) or hint in (dict,) or (isinstance(hint, type) and issubclass(hint, Mapping)):
        return isinstance(value, Mapping), value
    return True, value  # other annotations: left to the dataclass


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "null"
    if hint is float:
        return "a finite number"
    if hint is int:
        return "an integer"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    if origin in (tuple, list) or hint in (tuple, list):
        return f"a list of {_describe(args[0])}" if args and args[-1] is Ellipsis else "a list"
    if origin in (dict, Mapping) or hint is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write a dataclass config (or mapping) as JSON next to an artefact; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    write_text_atomic(path, json.dumps(redact_obj(data), indent=2, sort_keys=True, default=str))
    return path


def safetensors_problem(path: str | Path) -> str | None:
    """Why the safetensors file ``path`` cannot be read (``None`` when its header is whole and its size matches the
    tensors it lists): a truncated copy is caught here, by name, before a model loads it."""
    import struct

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{size} bytes, too short for a header"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return f"header of {n} bytes in a {size}-byte file: truncated"
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return f"unreadable header: {e}"
    if not isinstance(header, dict):
        return "header is not a mapping"
    end = max((int(v["data_offsets"][1]) for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end != size:
        return f"{size} bytes, the header lists {8 + n + end}: truncated"
    return None


#: The folder inside a stage folder where a new attempt at a finished run trains (see :func:`promote_attempt`).
ATTEMPT_DIR = ".attempt"


def fresh_attempt_dir(out: str | Path, *, clear: bool = True) -> Path:
    """``out/.attempt/``: where a new attempt at a finished run writes everything (checkpoints, metrics, config,
    final model) so the finished record stays whole until the attempt completes. A leftover of an attempt that
    was killed is removed first (``clear``; the process that saves does it)."""
    import shutil

    work = Path(out) / ATTEMPT_DIR
    if clear and work.exists():
        shutil.rmtree(work)
    return work


def promote_attempt(work: str | Path, out: str | Path) -> None:
    """Move every entry of a completed attempt ``work`` into ``out``, each replacing the entry of the same name
    (a folder by two renames, so it is never half old and half new); the old run's ``checkpoint-*`` folders that
    the attempt did not write go too. Then ``work`` is removed."""
    import shutil

    work, out = Path(work), Path(out)
    names = {p.name for p in work.iterdir()}
    for old in out.glob("checkpoint-*"):
        if old.name not in names:
            shutil.rmtree(old, ignore_errors=True)
    for src in sorted(work.iterdir()):
        dst = out / src.name
        if src.is_dir() and dst.exists():
            aside = out / f".{src.name}.replaced-{os.getpid()}"
            os.replace(dst, aside)
            os.replace(src, dst)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(src, dst)
    shutil.rmtree(work, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` (this process's own name) and rename it into place, so
    a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
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

