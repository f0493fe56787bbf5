"""One run of the pipeline: the profile, its seed and every path, resolved once and handed to every stage.

A notebook or a CLI call builds one :class:`Run` and passes it to each stage's ``run(run, cfg)`` entry point::

    from drdo_lib.run import Run
    run = Run.create("mini")                     # a profile name, a YAML path or a loaded mapping
    run = Run.create("mini", seed=1, sections={"policy": {"max_steps": 20}})   # notebook/CLI values win
    run.config(SFTConfig, "sft")                 # the section as its frozen dataclass (unknown keys rejected)
    run.sft_model, run.policy_dir("drdo", "D_all"), run.figures

Nothing else in the library resolves a profile, a seed or a run path. The layout under ``runs_dir``::

    runs/<profile>/data/          the data stage's artefact (splits written once; later stages read it)
    runs/<profile>/sft/final/     the SFT policy (initial and reference policy)
    runs/<profile>/oracle/final/  the Oracle (reward head + LM)
    runs/<profile>/ensemble/member_<k>/  the e-DPO reward models
    runs/<profile>/precompute/    cached reference log-probs and rewards
    runs/<profile>/policy/<method>_<split>/  one preference-training run (final/, metrics.jsonl, summary.json)
    runs/<profile>/eval/          notebook 05's generations, scores and tables
    figures/<profile>/            every figure and table (``figures_dir`` is the root)
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

from drdo_lib import config as _config
from drdo_lib.config import ConfigError, build_config, check_name, load_profile
from drdo_lib.errors import UserError

T = TypeVar("T")

__all__ = ["Run", "TOP_LEVEL_KEYS", "SECTIONS", "section_class", "MissingStageOutput"]

#: Run-wide keys of a profile (every other top-level key is a stage section).
TOP_LEVEL_KEYS = ("profile", "seed", "runs_dir", "figures_dir")
#: Each stage section of a profile and the frozen dataclass (module, class) its mapping mirrors.
SECTIONS = {
    "theory": ("drdo_lib.theory", "TheoryConfig"),
    "data": ("drdo_lib.data.pipeline", "DataConfig"),
    "sft": ("drdo_lib.sft", "SFTConfig"),
    "oracle": ("drdo_lib.oracle", "OracleConfig"),
    "policy": ("drdo_lib.policy", "PolicyConfig"),
    "eval": ("drdo_lib.evaluation", "EvalConfig"),
    "gate": ("drdo_lib.gate", "GateConfig"),
    "study": ("drdo_lib.study", "StudyConfig"),
}


def section_class(name: str) -> type:
    """The config dataclass of profile section ``name`` (:data:`SECTIONS`)."""
    import importlib

    if name not in SECTIONS:
        raise ValueError(f"unknown profile section {name!r}; sections: {sorted(SECTIONS)}")
    module, cls = SECTIONS[name]
    return getattr(importlib.import_module(module), cls)


class MissingStageOutput(UserError, FileNotFoundError):
    """A stage's input is missing: an earlier stage has not run (the message says which). The CLI prints it as
    one line and exits 2."""


def _root(value: str | Path | None, default: str) -> Path:
    # REPO_ROOT is read at call time (the browser test points it elsewhere before a notebook runs)
    p = Path(value) if value not in (None, "") else _config.REPO_ROOT / default
    return p if p.is_absolute() else (Path.cwd() / p).resolve()


@dataclass(frozen=True)
class Run:
    """A profile mapping (stage sections as dicts), the run seed and the two output roots."""

    profile: Mapping[str, Any]
    seed: int
    runs_root: Path
    figures_root: Path

    @classmethod
    def create(cls, profile: str | Path | Mapping[str, Any] = "mini", *, seed: int | None = None,
               runs_dir: str | Path | None = None, figures_dir: str | Path | None = None,
               sections: Mapping[str, Mapping[str, Any] | None] | None = None) -> "Run":
        """Resolve a profile once.

        ``profile`` is a name (``configs/<name>.yaml``), a YAML path or an already-loaded mapping. ``seed``,
        ``runs_dir`` and ``figures_dir`` default to the profile's top-level values, then the environment variables
        ``DRDO_RUNS_DIR`` / ``DRDO_FIGURES_DIR`` (which send a whole notebook run somewhere else without editing a
        profile), else ``runs/`` and ``figures/``; the seed defaults to the profile's (else 0). Relative roots are
        resolved against the working directory. ``sections`` maps a stage name to
        values that take precedence over the profile's section (papermill-injected notebook parameters, CLI
        overrides); an empty or ``None`` mapping leaves the profile's section as it is.
        """
        prof = dict(load_profile(profile))
        for name, given in (sections or {}).items():
            base = prof.get(name) or {}
            if not isinstance(base, Mapping):
                raise ValueError(f"profile {prof['profile']!r}: section {name!r} must be a mapping, "
                                 f"got {type(base).__name__}")
            prof[name] = {**base, **dict(given or {})}
        seed = prof.get("seed", 0) if seed is None else seed
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        prof["seed"] = seed
        runs_dir = runs_dir if runs_dir is not None else prof.get("runs_dir") or os.environ.get("DRDO_RUNS_DIR")
        figures_dir = (figures_dir if figures_dir is not None
                       else prof.get("figures_dir") or os.environ.get("DRDO_FIGURES_DIR"))
        runs_root = _root(runs_dir, "runs")
        figures_root = _root(figures_dir, "figures")
        return cls(profile=prof, seed=seed, runs_root=runs_root, figures_root=figures_root)

    def validate(self) -> "Run":
        """Build every section's dataclass now (unknown sections, unknown keys and bad values raise ``ValueError``
        naming them), so a typo anywhere in a profile or an override fails before any stage runs."""
        check_name(self.profile.get("profile"), "the profile name (its folder under runs_dir)")
        unknown = sorted(set(self.profile) - set(SECTIONS) - set(TOP_LEVEL_KEYS))
        if unknown:
            raise ConfigError(f"profile {self.name!r}: unknown section(s) {unknown}; sections: {sorted(SECTIONS)}, "
                              f"run-wide keys: {list(TOP_LEVEL_KEYS)}")
        for name in SECTIONS:
            if name in self.profile:
                cfg = self._checked(name, lambda: self.config(section_class(name), name))
                if name == "study":  # the study's own section overrides and variants, before anything trains
                    self._validate_study(cfg)
        return self

    def _checked(self, name: str, build):
        try:
            return build()
        except (ValueError, TypeError) as e:  # a __post_init__ rule, or a comparison a wrong type trips over
            raise ConfigError(f"profile {self.name!r}, section {name!r}: {e}") from None

    def _validate_study(self, study_cfg) -> None:
        for name in ("data", "sft", "oracle", "policy"):
            over = dict(getattr(study_cfg, name) or {})
            if over:
                self._checked(f"study.{name}", lambda: build_config(section_class(name),
                                                                    {**self.section(name), **over}))
        pol = {**self.section("policy"), **dict(study_cfg.policy or {})}
        for variant in study_cfg.variants:
            over = study_cfg.policy_overrides(variant)  # a measured flip rate as ε stands in as 0 here
            self._checked(f"study.variants.{variant}", lambda: build_config(section_class("policy"),
                                                                            {**pol, **over}))

    def check_writable(self) -> "Run":
        """:class:`~drdo_lib.errors.UserError` unless ``runs/<profile>/`` can be created and written (a runs_dir
        that is a file, or a read-only folder, is named before any stage starts)."""
        import os
        import tempfile

        for parent in [self.runs_root, *self.runs_root.parents]:
            if parent.exists():
                break
        if parent.exists() and not parent.is_dir():
            raise UserError(f"runs_dir {self.runs_root}: {parent} is a file, not a folder")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=self.dir)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise UserError(f"runs_dir {self.runs_root} cannot be written ({e.strerror or e})") from None
        return self

    def __repr__(self) -> str:  # the profile may hold a URL with a password (eval.judge_base_url)
        from drdo_lib.errors import redacted_repr

        return redacted_repr(self)

    def with_seed(self, seed: int) -> "Run":
        """The same run with another seed (same paths: a multi-seed study gives each seed its own ``runs_dir``)."""
        return dataclasses.replace(self, seed=int(seed), profile={**self.profile, "seed": int(seed)})

    # ---- settings -------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The profile's name: the folder under ``runs_dir`` and ``figures_dir``."""
        return str(self.profile["profile"])

    def section(self, name: str) -> dict[str, Any]:
        """One stage section of the profile as a plain dict (empty when the profile has none)."""
        sec = self.profile.get(name) or {}
        if not isinstance(sec, Mapping):
            raise ValueError(f"profile {self.name!r}: section {name!r} must be a mapping, got {type(sec).__name__}")
        return dict(sec)

    def config(self, cls: type[T], name: str, **overrides: Any) -> T:
        """Section ``name`` built into the frozen dataclass ``cls`` (unknown keys raise, naming the field)."""
        return build_config(cls, self.section(name), **overrides)

    # ---- paths ----------------------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """``runs/<profile>/`` (the profile name must be a plain folder name: it never reaches outside runs_dir)."""
        return self.runs_root / check_name(self.name, "the profile name (its folder under runs_dir)")

    def stage_dir(self, stage: str, create: bool = True) -> Path:
        """``runs/<profile>/<stage>/`` (created unless ``create=False``)."""
        d = self.dir / stage
        if create:
            d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def figures(self) -> Path:
        """``figures/<profile>/`` (created): where every figure and table of the run is written."""
        d = self.figures_root / check_name(self.name, "the profile name (its folder under figures_dir)")
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def sft_model(self) -> Path:
        """The SFT policy: ``runs/<profile>/sft/final``."""
        return self.dir / "sft" / "final"

    @property
    def oracle_model(self) -> Path:
        """The Oracle: ``runs/<profile>/oracle/final``."""
        return self.dir / "oracle" / "final"

    def ensemble_members(self) -> list[Path]:
        """The e-DPO reward models ``runs/<profile>/ensemble/member_<k>`` that exist, in member order."""
        root = self.dir / "ensemble"
        found = [p for p in root.glob("member_*") if p.is_dir()] if root.is_dir() else []
        return sorted(found, key=lambda p: int(p.name.split("_")[-1]))

    def policy_dir(self, method: str, split: str, create: bool = True) -> Path:
        """One preference-training run: ``runs/<profile>/policy/<method>_<split>/``."""
        check_name(method, "the method")
        check_name(split, "the split")
        d = self.dir / "policy" / f"{method}_{split}"
        if create:
            d.mkdir(parents=True, exist_ok=True)
        return d

    def require(self, path: Path, what: str, stage: str) -> Path:
        """``path`` if it exists, else :class:`MissingStageOutput` saying which stage writes it."""
        if not Path(path).exists():
            raise MissingStageOutput(f"{what} not found at {path}: run the {stage} stage first "
                                     f"(profile {self.name!r}, runs_dir {self.runs_root})")
        return Path(path)

    def require_model(self, path: str | Path, what: str, stage: str) -> Path:
        """A saved model folder (``config.json``, ``*.safetensors`` weights and, for the SFT policy, a tokenizer),
        else :class:`MissingStageOutput`. A hub id (``name`` or ``org/name``, by the loaders' own rule for what is a
        local path) passes: transformers resolves it."""
        from drdo_lib.data.loaders import _is_local

        p = Path(path)
        if not _is_local(str(path)):
            return p
        self.require(p / "config.json", what, stage)
        weights = sorted(p.glob("*.safetensors"))
        if not weights:
            raise MissingStageOutput(f"{what} at {p} has no *.safetensors weights (an interrupted save?): run the "
                                     f"{stage} stage again")
        for w in weights:
            problem = _config.safetensors_problem(w)
            if problem:
                raise MissingStageOutput(f"{what}: {w} is unreadable ({problem}; an interrupted save or copy?): "
                                         f"run the {stage} stage again")
        return p
