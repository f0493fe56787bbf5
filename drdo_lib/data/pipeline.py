"""The data stage (notebook 01): :class:`DataConfig`, :func:`run` (load, split, write once) and :func:`load` (read).

::

    from drdo_lib.run import Run
    from drdo_lib.data import pipeline as data_stage
    run = Run.create("mini")
    data = data_stage.run(run)            # writes runs/mini/data/stage/ (rows + splits), returns ProfileData
    data = data_stage.load(run)           # every later stage: reads that artefact back (runs the stage if absent)
    data.preferences                      # datasets.Dataset of normalised preference rows
    data.split("D_hc_he")                 # one of the paper's splits (indices written by the data stage)
    data.preference_pairs("D_all")        # (training pairs, validation pairs) of a split
    data.sft_rows()                       # (SFT training rows, held-out rows)
    data.testbed                          # the SyntheticTestbed (source "synthetic"), whose true_reward is r*

``source`` decides where the files come from:

* ``"synthetic"`` (profile ``mini``): the testbed of :mod:`drdo_lib.data.synthetic` is written under
  ``runs/<profile>/data/synthetic/`` in the published schemas, then read back with the same loaders as real data;
* ``"local"`` (profiles ``sample`` and ``smol``): a local folder of public samples in the published schemas,
  laid out as ``LOCAL_LAYOUT`` says (``data_dir``; the environment variable ``DRDO_DATA_DIR`` overrides it;
  relative paths are resolved against the repository root). ``scripts/fetch_data_samples.py`` fetches the samples
  from the Hugging Face hub into such a folder; without it these profiles fail with a message naming the script;
* ``"hub"`` (GPU profiles): the hub ids ``comparisons_id``, ``sft_id``, ``ood_id`` via ``datasets.load_dataset``.

The artefact ``runs/<profile>/data/stage/`` holds ``preferences/``, ``sft/``, ``ood/`` (``datasets`` on disk),
``splits.json`` (row indices of D_all / D_hc_he / D_lc_le, or why a split is unavailable), ``split_report.csv``
(Table 5 form) and ``manifest.json`` with the key it was built for: a hash of the data settings, the seed, the
source files (size, mtime) and the data code. :func:`load` rebuilds when the key differs, so a changed setting or
file is never read stale.

Data without a training split (the TL;DR samples are validation/test rows only: the ``sample`` profile) is
split deterministically by :func:`split_train_heldout`: a hash of each row's ``id`` puts ``heldout_fraction`` of the
rows aside and the rest is trained on, with a logged warning (a smoke run on real text, not a result).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drdo_lib import provenance
from drdo_lib.config import REPO_ROOT
from drdo_lib.data.loaders import (
    DATA_SUFFIXES,
    EDIT_DISTANCE_UNITS,
    DataNotFound,
    load_cnn_dailymail,
    load_tldr_comparisons,
    load_tldr_sft,
    load_ultrafeedback,
)
from drdo_lib.data.splits import CONFIDENCE_MODES, TRAIN_SPLITS, id_fraction
from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed

logger = logging.getLogger(__name__)

__all__ = ["DataConfig", "ProfileData", "run", "load", "load_sources", "resolve_data_dir", "split_train_heldout",
           "tokenizer_corpus", "LOCAL_LAYOUT", "DATA_SOURCES", "DATA_TASKS", "ultrafeedback_sft_rows",
           "HELDOUT_FRACTION", "SFT_COMPLETION", "FETCH_SCRIPT", "fetch_hint"]

DATA_SOURCES = ("synthetic", "local", "hub")
#: Fraction of rows held out when the data has no training split (hash of the row id).
HELDOUT_FRACTION = 0.2
#: Column of the SFT rows holding the target summary (the normalised schema).
SFT_COMPLETION = "response"
#: Bump when the artefact's layout changes (part of its key).
ARTEFACT_VERSION = 1
#: Which experiment's data: the TL;DR comparisons (+ SFT, CNN/DM OOD) or UltraFeedback (SFT on its chosen responses).
DATA_TASKS = ("tldr", "ultrafeedback")
#: Sub-folders of a local data folder (what scripts/fetch_data_samples.py and the synthetic testbed write).
LOCAL_LAYOUT = {
    "comparisons": "summarize_from_feedback_comparisons",
    "sft": "openai_summarize_tldr",
    "ood": "cnn_dailymail",
    "ultrafeedback": "ultrafeedback",
    "alpaca_eval": "alpaca_eval",
}
#: The script that fetches the public samples of a local data folder (named by the missing-data errors).
FETCH_SCRIPT = "scripts/fetch_data_samples.py"


@dataclass(frozen=True)
class DataConfig:
    """Settings of the data stage (``data:`` mapping of a profile YAML)."""

    source: str = "synthetic"  # where data comes from: synthetic (testbed) | local (data_dir) | hub (hub ids)
    task: str = "tldr"  # tldr (TL;DR comparisons + SFT + CNN/DM) | ultrafeedback (pairs; SFT on the chosen responses)
    data_dir: str = "../shared/data"  # local folder of public samples (source=local; scripts/fetch_data_samples.py
    #   writes one); the environment variable DRDO_DATA_DIR wins
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
    """The data of a run: what :func:`run` writes and :func:`load` returns."""

    preferences: Any  # datasets.Dataset of normalised preference rows
    sft: Any  # datasets.Dataset of SFT rows
    ood: Any  # datasets.Dataset of OOD rows (None when the source has none)
    data_dir: Path | None  # the local folder read (the written testbed for "synthetic"); None for the hub
    testbed: SyntheticTestbed | None = None  # the synthetic testbed (its true_reward is r*); None for real data
    confidence_mode: str = "strength"  # how the confidence splits were formed
    split_indices: dict[str, Any] = field(default_factory=dict)  # split -> row indices, or an error message
    split_report: Any = None  # build_splits' Table-5 report (DataFrame), None when no confidence split exists

    def split(self, name: str):
        """The preference rows of one split (``D_all``, ``D_hc_he``, ``D_lc_le``) as the data stage formed it."""
        from drdo_lib.data.splits import SPLIT_NAMES

        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; available: {list(SPLIT_NAMES)}")
        idx = self.split_indices.get(name)
        if idx is None:
            return self.preferences
        if isinstance(idx, str):
            raise ValueError(f"split {name} is not available for this data: {idx}")
        return self.preferences.select(idx)

    def preference_pairs(self, split: str = "D_all", *, what: str | None = None):
        """``(training pairs, validation pairs)`` of one split (see :func:`split_train_heldout`)."""
        train, valid = split_train_heldout(self.split(split), what=what or f"{split} pairs")
        logger.info("%s: %d training pairs, %d validation pairs", split, len(train), len(valid))
        return train, valid

    def sft_rows(self):
        """``(training rows, held-out rows)`` of the SFT data (see :func:`split_train_heldout`)."""
        return split_train_heldout(self.sft, what="SFT rows")

    def corpus(self) -> list[str]:
        """Every text of the data, for training a tiny model's word-level tokenizer (:func:`tokenizer_corpus`)."""
        return tokenizer_corpus(self)


