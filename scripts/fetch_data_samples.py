#!/usr/bin/env python
"""Fetch small samples of the public data sets that the ``sample`` and ``smol`` profiles read into a local folder.

    python scripts/fetch_data_samples.py --out DIR            # every data set (needs Hugging Face hub access)
    python scripts/fetch_data_samples.py --out DIR --only sample          # what the `sample` profile reads
    python scripts/fetch_data_samples.py --out DIR --only smol --rows 200 # what `smol` reads, 200 rows each
    DRDO_DATA_DIR=DIR python -m drdo_lib train --config configs/sample.yaml --stage data

Each data set is read with ``datasets.load_dataset`` (streamed, so only the first rows are downloaded) and its
first ``--rows`` rows are written unchanged, in the published schema, into the sub-folder the loaders of
:mod:`drdo_lib.data` read (``LOCAL_LAYOUT`` of :mod:`drdo_lib.data.pipeline`):

* ``comparisons``: ``openai/summarize_from_feedback``, config ``comparisons``, split ``validation``, 700 rows
  -> ``summarize_from_feedback_comparisons/comparisons_validation.jsonl`` (``sample``);
* ``sft``: ``CarperAI/openai_summarize_tldr``, split ``test``, 500 rows
  -> ``openai_summarize_tldr/carperai_test.jsonl`` (``sample``);
* ``ood``: ``cnn_dailymail``, config ``3.0.0``, split ``test``, 250 rows -> ``cnn_dailymail/cnn_dailymail_test.jsonl``
  (``sample``);
* ``ultrafeedback``: ``argilla/ultrafeedback-binarized-preferences-cleaned``, split ``train``, 1,000 rows
  -> ``ultrafeedback/ultrafeedback_train.jsonl`` (``smol``);
* ``alpaca_eval``: ``tatsu-lab/alpaca_eval``, config ``alpaca_eval``, split ``eval``, all 805 rows
  -> ``alpaca_eval/alpaca_eval.json`` (``sample`` and ``smol``).

The hub ids are the defaults of ``DataConfig`` (``comparisons_id``, ``sft_id``, ``ood_id``, ``ultrafeedback_id``)
and of ``EvalConfig.alpaca_source`` (a test checks it). The loaders take the split of the SFT, CNN/DailyMail and
UltraFeedback rows from the file name (``test`` / ``train``); the comparison rows carry theirs (``valid1`` /
``valid2``). Each folder gets a PROVENANCE.md naming the hub id, config, split, revision, date and row count. A data set that cannot be fetched (no network, a
hub error) is reported in one line and the others are still written; the exit status is then 1.

``--only`` takes data set names and the profile names ``sample`` (comparisons, sft, ood, alpaca_eval) and ``smol``
(ultrafeedback, alpaca_eval). The default ``--out`` is ``$DRDO_DATA_DIR``, else ``data/`` in the repository (ignored
by git); the profiles read the folder named by ``DRDO_DATA_DIR`` (or ``data.data_dir``).

Data sets still published with a loading script, which recent ``datasets`` versions no longer run, are read from
the hub's Parquet conversion (``revision="refs/convert/parquet"``) or, for AlpacaEval, from its JSON file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from drdo_lib.data.pipeline import LOCAL_LAYOUT, DataConfig  # noqa: E402

#: Hub id of AlpacaEval: ``EvalConfig.alpaca_source``'s default (not imported: drdo_lib.evaluation loads torch).
ALPACA_ID = "tatsu-lab/alpaca_eval"

PROG = "fetch_data_samples"


@dataclass(frozen=True)
class Sample:
    """One data set to fetch: where it comes from on the hub and which file of the local layout it becomes."""

    name: str  # a key of LOCAL_LAYOUT (the sub-folder)
    hub_id: str
    config: str | None
    split: str
    rows: int  # default number of rows
    file: str  # file name inside the sub-folder (.jsonl: one row per line; .json: one JSON array)
    reader: str  # the drdo_lib.data loader that reads the folder
    fallbacks: tuple[dict, ...] = field(default=())  # load_dataset arguments tried when a loading script is refused

    @property
    def folder(self) -> str:
        return LOCAL_LAYOUT[self.name]


def samples() -> dict[str, Sample]:
    """The data sets, by name; the hub ids are the library's defaults."""
    data = DataConfig()
    parquet = ({"revision": "refs/convert/parquet"},)
    return {s.name: s for s in (
        Sample("comparisons", data.comparisons_id, "comparisons", "validation", 700, "comparisons_validation.jsonl",
               "load_tldr_comparisons", parquet),
        Sample("sft", data.sft_id, None, "test", 500, "carperai_test.jsonl", "load_tldr_sft", parquet),
        Sample("ood", data.ood_id, "3.0.0", "test", 250, "cnn_dailymail_test.jsonl", "load_cnn_dailymail", parquet),
        Sample("ultrafeedback", data.ultrafeedback_id, None, "train", 1000, "ultrafeedback_train.jsonl",
               "load_ultrafeedback", parquet),
        Sample("alpaca_eval", ALPACA_ID, "alpaca_eval", "eval", 805, "alpaca_eval.json", "load_alpaca_eval",
               ({"path": "json", "name": None, "split": "train",
                 "data_files": f"hf://datasets/{ALPACA_ID}/alpaca_eval.json"},) + parquet),
    )}


