"""The data stage's config (:class:`DataConfig`) and :func:`load_profile_data`, the one call the later stages use.

::

    from drdo_lib.config import build_config, load_profile
    from drdo_lib.data import DataConfig, load_profile_data, build_splits
    cfg = build_config(DataConfig, load_profile("mini")["data"])
    data = load_profile_data(cfg, "mini")
    data.preferences      # datasets.Dataset of normalised preference rows (TL;DR comparisons)
    data.sft              # SFT rows {id, prompt, response, split, ...}
    data.ood              # CNN/DailyMail-style OOD rows {id, article, highlights, ...}
    data.testbed          # the SyntheticTestbed (source "synthetic"), whose true_reward is r*; None otherwise
    splits, report = build_splits(data.preferences, cfg.confidence_mode)

``source`` decides where the files come from:

* ``"synthetic"`` (profile ``mini``): the testbed of :mod:`drdo_lib.data.synthetic` is written under
  ``runs/<profile>/data/synthetic/`` in the published schemas, then read back with the same loaders as real data;
* ``"local"`` (profile ``sample``): a folder laid out like ``../shared/data`` (``data_dir``; the environment
  variable ``DRDO_DATA_DIR`` overrides it; relative paths are resolved against the repository root);
* ``"hub"`` (GPU profiles): the hub ids ``comparisons_id``, ``sft_id``, ``ood_id`` via ``datasets.load_dataset``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drdo_lib.config import REPO_ROOT, run_dir
from drdo_lib.data.loaders import (
    DATA_SUFFIXES,
    EDIT_DISTANCE_UNITS,
    load_cnn_dailymail,
    load_tldr_comparisons,
    load_tldr_sft,
    load_ultrafeedback,
)
from drdo_lib.data.splits import CONFIDENCE_MODES, TRAIN_SPLITS, id_fraction
from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed

logger = logging.getLogger(__name__)

__all__ = ["DataConfig", "ProfileData", "load_profile_data", "resolve_data_dir", "LOCAL_LAYOUT", "DATA_SOURCES",
           "DATA_TASKS", "ultrafeedback_sft_rows"]

DATA_SOURCES = ("synthetic", "local", "hub")
#: Which experiment's data: the TL;DR comparisons (+ SFT, CNN/DM OOD) or UltraFeedback (SFT on its chosen responses).
DATA_TASKS = ("tldr", "ultrafeedback")
#: Sub-folders of a local data folder (the layout of ../shared/data and of the written synthetic testbed).
LOCAL_LAYOUT = {
    "comparisons": "summarize_from_feedback_comparisons",
    "sft": "openai_summarize_tldr",
    "ood": "cnn_dailymail",
    "ultrafeedback": "ultrafeedback",
    "alpaca_eval": "alpaca_eval",
}


@dataclass(frozen=True)
class DataConfig:
    """Settings of the data stage (``data:`` mapping of a profile YAML)."""

    source: str = "synthetic"  # where data comes from: synthetic (testbed) | local (data_dir) | hub (hub ids)
    task: str = "tldr"  # tldr (TL;DR comparisons + SFT + CNN/DM) | ultrafeedback (pairs; SFT on the chosen responses)
    data_dir: str = "../shared/data"  # local folder in the published layout (source=local); env DRDO_DATA_DIR wins
    comparisons_id: str = "openai/summarize_from_feedback"  # hub id of the TL;DR comparisons (source=hub)
    sft_id: str = "CarperAI/openai_summarize_tldr"  # hub id of the TL;DR SFT data (source=hub)
    ood_id: str = "cnn_dailymail"  # hub id of the OOD test set, config 3.0.0 split test (source=hub)
    ultrafeedback_id: str = "argilla/ultrafeedback-binarized-preferences-cleaned"  # hub id (task=ultrafeedback)
    test_fraction: float = 0.05  # ultrafeedback: pairs moved to split "test" by a hash of their pair_id (it has no test split)
    confidence_mode: str = "strength"  # split on strength |confidence − 5| (default) or the raw 1–9 value ("raw")
    edit_distance_unit: str = "word"  # unit of the normalised edit distance: word | char (token needs a tokenizer)
    strict: bool = False  # raise on the first bad row (file, row, field) instead of dropping it with a count
    n_train: int = 4000  # synthetic: comparison rows with split "train"
    n_valid: int = 1000  # synthetic: comparison rows with split valid1/valid2
    n_sft: int = 4000  # synthetic: SFT (prompt, noisy reference) rows, split train
    n_sft_test: int = 500  # synthetic: held-out SFT rows (split test), the in-distribution evaluation prompts
    n_ood: int = 200  # synthetic: OOD article rows
    synthetic: dict = field(default_factory=dict)  # synthetic: SyntheticConfig fields (seed defaults to the profile's)

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"DataConfig.source must be one of {DATA_SOURCES}, got {self.source!r}")
        if self.confidence_mode not in CONFIDENCE_MODES:
            raise ValueError(f"DataConfig.confidence_mode must be one of {CONFIDENCE_MODES}, "
                             f"got {self.confidence_mode!r}")
        if self.edit_distance_unit not in EDIT_DISTANCE_UNITS:
            raise ValueError(f"DataConfig.edit_distance_unit must be one of {EDIT_DISTANCE_UNITS}, "
                             f"got {self.edit_distance_unit!r}")
        if not isinstance(self.strict, bool):
            raise ValueError(f"DataConfig.strict must be true or false, got {self.strict!r}")
        for name in ("n_train", "n_valid", "n_sft", "n_sft_test", "n_ood"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"DataConfig.{name} must be an integer >= 0, got {v!r}")
        if self.task not in DATA_TASKS:
            raise ValueError(f"DataConfig.task must be one of {DATA_TASKS}, got {self.task!r}")
        if self.task == "ultrafeedback" and self.source == "synthetic":
            raise ValueError("DataConfig: task 'ultrafeedback' needs source 'local' or 'hub' (the synthetic testbed "
                             "is a TL;DR-style task)")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) or \
                not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"DataConfig.test_fraction must be a number in [0, 1), got {self.test_fraction!r}")
        if self.source == "synthetic" and (self.n_train < 1 or self.n_sft < 1):
            raise ValueError("DataConfig: the synthetic source needs n_train >= 1 and n_sft >= 1")
        if not isinstance(self.synthetic, dict):
            raise ValueError(f"DataConfig.synthetic must be a mapping of SyntheticConfig fields, got "
                             f"{type(self.synthetic).__name__}")
        names = {f.name for f in dataclasses.fields(SyntheticConfig)}
        unknown = sorted(set(self.synthetic) - names)
        if unknown:
            raise ValueError(f"DataConfig.synthetic: unknown setting(s) {unknown}; accepted: {sorted(names)}")
        SyntheticConfig(**self.synthetic)  # validate now, not at first use

    def synthetic_config(self, seed: int | None = None) -> SyntheticConfig:
        """The :class:`SyntheticConfig` of this profile (``seed`` fills in when ``synthetic`` has none)."""
        values = dict(self.synthetic)
        if seed is not None:
            values.setdefault("seed", seed)
        return SyntheticConfig(**values)


@dataclass
class ProfileData:
    """What :func:`load_profile_data` returns."""

    preferences: Any  # datasets.Dataset of normalised preference rows
    sft: Any  # datasets.Dataset of SFT rows
    ood: Any  # datasets.Dataset of OOD rows (None when the source has none)
    data_dir: Path | None  # the local folder read (the written testbed for "synthetic"); None for the hub
    testbed: SyntheticTestbed | None = None  # the synthetic testbed (its true_reward is r*); None for real data


def resolve_data_dir(data_dir: str | Path) -> Path:
    """``DRDO_DATA_DIR`` if set, else ``data_dir`` (relative paths against the repository root)."""
    env = os.environ.get("DRDO_DATA_DIR")
    p = Path(env) if env else Path(data_dir)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def load_profile_data(cfg: DataConfig, profile: str, seed: int | None = None, runs_dir: str | Path | None = None,
                      tokenizer: Any = None) -> ProfileData:
    """Load the preference, SFT and OOD rows of a profile (see the module docstring).

    ``seed`` (the profile's top-level seed) seeds the synthetic testbed unless ``cfg.synthetic`` sets one;
    ``runs_dir`` overrides the ``runs/`` root (tests); ``tokenizer`` is needed only for ``edit_distance_unit="token"``.
    """
    kw = dict(edit_distance_unit=cfg.edit_distance_unit, tokenizer=tokenizer, strict=cfg.strict)
    if cfg.task == "ultrafeedback":
        return _load_ultrafeedback(cfg, kw)
    if cfg.source == "hub":
        return ProfileData(preferences=load_tldr_comparisons(cfg.comparisons_id, **kw),
                           sft=load_tldr_sft(cfg.sft_id, strict=cfg.strict),
                           ood=load_cnn_dailymail(cfg.ood_id, strict=cfg.strict), data_dir=None)
    testbed = None
    if cfg.source == "synthetic":
        testbed = SyntheticTestbed(cfg.synthetic_config(seed))
        folder = run_dir(profile, "data", runs_dir) / "synthetic"
        testbed.write(folder, n_train=cfg.n_train, n_valid=cfg.n_valid, n_sft=cfg.n_sft, n_sft_test=cfg.n_sft_test,
                      n_ood=cfg.n_ood)
        logger.info("synthetic testbed written to %s", folder)
    else:
        folder = resolve_data_dir(cfg.data_dir)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist (set data.data_dir in the profile or the "
                                    "DRDO_DATA_DIR environment variable to a folder laid out like ../shared/data)")
    ood_dir = folder / LOCAL_LAYOUT["ood"]
    return ProfileData(
        preferences=load_tldr_comparisons(folder / LOCAL_LAYOUT["comparisons"], **kw),
        sft=load_tldr_sft(folder / LOCAL_LAYOUT["sft"], strict=cfg.strict),
        ood=load_cnn_dailymail(ood_dir, strict=cfg.strict) if _has_data(ood_dir) else None,
        data_dir=folder, testbed=testbed)


def _load_ultrafeedback(cfg: DataConfig, kw: dict) -> ProfileData:
    """UltraFeedback pairs (hub id or ``<data_dir>/ultrafeedback``), ``test_fraction`` of the pairs moved to split
    ``test`` by a hash of ``pair_id``, and SFT rows made of the training pairs' prompts and chosen responses (the
    paper: "the student policy is trained with SFT on the chosen responses", following DPO)."""
    if cfg.source == "hub":
        source, folder = cfg.ultrafeedback_id, None
    else:
        folder = resolve_data_dir(cfg.data_dir)
        source = folder / LOCAL_LAYOUT["ultrafeedback"]
        if not _has_data(source):
            raise FileNotFoundError(f"no UltraFeedback files under {source} (data.task is 'ultrafeedback'; set "
                                    "data.data_dir or DRDO_DATA_DIR to a folder with an ultrafeedback/ sub-folder)")
    prefs = load_ultrafeedback(source, **kw)
    if cfg.test_fraction > 0:
        def _assign(split: str, pair_id: str) -> dict:
            held = split in TRAIN_SPLITS and id_fraction(pair_id) < cfg.test_fraction
            return {"split": "test" if held else split}

        prefs = prefs.map(_assign, input_columns=["split", "pair_id"], desc="UltraFeedback: test split")
    logger.info("UltraFeedback: %d pairs (%s)", len(prefs),
                ", ".join(f"{k} {v}" for k, v in sorted(Counter(prefs["split"]).items())))
    return ProfileData(preferences=prefs, sft=ultrafeedback_sft_rows(prefs), ood=None, data_dir=folder)


def ultrafeedback_sft_rows(prefs):
    """SFT rows ``{id, prompt, response, split, source, origin}`` from preference rows: one per prompt (its first
    chosen response), keeping the pair's split."""
    import datasets

    from drdo_lib.data.loaders import SFT_COLUMNS, _features

    df = prefs.select_columns(["id", "prompt", "chosen", "split", "origin"]).to_pandas().drop_duplicates("prompt")
    df = df.rename(columns={"chosen": "response"}).assign(source="ultrafeedback")
    return datasets.Dataset.from_pandas(df[list(SFT_COLUMNS)], features=_features(**SFT_COLUMNS), preserve_index=False)


def _has_data(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.endswith(DATA_SUFFIXES) for p in folder.rglob("*"))