def fetch_hint(only: str | None = None) -> str:
    """How to get a local data folder (one line, ending the missing-data errors): the fetch script, then
    ``DRDO_DATA_DIR``; ``only`` names the one data set to fetch."""
    extra = f" --only {only}" if only else ""
    return (f"fetch the public samples with `python {FETCH_SCRIPT} --out DIR{extra}` (needs Hugging Face hub "
            "access) and set DRDO_DATA_DIR=DIR (or data.data_dir in the profile)")


def resolve_data_dir(data_dir: str | Path) -> Path:
    """``DRDO_DATA_DIR`` if set, else ``data_dir`` (relative paths against the repository root)."""
    env = os.environ.get("DRDO_DATA_DIR")
    p = Path(env) if env else Path(data_dir)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def tokenizer_corpus(data: ProfileData) -> list[str]:
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


def load_sources(cfg: DataConfig, *, seed: int, synthetic_dir: str | Path | None = None,
                 tokenizer: Any = None) -> ProfileData:
    """Load the preference, SFT and OOD rows of a data config, without splits (the data stage's first half).

    ``seed`` seeds the synthetic testbed unless ``cfg.synthetic`` sets one, whose files are written to
    ``synthetic_dir``; ``tokenizer`` is needed only for ``edit_distance_unit="token"``.
    """
    kw = dict(edit_distance_unit=cfg.edit_distance_unit, tokenizer=tokenizer, strict=cfg.strict)
    if cfg.task == "ultrafeedback":
        return _load_ultrafeedback(cfg, kw)
    if cfg.source == "hub":
        return ProfileData(preferences=load_tldr_comparisons(cfg.comparisons_id, **kw),
                           sft=load_tldr_sft(cfg.sft_id, strict=cfg.strict),
                           ood=load_cnn_dailymail(cfg.ood_id, strict=cfg.strict), data_dir=None,
                           confidence_mode=cfg.confidence_mode)
    testbed = None
    if cfg.source == "synthetic":
        if synthetic_dir is None:
            raise ValueError("the synthetic source needs a folder to write the testbed to (synthetic_dir)")
        testbed = SyntheticTestbed(cfg.synthetic_config(seed))
        folder = Path(synthetic_dir)
        testbed.write(folder, n_train=cfg.n_train, n_valid=cfg.n_valid, n_sft=cfg.n_sft, n_sft_test=cfg.n_sft_test,
                      n_ood=cfg.n_ood)
        logger.info("synthetic testbed written to %s", folder)
    else:
        folder = resolve_data_dir(cfg.data_dir)
        if not folder.is_dir():
            raise DataNotFound(f"data folder {folder} does not exist; {fetch_hint()}")
        for name, what in (("comparisons", "TL;DR comparison"), ("sft", "TL;DR SFT")):
            if not _has_data(folder / LOCAL_LAYOUT[name]):
                raise DataNotFound(f"no {what} files under {folder / LOCAL_LAYOUT[name]}; {fetch_hint(name)}")
    ood_dir = folder / LOCAL_LAYOUT["ood"]
    return ProfileData(
        preferences=load_tldr_comparisons(folder / LOCAL_LAYOUT["comparisons"], **kw),
        sft=load_tldr_sft(folder / LOCAL_LAYOUT["sft"], strict=cfg.strict),
        ood=load_cnn_dailymail(ood_dir, strict=cfg.strict) if _has_data(ood_dir) else None,
        data_dir=folder, testbed=testbed, confidence_mode=cfg.confidence_mode)


