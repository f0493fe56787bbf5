"""What the SFT and reward-model stages read from the data stage of a profile.

A thin layer over :func:`drdo_lib.data.load_profile_data` and :func:`drdo_lib.data.build_splits` (the data stage
owns loading, normalisation and splits); this module only picks rows:

- :func:`profile_sft_data`: SFT rows with split ``train`` (training) and the rest (held-out prompts), plus the
  texts a tiny model's word-level tokenizer is trained on (SFT prompts/responses, preference prompts and responses,
  OOD articles/highlights);
- :func:`profile_preference_rows`: one split's (``D_all`` …) training pairs and validation pairs.
"""
from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["profile_data", "profile_sft_data", "profile_preference_rows", "tokenizer_corpus", "SFT_COMPLETION"]

#: Column of the SFT rows holding the target summary (data stage's normalised schema).
SFT_COMPLETION = "response"


def profile_data(profile: str, *, seed: int | None = None, runs_dir: str | Path | None = None):
    """``(ProfileData, DataConfig)`` of a profile (its ``data`` section; ``seed`` defaults to the profile's)."""
    from drdo_lib.config import build_config, load_profile
    from drdo_lib.data import DataConfig, load_profile_data

    prof = load_profile(profile)
    cfg = build_config(DataConfig, prof.get("data") or {})
    seed = int(prof.get("seed", 0)) if seed is None else seed
    return load_profile_data(cfg, prof["profile"], seed=seed, runs_dir=runs_dir), cfg


def tokenizer_corpus(data) -> list[str]:
    """Every text of a profile's data (SFT, preference pairs, OOD) for training a word-level tokenizer."""
    texts: list[str] = []
    for ds, cols in ((data.sft, ("prompt", SFT_COMPLETION)), (data.preferences, ("prompt", "chosen", "rejected")),
                     (data.ood, ("article", "highlights"))):
        if ds is None:
            continue
        for c in cols:
            if c in ds.column_names:
                texts.extend(x for x in ds[c] if isinstance(x, str))
    return texts


def profile_sft_data(profile: str, *, seed: int | None = None, runs_dir: str | Path | None = None):
    """``(train_rows, heldout_rows, corpus)``: SFT rows split ``train`` / all others, and the tokenizer corpus."""
    data, _ = profile_data(profile, seed=seed, runs_dir=runs_dir)
    sft = data.sft
    train = sft.filter(lambda s: s == "train", input_columns="split", desc="SFT train rows")
    held = sft.filter(lambda s: s != "train", input_columns="split", desc="SFT held-out rows")
    if len(train) == 0:
        raise ValueError(f"profile {profile!r}: no SFT rows with split 'train' (splits: {sorted(set(sft['split']))})")
    return train, held, tokenizer_corpus(data)


def profile_preference_rows(profile: str, split: str = "D_all", *, seed: int | None = None,
                            runs_dir: str | Path | None = None):
    """``(train_pairs, validation_pairs)`` of one preference split of a profile."""
    from drdo_lib.data import build_splits
    from drdo_lib.data.splits import TRAIN_SPLITS, VALID_SPLITS

    data, cfg = profile_data(profile, seed=seed, runs_dir=runs_dir)
    splits, _ = build_splits(data.preferences, cfg.confidence_mode)
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; available: {sorted(splits)}")
    rows = splits[split]
    train = rows.filter(lambda s: s in TRAIN_SPLITS, input_columns="split", desc=f"{split}: train pairs")
    valid = rows.filter(lambda s: s in VALID_SPLITS, input_columns="split", desc=f"{split}: validation pairs")
    logger.info("%s/%s: %d training pairs, %d validation pairs", profile, split, len(train), len(valid))
    return train, valid
