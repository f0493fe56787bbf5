"""Command line: ``python -m drdo_lib train --config configs/mini.yaml --stage policy --method drdo --split D_all``.

The CLI builds one :class:`drdo_lib.run.Run` and calls the same stage entry points as the notebooks
(``drdo_lib.data.pipeline.run``, ``drdo_lib.sft.run``, ``drdo_lib.oracle.run`` / ``run_ensemble``,
``drdo_lib.policy.run``), so a multi-GPU node runs exactly the notebook's code under a launcher::

    torchrun --nproc_per_node 8 -m drdo_lib train --config configs/tldr.yaml --stage policy --method drdo
    accelerate launch --num_processes 8 -m drdo_lib train --config configs/tldr.yaml --stage policy ...
    deepspeed --num_gpus 8 --module drdo_lib train --config configs/tldr.yaml --stage policy \\
        deepspeed=configs/deepspeed_zero2.json

``python -m drdo_lib study --config configs/study.yaml [--shard i/N] [key=value ...]`` runs (or resumes) the
robustness study's grid (:mod:`drdo_lib.study`; a bare key is a field of the ``study`` section), then writes its
figures, tables and reading unless ``--shard`` or ``--no-report`` is given.

Trailing ``key=value`` arguments override the profile: a bare key sets a field of the stage's section
(``max_steps=20``), ``section.key=value`` any section (``data.n_train=100``), ``seed=1`` the run seed. Values are
parsed as YAML (``true``, ``3e-5``, ``[a, b]``, ``null``). Every section is validated before anything runs: an
unknown section or key, or a bad value, fails naming it (exit status 2).

A user error (:class:`drdo_lib.errors.UserError`: a bad setting, a missing or unusable input, an unwritable
``runs_dir``, a study worker that died) is caught in one place, :func:`main`: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from drdo_lib.config import ConfigError, load_profile
from drdo_lib.errors import UserError, install_log_redaction, redact
from drdo_lib.run import TOP_LEVEL_KEYS, Run

logger = logging.getLogger("drdo_lib.cli")

STAGES = ("data", "sft", "oracle", "ensemble", "policy", "evaluate")

EXAMPLES = """examples:
  python -m drdo_lib train --config configs/mini.yaml --stage data
  python -m drdo_lib train --config configs/mini.yaml --stage sft max_steps=200
  python -m drdo_lib train --config configs/mini.yaml --stage oracle
  python -m drdo_lib train --config configs/mini.yaml --stage ensemble
  python -m drdo_lib train --config configs/mini.yaml --stage policy --method drdo --split D_all alpha=0.5
  python -m drdo_lib train --config configs/mini.yaml --stage policy --all      # every method x split of the profile
  python -m drdo_lib train --config configs/mini.yaml --stage evaluate          # notebook 05's generations and tables
  torchrun --nproc_per_node 8 -m drdo_lib train --config configs/tldr.yaml --stage policy --all
  python -m drdo_lib study --config configs/study.yaml --shard 0/4              # one shard of the study grid
  python -m drdo_lib study --config configs/study.yaml                          # the rest, then the reading
Overrides: key=value sets a field of the stage's section, section.key=value any section, seed=1 the run seed.
Errors in settings or inputs are one line on stderr and exit status 2."""


def _parse_value(raw: str) -> Any:
    """YAML scalar/list parsing, plus floats like ``3e-5`` that YAML 1.1 reads as strings."""
    if raw == "":
        return None
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(profile: dict[str, Any], stage: str, overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``profile`` with ``key=value`` overrides applied (see the module docstring)."""
    out = copy.deepcopy(profile)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        value = _parse_value(raw)
        if key in TOP_LEVEL_KEYS:
            out[key] = value
            continue
        section, _, field = key.rpartition(".")
        section = section or ("oracle" if stage == "ensemble" else stage)
        if not field:
            raise ConfigError(f"override {item!r} has an empty key")
        sec = out.setdefault(section, {}) or {}
        if not isinstance(sec, dict):
            raise ConfigError(f"profile section {section!r} is not a mapping")
        sec[field] = value
        out[section] = sec
    return out


def _build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m drdo_lib", description="DRDO companion: train the stages of a "
                                "profile, or run the robustness study.", epilog=EXAMPLES, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="run one stage of a profile (data, sft, oracle, ensemble, policy, evaluate)",
                       description="Run one stage of a profile; each reads the previous stages' artefacts under "
                       "runs/<profile>/.", epilog=EXAMPLES, formatter_class=fmt)
    t.add_argument("--config", required=True, help="profile YAML (configs/<profile>.yaml) or a profile name")
    t.add_argument("--stage", choices=STAGES, default="policy", help="which stage to run (default: policy)")
    t.add_argument("--method", default=None, help="policy stage: drdo | dpo | ipo | edpo | cdpo | rdpo | drdpo (default: first of policy.methods)")
    t.add_argument("--split", default=None, help="policy stage: data split (default: first of policy.splits)")
    t.add_argument("--all", action="store_true", help="policy stage: every method x split of the profile "
                   "(policy.methods x policy.splits), one run after another")
    t.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    # The deepspeed launcher passes --local_rank=N; torchrun/accelerate use the LOCAL_RANK env var.
    t.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    t.add_argument("overrides", nargs="*", help="key=value or section.key=value overrides")
    s = sub.add_parser("study", help="run (or resume) the robustness study grid of a profile (drdo_lib.study)",
                       epilog=EXAMPLES, formatter_class=fmt)
    s.add_argument("--config", required=True, help="profile YAML (configs/study.yaml) or a profile name")
    s.add_argument("--shard", default=None, help="i/N: run only the cells whose grid index is i modulo N")
    s.add_argument("--no-report", action="store_true", help="skip the figures/tables/reading after the grid")
    s.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    s.add_argument("overrides", nargs="*", help="key=value (a study field) or section.key=value overrides")
    return p


