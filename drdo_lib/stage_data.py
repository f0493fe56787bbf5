"""What the SFT and reward-model stages read from the data stage of a profile.

A thin layer over :func:`drdo_lib.data.load_profile_data` and :func:`drdo_lib.data.build_splits` (the data stage
owns loading, normalisation and splits); this module only picks rows:

- :func:`profile_sft_data`: SFT rows with split ``train`` (training) and the rest (held-out prompts), plus the
  texts a tiny model's word-level tokenizer is trained on (SFT prompts/responses, preference prompts and responses,
  OOD articles/highlights);
- :func:`profile_preference_rows`: one split's (``D_all`` …) training pairs and validation pairs.

Data without a training split (``../shared/data`` holds only validation/test samples: the ``sample`` profile) is
split deterministically by :func:`split_train_heldout`: a hash of each row's ``id`` puts ``heldout_fraction`` of the
rows aside and the rest is trained on, with a logged warning (a smoke run on real text, not a result).
"""
from __future__ import annotations

import logging
from pathlib import Path

from drdo_lib.config import profile_name

logger = logging.getLogger(__name__)

__all__ = ["profile_data", "profile_sft_data", "profile_preference_rows", "tokenizer_corpus", "split_train_heldout",
           "SFT_COMPLETION", "HELDOUT_FRACTION"]

#: Fraction of rows held out when the data has no training split (hash of the row id).
HELDOUT_FRACTION = 0.2

#: Column of the SFT rows holding the target summary (data stage's normalised schema).
SFT_COMPLETION = "response"


def profile_data(profile, *, seed: int | None = None, runs_dir: str | Path | None = None):
    """``(ProfileData, DataConfig)`` of a profile (a name, a YAML path or a loaded mapping; its ``data`` section;
    ``seed`` defaults to the profile's)."""
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


def split_train_heldout(rows, *, heldout_fraction: float = HELDOUT_FRACTION, what: str = "rows"):
    """``(train, heldout)``: rows with split ``train`` and the validation rows, or, when no row has split
    ``train``, a deterministic split by a hash of ``id`` (``heldout_fraction`` held out; logged)."""
    from drdo_lib.data.splits import TRAIN_SPLITS, id_fraction

    splits = rows["split"]
    if any(s in TRAIN_SPLITS for s in splits):
        train = rows.filter(lambda s: s in TRAIN_SPLITS, input_columns="split", desc=f"{what}: train")
        held = rows.filter(lambda s: s not in TRAIN_SPLITS and s != "test", input_columns="split",
                           desc=f"{what}: held out")
        if len(held) == 0:  # SFT data: the held-out prompts are the test rows
            held = rows.filter(lambda s: s not in TRAIN_SPLITS, input_columns="split", desc=f"{what}: held out")
        return train, held
    mask = [id_fraction(i) < heldout_fraction for i in rows["id"]]
    train = rows.select([i for i, m in enumerate(mask) if not m])
    held = rows.select([i for i, m in enumerate(mask) if m])
    logger.warning("%s have no 'train' split (splits %s): training on %d rows, holding out %d (hash of id)",
                   what, sorted(set(splits)), len(train), len(held))
    return train, held


def profile_sft_data(profile, *, seed: int | None = None, runs_dir: str | Path | None = None):
    """``(train_rows, heldout_rows, corpus)``: SFT rows split ``train`` / the others (see
    :func:`split_train_heldout`), and the tokenizer corpus."""
    data, _ = profile_data(profile, seed=seed, runs_dir=runs_dir)
    train, held = split_train_heldout(data.sft, what=f"{profile_name(profile)} SFT rows")
    return train, held, tokenizer_corpus(data)


def profile_preference_rows(profile, split: str = "D_all", *, seed: int | None = None,
                            runs_dir: str | Path | None = None):
    """``(train_pairs, validation_pairs)`` of one preference split of a profile."""
    from drdo_lib.data.splits import select_split

    data, cfg = profile_data(profile, seed=seed, runs_dir=runs_dir)
    train, valid = split_train_heldout(select_split(data.preferences, split, cfg.confidence_mode),
                                       what=f"{profile_name(profile)} {split} pairs")
    logger.info("%s/%s: %d training pairs, %d validation pairs", profile_name(profile), split, len(train), len(valid))
    return train, valid
