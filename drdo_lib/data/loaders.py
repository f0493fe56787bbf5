"""Loaders: a hub id or a local file/folder in the published schema → a ``datasets.Dataset`` of normalised rows.

Every loader takes ``source`` = a Hugging Face hub id (loaded with ``datasets.load_dataset``; needs network or a
warm cache) **or** a local ``.jsonl`` / ``.json`` / ``.parquet`` file or a folder of them (read here, no hub).
A path wins when it exists; a source that looks like a path (a ``Path``; a string starting with ``/``, ``./``,
``../`` or ``~``; ending in a data suffix; with two or more ``/``; or whose parent folder exists) but does not exist
raises ``FileNotFoundError`` at once; anything else (``org/name``, ``cnn_dailymail``) is treated as a hub id.
Hub datasets are normalised with a batched ``Dataset.map`` (Arrow, cached by ``datasets`` like the download); local
files are parsed in Python, row by row, so that a row Arrow could not type is dropped with its reason instead of
failing the whole file. Both give the same rows (tested) with the Arrow types of ``PREFERENCE_COLUMNS`` /
``SFT_COLUMNS`` / ``OOD_COLUMNS`` / ``ALPACA_COLUMNS``.

Normalised row shapes
---------------------
Preference rows (:func:`load_tldr_comparisons`, :func:`load_ultrafeedback`)::

    id               str    unique row id (post id + hash of the two texts + worker for TL;DR)
    pair_id          str    id of the (prompt, {summary A, summary B}) pair; rows of different workers share it
    prompt           str    TL;DR prompt ending with "TL;DR:" (no trailing space) / the UltraFeedback instruction
    chosen, rejected str    the responses as published (TL;DR summaries keep their leading space)
    confidence       int?   raw directional 1–9 confidence (1–4 ⇒ choice 0, 6–9 ⇒ choice 1); None when absent
    strength         float? |confidence − 5| ∈ {1,2,3,4} (TL;DR) / chosen − rejected rating (UltraFeedback); None
    edit_distance    float  Levenshtein distance between chosen and rejected in ``edit_distance_unit`` units
                            (word: whitespace split; char; token: a tokenizer's ids) divided by the longer length
    choice           int    index of the chosen summary in the raw row (TL;DR; -1 for UltraFeedback)
    source           str    dataset name ("summarize_from_feedback", "ultrafeedback")
    origin           str    file name or hub id the row came from
    split            str    raw split: "train" | "valid1" | "valid2" | … (hub split name for UltraFeedback)
    worker, batch, post_id, subreddit, chosen_policy, rejected_policy   str (may be "")

SFT rows (:func:`load_tldr_sft`): ``{id, prompt, response, split, source, origin}``; ``prompt`` ends with "TL;DR:" and
``response`` starts with one space (CarperAI's "TL;DR: " + label, re-cut), so ``prompt + response`` is the text.
Also reads the OpenAI/dove layout ``{id|instruction_id, subreddit, title, post|instruction, summary|gold_response}``.
OOD rows (:func:`load_cnn_dailymail`): ``{id, article, highlights, split, source, origin}``.
AlpacaEval rows (:func:`load_alpaca_eval`): ``{id, instruction, dataset, reference_output, reference_generator,
source, origin}``.

Bad input
---------
Rows that cannot be used are never silently used or lost: each is dropped with a reason, counted, logged, and the
counts are stored with the dataset (read them with :func:`dropped_counts`; ``build_splits`` copies them into its
report; they survive ``select``/``filter``/``map``, while ``concatenate_datasets`` keeps only the first one's).
Reasons: ``missing_field`` (absent, null or wrongly typed field, including a renamed one),
``no_tldr_fields`` (``info`` without post/title/subreddit, e.g. the CNN/DM comparisons; an SFT prompt without
"TL;DR:"), ``bad_summaries`` (not exactly two), ``bad_choice``, ``empty_response``, ``identical_responses``,
``confidence_out_of_range`` (not an integer in 1–4 or 6–9), ``confidence_direction_mismatch`` (1–4 with choice 1
or 6–9 with choice 0), ``non_finite_rating``, ``invalid_json``, ``invalid_encoding`` (a JSON Lines line that is
not UTF-8), ``not_a_record``, ``not_alpaca_eval`` (a TL;DR row given to the AlpacaEval loader), ``duplicate_id``.
Text files are read as UTF-8 with or without a byte-order mark; a JSON array file that is not UTF-8 raises
``ValueError`` naming the file and line. ``choice`` may be 0.0/1.0 (pandas/Arrow floats); a wrong-typed ``extra``
(not an object or null) is ``missing_field``, not a null confidence; AlpacaEval's ``output``/``generator``/
``dataset`` must be strings when present (absent or null gives "").
A **null** confidence is not an error: the row is kept with ``confidence = strength = None``;
:func:`~drdo_lib.data.splits.build_splits` keeps it in D_all, leaves it out of the confidence splits and counts it
(``dropped_null_confidence``). A whole file with none of the schema's fields raises ``ValueError`` naming the file.
With ``strict=True`` the first bad row raises :class:`BadRowError` naming the file, the row (1-based line or index)
and the field.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein
from tqdm.auto import tqdm

from drdo_lib.data.formats import format_tldr_prompt, normalise_subreddit
from drdo_lib.errors import UserError

logger = logging.getLogger(__name__)

__all__ = [
    "load_tldr_comparisons",
    "load_tldr_sft",
    "load_cnn_dailymail",
    "load_ultrafeedback",
    "load_alpaca_eval",
    "dropped_counts",
    "edit_distance",
    "BadRowError",
    "DATA_SUFFIXES",
    "EDIT_DISTANCE_UNITS",
]

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
EDIT_DISTANCE_UNITS = ("word", "char", "token")
_PROGRESS_MIN_ROWS = 20_000  # show a progress bar when normalising at least this many rows


def _features(**cols: str):
    import datasets

    return datasets.Features({k: datasets.Value(v) for k, v in cols.items()})


_S = "string"
#: Column types of the normalised rows (see the module docstring).
PREFERENCE_COLUMNS = dict(id=_S, pair_id=_S, prompt=_S, chosen=_S, rejected=_S, confidence="int64",
                          strength="float64", edit_distance="float64", choice="int64", source=_S, origin=_S,
                          split=_S, worker=_S, batch=_S, post_id=_S, subreddit=_S, chosen_policy=_S,
                          rejected_policy=_S)
SFT_COLUMNS = dict(id=_S, prompt=_S, response=_S, split=_S, source=_S, origin=_S)
OOD_COLUMNS = dict(id=_S, article=_S, highlights=_S, split=_S, source=_S, origin=_S)
ALPACA_COLUMNS = dict(id=_S, instruction=_S, dataset=_S, reference_output=_S, reference_generator=_S, source=_S,
                      origin=_S)


class DataFileError(UserError, ValueError):
    """A data file or folder that cannot be used as a whole (no usable rows, another schema, not UTF-8/JSON)."""


class DataNotFound(UserError, FileNotFoundError):
    """A local data file or folder that does not exist."""


class BadRowError(UserError, ValueError):
    """A row not in the schema, raised in strict mode; the message names the file, row and field."""


class _Drop(Exception):
    def __init__(self, reason: str, field: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.field, self.detail = reason, field, detail


# ---------------------------------------------------------------------------------------------- helpers
def edit_distance(a: str, b: str, unit: str = "word", tokenizer: Any = None) -> float:
    """Normalised Levenshtein distance between ``a`` and ``b``: distance / longer length (0 when both are empty).

    ``unit``: "word" (whitespace split, the default), "char", or "token" (``tokenizer(text)["input_ids"]`` or
    ``tokenizer.encode(text)``, needs ``tokenizer``).
    """
    if unit == "word":
        x: Sequence[Any] = a.split()
        y: Sequence[Any] = b.split()
    elif unit == "char":
        x, y = a, b
    elif unit == "token":
        if tokenizer is None:
            raise ValueError("edit_distance: unit='token' needs a tokenizer")
        enc = tokenizer.encode if hasattr(tokenizer, "encode") else (lambda t: tokenizer(t)["input_ids"])
        x, y = enc(a), enc(b)
    else:
        raise ValueError(f"edit_distance: unit must be one of {EDIT_DISTANCE_UNITS}, got {unit!r}")
    longer = max(len(x), len(y))
    return Levenshtein.distance(x, y) / longer if longer else 0.0


def dropped_counts(ds: Any) -> dict[str, int]:
    """Per-reason counts of the rows a loader dropped (stored in ``ds.info.description``); {} when none recorded."""
    desc = getattr(getattr(ds, "info", None), "description", "") or ""
    try:
        meta = json.loads(desc)
    except (TypeError, ValueError):
        return {}
    return {str(k): int(v) for k, v in (meta.get("drdo_dropped") or {}).items()} if isinstance(meta, dict) else {}


def _is_local(source: str | Path) -> bool:
    """Whether ``source`` names a local file/folder (read here) rather than a hub id.

    It does when it exists, or when it looks like a path: a :class:`~pathlib.Path`, a string starting with ``/``,
    ``./``, ``../``, ``~`` or ``.``, one ending with a data suffix (``.jsonl``/``.json``/``.parquet``, any case), one
    with a backslash or more than one ``/`` (hub ids are ``name`` or ``org/name``), or one whose parent folder exists
    (``data/tldr`` with ``data/`` present). A local source that does not exist raises :class:`FileNotFoundError`
    at once instead of going to the hub; ``openai/summarize_from_feedback`` or ``cnn_dailymail`` go to the hub.
    """
    if isinstance(source, Path):
        return True
    s = str(source)
    p = Path(s).expanduser()
    if p.exists():
        return True
    if s.startswith(("/", "./", "../", "~", ".")) or s.lower().endswith(DATA_SUFFIXES) or "\\" in s:
        return True
    if "://" not in s and s.count("/") > 1:
        return True
    return "/" in s and p.parent != Path(".") and p.parent.is_dir()


def _local_path(source: str | Path) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise DataNotFound(f"{source}: no such local file or folder (it was taken as a local path, not a hub "
                                "id: hub ids look like 'org/name' and are not paths that exist or end in "
                                f"{'/'.join(DATA_SUFFIXES)})")
    return path


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES))
    if not files:
        raise DataFileError(f"{path}: no {'/'.join(DATA_SUFFIXES)} files in this folder")
    return files


def _iter_file(path: Path, drops: Counter, strict: bool) -> Iterator[tuple[int, Any]]:
    """(1-based row number, record) of a JSON Lines, JSON (list or lines) or parquet file.

    Text files are UTF-8, with or without a byte-order mark. A JSON Lines line that is not valid UTF-8 is dropped as
    ``invalid_encoding`` (strict: :class:`BadRowError` naming the file and row); a JSON array that is not valid
    UTF-8 raises ``ValueError`` naming the file and line.
    """
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        for i, rec in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield i, rec
        return
    with open(path, "rb") as f:
        head = f.read(4096)
        if head.startswith(codecs.BOM_UTF8):
            head = head[len(codecs.BOM_UTF8):]
        f.seek(0)
        if head.lstrip()[:1] == b"[":  # one JSON array
            data = f.read()
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = data[:e.start].count(b"\n") + 1
                raise DataFileError(f"{path}: line {line}: not valid UTF-8 (byte {data[e.start:e.start + 1]!r} at "
                                 f"offset {e.start}); re-save the file as UTF-8") from None
            try:
                records = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataFileError(f"{path}: not valid JSON ({e})") from None
            except RecursionError:
                raise DataFileError(f"{path}: not usable JSON (nested too deeply)") from None
            for i, rec in enumerate(records, start=1):
                yield i, rec
            return
        for i, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if i == 1 else "utf-8")
            except UnicodeDecodeError as e:
                if strict:
                    raise BadRowError(f"{path}: row {i}: not valid UTF-8 (byte {raw[e.start:e.start + 1]!r} at "
                                      f"column {e.start + 1}); re-save the file as UTF-8") from None
                drops["invalid_encoding"] += 1
                continue
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:  # a row nested too deeply cannot be read either
                if strict:
                    why = e if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                    raise BadRowError(f"{path}: row {i}: not valid JSON ({why})") from None
                drops["invalid_json"] += 1
                continue
            yield i, rec


def _records(source: str | Path, drops: Counter, strict: bool, schema_keys: set[str],
             foreign_keys: set[str] = frozenset()) -> Iterator[tuple[str, str, int, Any]]:
    """(origin name, "", row number, record) for every record of a local file or folder.

    A file none of whose first 50 rows has one of ``schema_keys`` without any of ``foreign_keys`` (the fields of
    another dataset, e.g. a TL;DR post's ``subreddit`` for AlpacaEval) raises ``ValueError`` naming it.
    """
    for path in _data_files(_local_path(source)):
        n_ok = n_seen = 0
        for i, rec in _iter_file(path, drops, strict):
            n_seen += 1
            if isinstance(rec, dict) and schema_keys & set(rec) and not foreign_keys & set(rec):
                n_ok += 1
            yield path.name, "", i, rec
            if n_seen >= 50 and n_ok == 0:
                break
        if n_seen and n_ok == 0:
            raise DataFileError(f"{path}: not in the expected schema: none of the first {n_seen} rows has any of "
                             f"the fields {sorted(schema_keys)}"
                             + (f" without any of {sorted(foreign_keys)}" if foreign_keys else ""))


def _normalise_all(source: str | Path, normalise: Callable[[dict, str, str], dict], *, hub_config: str | None,
                   hub_splits: Sequence[str] | None, strict: bool, schema_keys: set[str], name: str,
                   features: Any, key: str = "id", foreign_keys: set[str] = frozenset()):
    """Run ``normalise`` on every record; returns a Dataset of good rows with drop counts in its info."""
    if _is_local(source):
        return _normalise_local(source, normalise, strict=strict, schema_keys=schema_keys, name=name,
                                features=features, key=key, foreign_keys=foreign_keys)
    return _normalise_hub(str(source), normalise, hub_config=hub_config, hub_splits=hub_splits, strict=strict,
                          name=name, features=features, key=key)


def _finish(drops: Counter, source: Any, name: str, n_kept: int, features: Any):
    import datasets

    if drops:
        logger.warning("%s from %s: kept %d rows, dropped %d: %s", name, source, n_kept, sum(drops.values()),
                       dict(sorted(drops.items())))
    if n_kept == 0:
        raise DataFileError(f"{name}: no usable rows in {source} (dropped: {dict(drops)})")
    return datasets.DatasetInfo(description=json.dumps({"drdo_dropped": dict(sorted(drops.items())),
                                                        "drdo_source": str(source)}), features=features)


def _normalise_local(source: str | Path, normalise: Callable[[dict, str, str], dict], *, strict: bool,
                     schema_keys: set[str], name: str, features: Any, key: str,
                     foreign_keys: set[str] = frozenset()):
    import datasets

    drops: Counter = Counter()
    rows: list[dict] = []
    seen_ids: set[str] = set()
    bar = None
    for n, (origin, hub_split, i, rec) in enumerate(_records(source, drops, strict, schema_keys, foreign_keys)):
        if n == _PROGRESS_MIN_ROWS:
            bar = tqdm(desc=f"normalising {name}", unit=" rows", initial=n)
        if bar is not None:
            bar.update(1)
        try:
            if not isinstance(rec, dict):
                raise _Drop("not_a_record", "<row>", f"a JSON {type(rec).__name__}, not an object")
            row = normalise(rec, origin, hub_split)
            if row[key] in seen_ids:
                raise _Drop("duplicate_id", key, f"id {row[key]!r} already seen")
        except _Drop as d:
            if strict:
                raise BadRowError(f"{origin}: row {i}: field {d.field!r}: {d.reason}"
                                  + (f" ({d.detail})" if d.detail else "")) from None
            drops[d.reason] += 1
            continue
        seen_ids.add(row[key])
        rows.append(row)
    if bar is not None:
        bar.close()
    info = _finish(drops, source, name, len(rows), features)
    return datasets.Dataset.from_list(rows, features=features, info=info)


def _normalise_hub(hub_id: str, normalise: Callable[[dict, str, str], dict], *, hub_config: str | None,
                   hub_splits: Sequence[str] | None, strict: bool, name: str, features: Any, key: str):
    """Hub source: ``datasets.load_dataset`` then a batched, cached ``Dataset.map`` of ``normalise``."""
    import datasets

    logger.info("loading %s (config %s) with datasets.load_dataset", hub_id, hub_config)
    dsd = datasets.load_dataset(hub_id, hub_config) if hub_config else datasets.load_dataset(hub_id)
    if isinstance(dsd, datasets.Dataset):
        dsd = datasets.DatasetDict({"train": dsd})
    names = list(hub_splits) if hub_splits else list(dsd.keys())
    unknown = [n for n in names if n not in dsd]
    if unknown:
        raise ValueError(f"{hub_id}: no split(s) {unknown}; available: {list(dsd.keys())}")
    out_features = datasets.Features({**features, "_drop": datasets.Value("string")})
    empty = {k: None for k in features}
    drops: Counter = Counter()
    parts = []
    for split in names:
        origin = f"{hub_id}[{split}]"

        def fn(batch: dict, indices: list[int], origin: str = origin, split: str = split) -> dict:
            cols = list(batch)
            out: dict[str, list] = {k: [] for k in out_features}
            for j, idx in enumerate(indices):
                rec = {c: batch[c][j] for c in cols}
                try:
                    row, reason = normalise(rec, origin, split), ""
                except _Drop as d:
                    if strict:
                        raise BadRowError(f"{origin}: row {idx + 1}: field {d.field!r}: {d.reason}"
                                          + (f" ({d.detail})" if d.detail else "")) from None
                    row, reason = empty, d.reason
                for k in features:
                    out[k].append(row[k])
                out["_drop"].append(reason)
            return out

        mapped = dsd[split].map(fn, batched=True, with_indices=True, remove_columns=dsd[split].column_names,
                                features=out_features, desc=f"normalising {name} [{split}]")
        drop_col = mapped["_drop"]
        drops.update(r for r in drop_col if r)
        parts.append(mapped)
    ds = datasets.concatenate_datasets(parts)
    frame = pd.DataFrame({"drop": ds["_drop"], "id": ds[key]})
    ok = (frame["drop"] == "").to_numpy()
    dup = frame["id"].duplicated().to_numpy() & ok
    if dup.any():
        if strict:
            first = int(np.flatnonzero(dup)[0])
            raise BadRowError(f"{hub_id}: row {first + 1} of the concatenated splits: field {key!r}: duplicate_id")
        drops["duplicate_id"] += int(dup.sum())
    keep = np.flatnonzero(ok & ~dup)
    info = _finish(drops, hub_id, name, len(keep), datasets.Features(features))
    ds = ds.select(keep).remove_columns("_drop").flatten_indices()
    return datasets.Dataset(ds.data, info=info)


def _get(rec: dict, field: str, path: str | None = None) -> Any:
    if field not in rec or rec[field] is None:
        raise _Drop("missing_field", path or field)
    return rec[field]


def _text(rec: dict, field: str, path: str | None = None) -> str:
    v = _get(rec, field, path)
    if not isinstance(v, str):
        raise _Drop("missing_field", path or field, f"expected a string, got {type(v).__name__}")
    return v


def _short_hash(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- TL;DR comparisons
def _tldr_comparison(unit: str, tokenizer: Any) -> Callable[[dict, str, str], dict]:
    def normalise(rec: dict, origin: str, hub_split: str) -> dict:
        info = _get(rec, "info")
        if not isinstance(info, dict):
            raise _Drop("missing_field", "info", "expected an object")
        if not all(isinstance(info.get(k), str) for k in ("post", "title", "subreddit")):
            raise _Drop("no_tldr_fields", "info.post/title/subreddit",
                        "a CNN/DM or otherwise non-TL;DR row" if info.get("article") else "")
        summaries = _get(rec, "summaries")
        if not (isinstance(summaries, list) and len(summaries) == 2 and all(isinstance(s, dict) for s in summaries)):
            raise _Drop("bad_summaries", "summaries", "expected a list of exactly 2 objects")
        texts = [_text(s, "text", f"summaries[{j}].text") for j, s in enumerate(summaries)]
        choice = _get(rec, "choice")
        # 0.0/1.0 are accepted: pandas/Arrow turn an integer column with a null into floats (a NaN is dropped)
        if isinstance(choice, bool) or not isinstance(choice, (int, float)) or choice not in (0, 1):
            raise _Drop("bad_choice", "choice", f"expected 0 or 1, got {choice!r}")
        choice = int(choice)
        chosen, rejected = texts[choice], texts[1 - choice]
        if not chosen.strip() or not rejected.strip():
            raise _Drop("empty_response", f"summaries[{choice if not chosen.strip() else 1 - choice}].text")
        if chosen.strip() == rejected.strip():
            raise _Drop("identical_responses", "summaries")
        extra = rec.get("extra")
        if extra is not None and not isinstance(extra, dict):
            raise _Drop("missing_field", "extra", f"expected an object or null, got {type(extra).__name__}")
        conf = (extra or {}).get("confidence")
        strength: float | None = None
        if conf is not None:
            if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not math.isfinite(conf) \
                    or conf != int(conf) or not 1 <= conf <= 9 or conf == 5:
                raise _Drop("confidence_out_of_range", "extra.confidence", f"expected 1–4 or 6–9, got {conf!r}")
            conf = int(conf)
            if (conf < 5) != (choice == 0):
                raise _Drop("confidence_direction_mismatch", "extra.confidence",
                            f"confidence {conf} with choice {choice} (1–4 go with choice 0, 6–9 with choice 1)")
            strength = float(abs(conf - 5))
        post_id = info.get("id") if isinstance(info.get("id"), str) else ""
        prompt = format_tldr_prompt(info["subreddit"], info["title"], info["post"])
        pid = _short_hash(post_id or prompt, *sorted(t.strip() for t in texts))
        worker = rec.get("worker") if isinstance(rec.get("worker"), str) else ""
        pols = [s.get("policy") if isinstance(s.get("policy"), str) else "" for s in summaries]
        return {
            "id": f"{post_id or 'post'}:{pid}:{_short_hash(worker, texts[0], texts[1], str(choice))[:8]}",
            "pair_id": pid,
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "confidence": conf,
            "strength": strength,
            "edit_distance": edit_distance(chosen, rejected, unit, tokenizer),
            "choice": int(choice),
            "source": "summarize_from_feedback",
            "origin": origin,
            "split": rec.get("split") if isinstance(rec.get("split"), str) else (hub_split or ""),
            "worker": worker,
            "batch": rec.get("batch") if isinstance(rec.get("batch"), str) else "",
            "post_id": post_id,
            "subreddit": normalise_subreddit(info["subreddit"]),
            "chosen_policy": pols[choice],
            "rejected_policy": pols[1 - choice],
        }

    return normalise


def load_tldr_comparisons(source: str | Path = "openai/summarize_from_feedback", *, hub_config: str = "comparisons",
                          hub_splits: Sequence[str] | None = None, edit_distance_unit: str = "word",
                          tokenizer: Any = None, strict: bool = False):
    """TL;DR comparisons (``openai/summarize_from_feedback``, config ``comparisons``) → normalised preference rows.

    ``source``: hub id or local file/folder of raw comparison JSON(L)/parquet. ``hub_splits``: hub splits to read
    (default all: train + validation). Rows whose ``info`` lacks post/title/subreddit (CNN/DM comparisons) are
    dropped as ``no_tldr_fields``. See the module docstring for the row shape and the bad-input rules.
    """
    if edit_distance_unit not in EDIT_DISTANCE_UNITS:
        raise ValueError(f"edit_distance_unit must be one of {EDIT_DISTANCE_UNITS}, got {edit_distance_unit!r}")
    if edit_distance_unit == "token" and tokenizer is None:
        raise ValueError("edit_distance_unit='token' needs a tokenizer")
    return _normalise_all(source, _tldr_comparison(edit_distance_unit, tokenizer), hub_config=hub_config,
                          hub_splits=hub_splits, strict=strict, schema_keys={"info", "summaries", "choice"},
                          name="TL;DR comparisons", features=_features(**PREFERENCE_COLUMNS))


# ---------------------------------------------------------------------------------------------- TL;DR SFT
def _tldr_sft(rec: dict, origin: str, hub_split: str) -> dict:
    if "prompt" in rec or "label" in rec:  # CarperAI layout
        prompt = _text(rec, "prompt")
        label = _text(rec, "label")
        if "TL;DR:" not in prompt:
            raise _Drop("no_tldr_fields", "prompt", "prompt does not contain 'TL;DR:'")
        prompt = prompt.rstrip()
        rid = rec.get("id") if isinstance(rec.get("id"), str) else ""
    else:  # OpenAI tldr_3_filtered / dove layout
        try:
            sub = _text(rec, "subreddit")
            title = _text(rec, "title")
            post = _text(rec, "post") if "post" in rec else _text(rec, "instruction", "post|instruction")
        except _Drop as d:
            raise _Drop("no_tldr_fields", d.field) from None
        label = _text(rec, "summary") if "summary" in rec else _text(rec, "gold_response", "summary|gold_response")
        prompt = format_tldr_prompt(sub, title, post)
        rid = next((rec[k] for k in ("id", "instruction_id") if isinstance(rec.get(k), str)), "")
    if not label.strip():
        raise _Drop("empty_response", "label")
    split = hub_split or _split_from_name(origin)
    return {"id": rid or _short_hash(prompt, label), "prompt": prompt, "response": " " + label.strip(),
            "split": split, "source": "openai_summarize_tldr", "origin": origin}


def _split_from_name(name: str) -> str:
    low = name.lower()
    for s in ("train", "valid", "test"):
        if s in low:
            return s
    return ""


def load_tldr_sft(source: str | Path = "CarperAI/openai_summarize_tldr", *, hub_splits: Sequence[str] | None = None,
                  strict: bool = False):
    """TL;DR SFT rows (``CarperAI/openai_summarize_tldr`` prompt/label, or the OpenAI/dove field layout).

    Local files: the split is taken from the file name (train/valid/test). Rows with the same id (the same post in
    two layouts, e.g. a dove-layout file and its CarperAI rendering in one folder) are kept once (``duplicate_id``).
    """
    return _normalise_all(source, _tldr_sft, hub_config=None, hub_splits=hub_splits, strict=strict,
                          schema_keys={"prompt", "label", "subreddit", "title", "post", "instruction"},
                          name="TL;DR SFT", features=_features(**SFT_COLUMNS))


# ---------------------------------------------------------------------------------------------- CNN/DailyMail
def _cnn(rec: dict, origin: str, hub_split: str) -> dict:
    article = _text(rec, "article")
    highlights = _text(rec, "highlights")
    if not article.strip():
        raise _Drop("empty_response", "article")
    if not highlights.strip():
        raise _Drop("empty_response", "highlights")
    rid = rec.get("id") if isinstance(rec.get("id"), str) else _short_hash(article)
    return {"id": rid, "article": article, "highlights": highlights,
            "split": hub_split or _split_from_name(origin) or "test", "source": "cnn_dailymail", "origin": origin}


def load_cnn_dailymail(source: str | Path = "cnn_dailymail", *, hub_config: str = "3.0.0",
                       hub_splits: Sequence[str] | None = ("test",), strict: bool = False):
    """CNN/DailyMail (``{id, article, highlights}``, config 3.0.0), the OOD test set; hub default split "test"."""
    return _normalise_all(source, _cnn, hub_config=hub_config, hub_splits=hub_splits, strict=strict,
                          schema_keys={"article", "highlights"}, name="CNN/DailyMail",
                          features=_features(**OOD_COLUMNS))


# ---------------------------------------------------------------------------------------------- UltraFeedback
def _message_text(v: Any, field: str) -> str:
    """A response given as a string, or as chat messages (the last assistant turn's content)."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and all(isinstance(m, dict) for m in v):
        for m in reversed(v):
            if m.get("role") == "assistant" and isinstance(m.get("content"), str):
                return m["content"]
    raise _Drop("missing_field", field, "expected a string or chat messages with an assistant turn")


def _rating(rec: dict, field: str) -> float | None:
    v = rec.get(field)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _Drop("non_finite_rating", field, f"got {v!r}")
    return float(v)


def _ultrafeedback(unit: str, tokenizer: Any) -> Callable[[dict, str, str], dict]:
    def normalise(rec: dict, origin: str, hub_split: str) -> dict:
        prompt = _text(rec, "prompt")
        chosen = _message_text(_get(rec, "chosen"), "chosen")
        rejected = _message_text(_get(rec, "rejected"), "rejected")
        if not prompt.strip():
            raise _Drop("missing_field", "prompt", "empty prompt")
        if not chosen.strip() or not rejected.strip():
            raise _Drop("empty_response", "chosen" if not chosen.strip() else "rejected")
        if chosen.strip() == rejected.strip():
            raise _Drop("identical_responses", "chosen/rejected")
        rc, rr = _rating(rec, "chosen-rating"), _rating(rec, "rejected-rating")
        idx = rec.get("row_idx")
        pid = _short_hash(prompt, chosen, rejected)
        return {
            "id": f"uf:{idx}" if isinstance(idx, int) else f"uf:{pid}",
            "pair_id": pid, "prompt": prompt, "chosen": chosen, "rejected": rejected,
            "confidence": None, "strength": (rc - rr) if rc is not None and rr is not None else None,
            "edit_distance": edit_distance(chosen, rejected, unit, tokenizer), "choice": -1,
            "source": "ultrafeedback", "origin": origin, "split": hub_split or _split_from_name(origin) or "train",
            "worker": "", "batch": str(rec.get("source") or ""), "post_id": "", "subreddit": "",
            "chosen_policy": str(rec.get("chosen-model") or ""),
            "rejected_policy": str(rec.get("rejected-model") or ""),
        }

    return normalise


def load_ultrafeedback(source: str | Path = "argilla/ultrafeedback-binarized-preferences-cleaned", *,
                       hub_splits: Sequence[str] | None = None, edit_distance_unit: str = "word",
                       tokenizer: Any = None, strict: bool = False):
    """UltraFeedback preference rows; chosen/rejected may be strings or chat messages; strength = rating margin."""
    if edit_distance_unit not in EDIT_DISTANCE_UNITS:
        raise ValueError(f"edit_distance_unit must be one of {EDIT_DISTANCE_UNITS}, got {edit_distance_unit!r}")
    return _normalise_all(source, _ultrafeedback(edit_distance_unit, tokenizer), hub_config=None,
                          hub_splits=hub_splits, strict=strict, schema_keys={"prompt", "chosen", "rejected"},
                          name="UltraFeedback", features=_features(**PREFERENCE_COLUMNS))


# ---------------------------------------------------------------------------------------------- AlpacaEval
#: Fields of the TL;DR / comparison schemas: a row with one of them is not an AlpacaEval instruction.
_NOT_ALPACA_KEYS = {"subreddit", "title", "post", "gold_response", "summary", "summaries", "info", "label"}


def _optional_text(rec: dict, field: str) -> str:
    """A string field that may be absent or null ("" then); any other type (NaN, a list, a number) is dropped."""
    v = rec.get(field)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _Drop("missing_field", field, f"expected a string, got {type(v).__name__} {v!r:.40}")
    return v


def _alpaca(rec: dict, origin: str, hub_split: str) -> dict:
    foreign = sorted(_NOT_ALPACA_KEYS & set(rec))
    if foreign:
        raise _Drop("not_alpaca_eval", foreign[0], f"a TL;DR row (fields {foreign}), not an AlpacaEval instruction")
    instruction = _text(rec, "instruction")
    if not instruction.strip():
        raise _Drop("missing_field", "instruction", "empty instruction")
    return {"id": _short_hash(instruction), "instruction": instruction, "dataset": _optional_text(rec, "dataset"),
            "reference_output": _optional_text(rec, "output"),
            "reference_generator": _optional_text(rec, "generator"), "source": "alpaca_eval", "origin": origin}


def load_alpaca_eval(source: str | Path = "tatsu-lab/alpaca_eval", *, hub_config: str | None = "alpaca_eval",
                     hub_splits: Sequence[str] | None = ("eval",), strict: bool = False):
    """AlpacaEval instructions (805) with one reference output each.

    A folder holding several reference files (a local data folder's ``alpaca_eval/``) gives each instruction once,
    from the first file in name order (the other copies are counted as ``duplicate_id``); pass a single file to
    choose the reference generator.
    """
    return _normalise_all(source, _alpaca, hub_config=hub_config, hub_splits=hub_splits, strict=strict,
                          schema_keys={"instruction"}, foreign_keys=_NOT_ALPACA_KEYS, name="AlpacaEval",
                          features=_features(**ALPACA_COLUMNS))