def _load_run(args, stage: str) -> Run:
    """The validated :class:`Run` of ``--config`` plus the overrides, its runs folder checked writable; any bad
    setting is a :class:`~drdo_lib.config.ConfigError`."""
    try:
        profile = apply_overrides(load_profile(args.config), stage, args.overrides)
        run = Run.create(profile).validate()
    except UserError:
        raise
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    return run.check_writable()


def run_study(args) -> int:
    """``python -m drdo_lib study``: every cell of the profile's ``study`` grid (or of one shard), then (without
    ``--shard``) the figures, tables and reading under ``figures/<profile>/study_*``."""
    from drdo_lib import study
    from drdo_lib.gate import GateFailed

    try:
        shard = study.parse_shard(args.shard)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    run = _load_run(args, "study")
    cfg = run.config(study.StudyConfig, "study")
    try:
        df = study.run(run, cfg, shard=shard)
    except GateFailed as e:
        print(f"drdo_lib study: {e}", file=sys.stderr)
        return 1
    logger.info("study: %d cells finished in this call (runs under %s)", len(df), run.dir / "study" / "cells")
    if shard is None and not args.no_report:
        out = study.report(run, cfg)
        for sentence in (r["sentence"] for r in out["reading"]):
            logger.info("reading: %s", sentence)
        logger.info("study figures and tables under %s", run.figures)
    return 0


def _setup_logging(level: str) -> None:
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s [rank {rank}] %(name)s %(levelname)s: %(message)s",
    )


def run_stage(run: Run, stage: str, method: str | None = None, split: str | None = None, *,
              every: bool = False) -> Path:
    """Run one stage of a (validated) :class:`~drdo_lib.run.Run`; returns the stage's output path (``every``: the
    policy stage's whole grid, returning its folder)."""
    if stage == "evaluate":
        from drdo_lib import evaluation

        return evaluation.run(run, progress=False)["dir"]
    if stage == "policy" and every:
        from drdo_lib import policy

        dirs = policy.run_grid(run, progress=False)
        logger.info("policy grid: %d runs (%s)", len(dirs), ", ".join(d.name for d in dirs))
        return run.stage_dir("policy")
    if stage == "data":
        from drdo_lib.data import pipeline

        pipeline.run(run)
        return run.stage_dir("data") / "stage"
    if stage == "sft":
        from drdo_lib import sft

        return sft.run(run)
    if stage == "policy":
        from drdo_lib import policy

        return policy.run(run, method=method, split=split)
    from drdo_lib import oracle

    return oracle.run(run) if stage == "oracle" else oracle.run_ensemble(run)[0].parent


def run_train(args) -> int:
    """``python -m drdo_lib train``: one stage of a profile."""
    from drdo_lib.data.splits import SPLIT_NAMES
    from drdo_lib.trainer import METHODS

    if args.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    if args.stage != "policy" and (args.method or args.split or args.all):
        raise ConfigError("--method/--split/--all apply to --stage policy only")
    if args.all and (args.method or args.split):
        raise ConfigError("--all trains every method x split of the profile: give it without --method/--split")
    if args.method is not None and args.method not in METHODS:
        raise ConfigError(f"unknown --method {args.method!r}: one of {', '.join(METHODS)}")
    if args.split is not None and args.split not in SPLIT_NAMES:
        raise ConfigError(f"unknown --split {args.split!r}: one of {', '.join(SPLIT_NAMES)}")
    run = _load_run(args, args.stage)
    out = run_stage(run, args.stage, args.method, args.split, every=args.all)
    logger.info("stage %s finished: %s", args.stage, out)
    return 0


def one_line(exc: BaseException) -> str:
    """An error's message on one line, URL credentials redacted."""
    text = str(exc) or type(exc).__name__
    return redact(" | ".join(ln.strip() for ln in text.splitlines() if ln.strip()))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Every user error ends here: one line on stderr, exit status 2."""
    args = _build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    install_log_redaction()
    try:
        return run_study(args) if args.command == "study" else run_train(args)
    except (UserError, yaml.YAMLError) as e:
        print(f"drdo_lib {args.command}: {one_line(e)}", file=sys.stderr)
        return 2