#: Profile names accepted by --only: the data sets each profile reads.
PROFILES = {"sample": ("comparisons", "sft", "ood", "alpaca_eval"), "smol": ("ultrafeedback", "alpaca_eval")}


#: How ``datasets`` reports a hub it cannot reach (no network, offline mode).
_UNREACHABLE = "ConnectionError: Couldn't reach"


class FetchError(Exception):
    """A data set that could not be fetched (reported in one line)."""


def _is_script_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "script" in text and ("no longer supported" in text or "trust_remote_code" in text)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_rows(sample: Sample, n: int, *, streaming: bool = True) -> tuple[list[dict], dict]:
    """The first ``n`` rows of ``sample`` as published, and the ``load_dataset`` arguments that gave them."""
    import datasets

    first = {"path": sample.hub_id, "name": sample.config, "split": sample.split}
    attempts = [first] + [{**first, **fb} for fb in sample.fallbacks]
    errors: list[str] = []
    for kwargs in attempts:
        call = {k: v for k, v in kwargs.items() if v is not None or k == "name"}
        try:
            ds = datasets.load_dataset(**call, streaming=streaming)
            if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
                ds = ds[call["split"]]
            if isinstance(ds, datasets.IterableDataset):
                rows = list(ds.take(n))
            else:
                rows = ds.select(range(min(n, len(ds)))).to_list()
        except Exception as e:  # noqa: BLE001 - every failure of one data set is reported in one line
            errors.append(_one_line(e) if not errors else f"then {_where(call)}: {_one_line(e)}")
            if _is_script_error(e):
                continue  # published with a loading script: try the next way of reading the same data
            break
        else:
            if not rows:
                raise FetchError(f"split {sample.split!r} has no rows")
            return rows, call
    raise FetchError("; ".join(errors))


def _where(call: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in call.items() if k not in ("path", "name", "split") and v is not None) \
        or str(call["path"])


def hub_revision(hub_id: str) -> str:
    """The commit of the hub repository (``unresolved`` when it cannot be looked up)."""
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(hub_id).sha or "unresolved"
    except Exception:  # noqa: BLE001 - the revision is a courtesy: the rows are already fetched
        return "unresolved"