def _split_indices(data: ProfileData) -> None:
    """Fill ``data.split_indices`` / ``split_report`` from :func:`~drdo_lib.data.splits.split_indices`."""
    from drdo_lib.data.splits import SPLIT_NAMES, split_indices

    data.split_indices = {"D_all": None}
    try:
        indices, report = split_indices(data.preferences, data.confidence_mode)
    except ValueError as e:  # e.g. UltraFeedback: no confidence, so only D_all
        for name in SPLIT_NAMES[1:]:
            data.split_indices[name] = str(e)
        data.split_report = None
        return
    for name in SPLIT_NAMES[1:]:
        data.split_indices[name] = [int(i) for i in indices[name]]
    data.split_report = report


def _source_files(cfg: DataConfig) -> list[list]:
    """``[path, size, mtime_ns]`` of every local source file (the artefact's key must change with them)."""
    if cfg.source != "local":
        return []
    folder = resolve_data_dir(cfg.data_dir)
    if not folder.is_dir():
        return []
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name.endswith(DATA_SUFFIXES)]


def _code_hash() -> str:
    """Hash of the modules that shape the rows (loaders, splits, the testbed, this module)."""
    import hashlib

    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("loaders.py", "splits.py", "synthetic.py", "formats.py", "pipeline.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def artefact_key(cfg: DataConfig, seed: int) -> str:
    """The key the data artefact of ``cfg`` and ``seed`` is stored under (see the module docstring)."""
    import hashlib
    import json

    payload = {"config": dataclasses.asdict(cfg), "seed": seed, "files": _source_files(cfg),
               "data_dir_env": os.environ.get("DRDO_DATA_DIR"), "code": _code_hash(), "version": ARTEFACT_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def run(run, cfg: DataConfig | None = None) -> ProfileData:
    """The data stage: load the sources of ``run``'s ``data`` section, form the splits, and write the artefact
    ``runs/<profile>/data/stage/`` that every later stage reads (module docstring). Returns the data.

    Processes sharing a runs folder build it one at a time (a file lock, ``data/.stage.lock``): none reads the
    synthetic files while another rewrites them, and the artefact is written under this process's own temporary
    name and renamed into place."""
    from drdo_lib.config import file_lock

    cfg = cfg if cfg is not None else run.config(DataConfig, "data")
    root = run.stage_dir("data")
    with file_lock(root / ".stage.lock"):
        return _build(run, cfg, root)


def _build(run, cfg: DataConfig, root: Path) -> ProfileData:
    """The data stage's work (the caller holds ``root/.stage.lock``)."""
    import json
    import shutil

    for stale in root.glob(".stage.tmp*"):  # left by a process killed mid-write (the lock is ours now)
        shutil.rmtree(stale, ignore_errors=True)
    data = load_sources(cfg, seed=run.seed, synthetic_dir=root / "synthetic")
    _split_indices(data)
    out = root / "stage"
    tmp = root / f".stage.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        for name in ("preferences", "sft", "ood"):
            ds = getattr(data, name)
            if ds is not None:
                ds.save_to_disk(str(tmp / name))
        (tmp / "splits.json").write_text(json.dumps(data.split_indices))
        if data.split_report is not None:
            data.split_report.to_csv(tmp / "split_report.csv", index=False)
        manifest = {"key": artefact_key(cfg, run.seed), "seed": run.seed, "config": dataclasses.asdict(cfg),
                    "data_dir": str(data.data_dir) if data.data_dir else None,
                    "rows": {n: len(getattr(data, n)) for n in ("preferences", "sft", "ood")
                             if getattr(data, n) is not None},
                    "provenance": provenance.record()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        old = root / f".stage.tmp-{os.getpid()}-old"
        if out.exists():
            os.replace(out, old)  # the old artefact leaves and the new one arrives by two renames
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("data stage: %s written (%s)", out, manifest["rows"])
    return data


def load(run, cfg: DataConfig | None = None) -> ProfileData:
    """The data of ``run`` as its data stage wrote it; runs the stage first when the artefact is missing or was
    built for other settings, seed, files or code (logged)."""
    import json

    import datasets
    import pandas as pd

    cfg = cfg if cfg is not None else run.config(DataConfig, "data")
    out = run.stage_dir("data", create=False) / "stage"
    manifest = out / "manifest.json"
    key = artefact_key(cfg, run.seed)
    def fresh() -> bool:
        return manifest.exists() and json.loads(manifest.read_text()).get("key") == key

    if not fresh():
        from drdo_lib.config import file_lock

        with file_lock(out.parent / ".stage.lock"):  # study workers may ask for the same artefact at once
            if not fresh():  # another process may have written it while this one waited
                logger.info("data stage artefact %s missing or stale: running the data stage", out)
                return _build(run, cfg, run.stage_dir("data"))
    meta = json.loads(manifest.read_text())
    parts = {n: datasets.load_from_disk(str(out / n)) if (out / n).is_dir() else None
             for n in ("preferences", "sft", "ood")}
    testbed = SyntheticTestbed(cfg.synthetic_config(run.seed)) if cfg.source == "synthetic" else None
    report = pd.read_csv(out / "split_report.csv") if (out / "split_report.csv").exists() else None
    return ProfileData(**parts, data_dir=Path(meta["data_dir"]) if meta.get("data_dir") else None, testbed=testbed,
                       confidence_mode=cfg.confidence_mode,
                       split_indices=json.loads((out / "splits.json").read_text()), split_report=report)


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
            raise DataNotFound(f"no UltraFeedback files under {source} (data.task is 'ultrafeedback'); "
                               f"{fetch_hint('ultrafeedback')}")
    prefs = load_ultrafeedback(source, **kw)
    if cfg.test_fraction > 0:
        def _assign(split: str, pair_id: str) -> dict:
            held = split in TRAIN_SPLITS and id_fraction(pair_id) < cfg.test_fraction
            return {"split": "test" if held else split}

        prefs = prefs.map(_assign, input_columns=["split", "pair_id"], desc="UltraFeedback: test split")
    logger.info("UltraFeedback: %d pairs (%s)", len(prefs),
                ", ".join(f"{k} {v}" for k, v in sorted(Counter(prefs["split"]).items())))
    return ProfileData(preferences=prefs, sft=ultrafeedback_sft_rows(prefs), ood=None, data_dir=folder,
                       confidence_mode=cfg.confidence_mode)


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