def write_rows(path: Path, rows: list[dict]) -> None:
    """``rows`` as JSON Lines (``.jsonl``) or one JSON array (``.json``), written under a temporary name first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        if path.suffix == ".json":
            json.dump(rows, f, ensure_ascii=False, indent=1, default=str)
            f.write("\n")
        else:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def provenance(sample: Sample, rows: list[dict], call: dict, revision: str, when: str) -> str:
    """The PROVENANCE.md text of one fetched folder."""
    import datasets

    columns = list(rows[0]) if rows else []
    args = ", ".join([repr(call["path"])] + ([repr(call["name"])] if call.get("name") else [])
                     + [f"{k}={v!r}" for k, v in call.items() if k not in ("path", "name")])
    fmt = "one JSON array" if sample.file.endswith(".json") else "JSON Lines, one row per line"
    return "\n".join([
        f"# `{sample.hub_id}` — public sample fetched from the Hugging Face hub",
        "",
        "| | |",
        "|---|---|",
        f"| hub id | `{sample.hub_id}` |",
        f"| config | `{sample.config or 'default'}` |",
        f"| split | `{sample.split}` (its first {len(rows)} rows, in the hub's order) |",
        f"| revision | `{revision}` |",
        f"| fetched | {when} (datasets {datasets.__version__}) |",
        f"| rows | {len(rows)} |",
        f"| file | `{sample.file}` ({fmt}; the published columns: {', '.join(f'`{c}`' for c in columns)}) |",
        f"| read with | `datasets.load_dataset({args}, streaming=...)` |",
        "",
        f"Written by `scripts/fetch_data_samples.py`; read by `drdo_lib.data.{sample.reader}`. The rows are the "
        "published ones, unchanged. Licence and terms: see the data set's card on the hub.",
        "",
    ])


def fetch(names: list[str], out: Path, rows: int | None = None, *, streaming: bool = True) -> dict[str, str]:
    """Fetch the named data sets into ``out``; returns ``{name: error}`` for those that failed (each reported in
    one line on stderr, the others written)."""
    table = samples()
    failed: dict[str, str] = {}
    unreachable = ""  # the first data set for which the hub could not be reached: the others are not tried
    for name in names:
        sample = table[name]
        n = rows or sample.rows
        try:
            if unreachable:
                raise FetchError(f"not tried: the hub could not be reached for {unreachable}")
            got, call = load_rows(sample, n, streaming=streaming)
        except FetchError as e:
            failed[name] = str(e)
            if not unreachable and str(e).startswith(_UNREACHABLE):
                unreachable = name
            print(f"{PROG}: {name} ({sample.hub_id}): not fetched: {e}", file=sys.stderr)
            continue
        folder = out / sample.folder
        write_rows(folder / sample.file, got)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        (folder / "PROVENANCE.md").write_text(provenance(sample, got, call, hub_revision(sample.hub_id), when),
                                              encoding="utf-8")
        print(f"{PROG}: {name}: {len(got)} rows -> {folder / sample.file}")
    return failed


def _names(text: str | None) -> list[str]:
    table = samples()
    if not text:
        return list(table)
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in PROFILES:
            picked = PROFILES[part]
        elif part in table:
            picked = (part,)
        else:
            by_folder = {s.folder: s.name for s in table.values()}
            if part not in by_folder:
                raise ValueError(f"unknown data set {part!r}; choose from {', '.join(table)} or a profile "
                                 f"({', '.join(PROFILES)})")
            picked = (by_folder[part],)
        names.extend(n for n in picked if n not in names)
    return names


def _quiet_hub_logs() -> None:
    """Only errors from the hub client and ``datasets`` (not one warning per HTTP retry): each data set that fails
    is reported here, in one line."""
    import datasets
    import huggingface_hub

    huggingface_hub.utils.logging.set_verbosity_error()  # after the import, which sets the library's own level
    datasets.utils.logging.set_verbosity_error()


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    default_out = os.environ.get("DRDO_DATA_DIR") or str(REPO / "data")
    parser = argparse.ArgumentParser(
        prog="fetch_data_samples.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fetch small samples of the public data sets of the `sample` and `smol` profiles from the "
                    "Hugging Face hub into a local folder (the layout drdo_lib's loaders read).",
        epilog="examples:\n  python scripts/fetch_data_samples.py --out ~/drdo-data\n"
               "  python scripts/fetch_data_samples.py --out ~/drdo-data --only smol --rows 200\n"
               "  DRDO_DATA_DIR=~/drdo-data python -m drdo_lib train --config configs/sample.yaml --stage data\n\n"
               "data sets: " + ", ".join(f"{s.name} ({s.hub_id}, {s.split}, {s.rows} rows)"
                                        for s in samples().values()))
    parser.add_argument("--out", default=default_out,
                        help=f"folder to write into (default: $DRDO_DATA_DIR, else data/ in the repository; now "
                             f"{default_out})")
    parser.add_argument("--rows", type=_positive, default=None,
                        help="rows per data set (default: each data set's own, see below)")
    parser.add_argument("--only", default=None,
                        help="comma-separated data set names, or a profile name (sample, smol)")
    parser.add_argument("--no-streaming", action="store_true",
                        help="download the whole split before taking its first rows (if streaming fails)")
    args = parser.parse_args(argv)
    try:
        names = _names(args.only)
    except ValueError as e:
        parser.error(str(e))
    out = Path(args.out).expanduser().resolve()
    _quiet_hub_logs()
    failed = fetch(names, out, args.rows, streaming=not args.no_streaming)
    done = len(names) - len(failed)
    print(f"{PROG}: {done} of {len(names)} data set(s) written to {out}"
          + (f"; use them with DRDO_DATA_DIR={out}" if done else ""), file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
