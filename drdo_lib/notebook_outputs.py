"""Tidy the stored outputs of executed notebooks, so that a notebook read outside Jupyter is its story only.

An executed notebook (``run_all.sh`` writes one per stage with papermill) carries outputs that mean nothing to a
reader: progress-bar widgets (blank outside a live kernel) and their state in ``metadata.widgets``, tqdm lines,
training logs printed as dicts, library noise lines, absolute paths of the machine that ran it, and figures stored
as full-colour PNGs many times larger than their content needs. :func:`clean_notebook` removes or rewrites them:

- widget views are dropped (their text fallback too, unless it says more than a progress bar), and so is
  ``metadata.widgets``;
- from stream outputs: lines that are progress bars (``\\r`` redraws, ``it/s``, ``examples/s``, ``NN%|``), training
  logs printed as dicts (``{'loss': ...}``, ``{'train_runtime': ...}``) and the lines matching
  :attr:`OutputCleaning.noise_patterns`; a stream left empty is dropped, neighbouring streams of one name merge;
- an absolute path that continues into one of the repository's top-level folders (``/abs/repo/figures/x.png``,
  ``/abs/repo/runs/mini/...``) loses its root (``figures/x.png``), in every text output and in papermill's
  metadata; the home directory becomes ``~``;
- PNG images wider than :attr:`OutputCleaning.max_image_width` are scaled down and stored with a colour palette.

The outputs of cells marked ``# NBVAL_CHECK_OUTPUT`` are never touched: nbval compares them with a re-execution.
Every step is idempotent (cleaning a clean notebook changes nothing).

Run ``python -m drdo_lib.notebook_outputs NB.ipynb ...`` to clean notebooks in place.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OutputCleaning", "CHECK_MARK", "WIDGET_MIME", "is_progress_line", "is_trainer_log_line",
           "is_check_cell", "repo_root_pattern", "relativize", "clean_stream_text", "compact_png", "clean_notebook",
           "clean_file", "main"]

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
REPO_ROOT = Path(__file__).resolve().parent.parent

_PROGRESS = re.compile(r"\r|\d+%\|"                                   # a redraw or a tqdm bar
                       r"|(?:\d|\?)\s*(?:it/s|s/it|examples/s|ba/s|MB/s|kB/s|B/s)\b")
_TRAINER_LOG = re.compile(r"^\s*\{'(?:loss|train_runtime|train_loss|eval_[A-Za-z_]+|grad_norm|learning_rate|epoch)'"
                          r"\s*:.*\}\s*$")
_WIDGET_REPR = re.compile(r"^\s*(?:[A-Z][A-Za-z]*(?:Box|Progress|Output|Widget)|interactive)\(")


@dataclass(frozen=True)
class OutputCleaning:
    """Settings of :func:`clean_notebook`.

    ``noise_patterns``: regular expressions of stream lines to drop besides progress bars and trainer log dicts
    (default: DeepSpeed's "Setting accelerator to CPU" notice, stamped with the run's date). ``max_image_width``:
    PNG outputs wider than this many pixels are scaled down to it (0: never). ``palette_colors``: PNG outputs are
    stored with a palette of at most this many colours (0: keep full colour). ``top_level``: the repository's
    top-level folders; an absolute path followed by one of them is that repository's root on some machine (default:
    the folders of this checkout, and ``runs``, ``figures``, ``notebooks``, ``.cache``, ``.venv``). ``prefixes``:
    more ``(absolute prefix, replacement)`` pairs (default: the home directory → ``~``)."""

    noise_patterns: tuple[str, ...] = (r"\[real_accelerator\.py:\d+:get_accelerator\] Setting accelerator to CPU",)
    max_image_width: int = 1200
    palette_colors: int = 256
    top_level: tuple[str, ...] | None = None
    prefixes: tuple[tuple[str, str], ...] | None = None
    _noise: tuple[re.Pattern, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.max_image_width < 0 or not 0 <= self.palette_colors <= 256:
            raise ValueError("max_image_width must be >= 0 and palette_colors in [0, 256]")
        object.__setattr__(self, "_noise", tuple(re.compile(p) for p in self.noise_patterns))
        if self.top_level is None:
            names = sorted(p.name for p in REPO_ROOT.iterdir() if p.is_dir() and p.name != ".git") \
                if (REPO_ROOT / "run_all.sh").is_file() else []  # a checkout, not an installed package
            object.__setattr__(self, "top_level", tuple(dict.fromkeys([*names, "runs", "figures", "notebooks",
                                                                       ".cache", ".venv"])))
        if self.prefixes is None:
            home = str(Path.home())
            object.__setattr__(self, "prefixes", ((home, "~"),) if home not in ("/", "") else ())


# ---------------------------------------------------------------------------------------------- lines and text
def is_progress_line(line: str) -> bool:
    """True for a progress-bar line: a carriage-return redraw, a tqdm bar (``NN%|``) or a rate (``it/s``...)."""
    return bool(_PROGRESS.search(line.rstrip("\n")))


def is_trainer_log_line(line: str) -> bool:
    """True for a training log printed as a dict by transformers' ``PrinterCallback``."""
    return bool(_TRAINER_LOG.match(line.rstrip("\n")))


def is_check_cell(cell: dict) -> bool:
    """True for a cell whose outputs nbval compares (its source holds ``# NBVAL_CHECK_OUTPUT``)."""
    return CHECK_MARK in _text(cell.get("source", ""))


def repo_root_pattern(top_level: tuple[str, ...]) -> re.Pattern:
    """An absolute path ``/a/b`` followed by ``/<name>`` (``name`` a top-level folder of the repository); group 1
    is the root. The root has no whitespace, quotes or brackets and is not part of a longer word or URL."""
    names = "|".join(re.escape(n) for n in sorted(top_level, key=len, reverse=True))
    segment = r"/[^\s/'\"<>()\[\]{},:;=|`*]+"
    return re.compile(r"(?<![\w.:/~-])((?:" + segment + r")+?)/(?=(?:" + names + r")(?:[/\s'\"<>)\],:;]|$))")


def relativize(text: str, settings: OutputCleaning) -> str:
    """``text`` with the repository root of any machine removed from absolute paths, and the configured prefixes
    replaced."""
    text = repo_root_pattern(settings.top_level).sub("", text)
    for prefix, repl in settings.prefixes:
        text = re.sub(r"(?<![\w.~-])" + re.escape(prefix.rstrip("/")) + r"(?=/|\b)", repl, text)
    return text


def clean_stream_text(text: str, settings: OutputCleaning) -> str:
    """``text`` without progress-bar lines, trainer log dicts and noise lines (each line judged by what a terminal
    would show: the part after its last carriage return)."""
    kept = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if "\r" in body:
            body = body.rsplit("\r", 1)[-1]
            if not body.strip() or is_progress_line(body) or any(p.search(body) for p in settings._noise):
                continue
            line = body + ("\n" if line.endswith("\n") else "")
        if is_progress_line(body) or is_trainer_log_line(body) or any(p.search(body) for p in settings._noise):
            continue
        kept.append(line)
    return relativize("".join(kept), settings)


# ---------------------------------------------------------------------------------------------- images
def compact_png(b64: str, settings: OutputCleaning) -> str:
    """A base64 PNG scaled down to ``max_image_width`` and stored with a palette; unchanged when it already is
    (palette mode and not too wide), so the step is idempotent."""
    from PIL import Image

    raw = base64.b64decode(b64)
    img = Image.open(io.BytesIO(raw))
    too_wide = settings.max_image_width and img.width > settings.max_image_width
    needs_palette = settings.palette_colors and img.mode != "P"
    if not (too_wide or needs_palette):
        return b64
    img = img.convert("RGBA")
    if too_wide:
        h = max(1, round(img.height * settings.max_image_width / img.width))
        img = img.resize((settings.max_image_width, h), Image.LANCZOS)
    if settings.palette_colors:
        img = img.quantize(colors=settings.palette_colors, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    out = buf.getvalue()
    if not too_wide and len(out) >= len(raw):  # a palette that does not pay: keep the original
        return b64
    return base64.b64encode(out).decode("ascii")


# ---------------------------------------------------------------------------------------------- notebook
def _text(x: Any) -> str:
    return "".join(x) if isinstance(x, list) else (x or "")


def _relativize_json(x: Any, settings: OutputCleaning) -> Any:
    if isinstance(x, str):
        return relativize(x, settings)
    if isinstance(x, list):
        return [_relativize_json(v, settings) for v in x]
    if isinstance(x, dict):
        return {k: _relativize_json(v, settings) for k, v in x.items()}
    return x


def _clean_output(out: dict, settings: OutputCleaning) -> dict | None:
    kind = out.get("output_type")
    if kind == "stream":
        text = clean_stream_text(_text(out.get("text")), settings)
        return {**out, "text": text} if text else None
    if kind == "error":
        return {**out, "traceback": [relativize(t, settings) for t in out.get("traceback", [])],
                "evalue": relativize(out.get("evalue", ""), settings)}
    if kind not in ("display_data", "execute_result"):
        return out
    data = dict(out.get("data", {}))
    if WIDGET_MIME in data:
        plain = _text(data.get("text/plain")).strip()
        if not plain or is_progress_line(plain) or _WIDGET_REPR.match(plain):
            return None
        data = {"text/plain": plain}
    for mime, value in list(data.items()):
        if mime == "image/png" and isinstance(value, str):
            data[mime] = compact_png(value, settings)
        elif mime.startswith("text/") and not mime.startswith("text/x-"):
            data[mime] = _relativize_json(value, settings)
        elif mime.endswith("json"):
            data[mime] = _relativize_json(value, settings)
    md = out.get("metadata")
    if isinstance(md, dict) and "image/png" in md and data.get("image/png") != out["data"].get("image/png"):
        md = {k: v for k, v in md.items() if k != "image/png"}  # stored width/height would no longer match
    return {**out, "data": data, **({"metadata": md} if md is not None else {})}


def _merge_streams(outputs: list[dict]) -> list[dict]:
    merged: list[dict] = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (prev is not None and out.get("output_type") == "stream" and prev.get("output_type") == "stream"
                and prev.get("name") == out.get("name")):
            merged[-1] = {**prev, "text": _text(prev["text"]) + _text(out["text"])}
        else:
            merged.append(out)
    return merged


def clean_notebook(nb: dict, settings: OutputCleaning | None = None) -> dict:
    """A cleaned copy of the notebook ``nb`` (nbformat 4 JSON as a dict); see the module docstring."""
    settings = settings or OutputCleaning()
    nb = json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("widgets", None)
    if "papermill" in nb.get("metadata", {}):
        nb["metadata"]["papermill"] = _relativize_json(nb["metadata"]["papermill"], settings)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or is_check_cell(cell):
            continue
        outs = [o for o in (_clean_output(o, settings) for o in cell.get("outputs", [])) if o is not None]
        cell["outputs"] = _merge_streams(outs)
    return nb


def clean_file(path: str | Path, settings: OutputCleaning | None = None) -> tuple[int, int]:
    """Clean the notebook at ``path`` in place; returns its size in bytes before and after."""
    import nbformat

    path = Path(path)
    before = path.read_bytes()
    nb = clean_notebook(json.loads(before), settings)
    text = nbformat.writes(nbformat.from_dict(nb), version=nbformat.NO_CONVERT)
    text += "" if text.endswith("\n") else "\n"
    if text.encode() != before:
        path.write_text(text, encoding="utf-8")
    return len(before), len(text.encode())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m drdo_lib.notebook_outputs",
        description="Clean executed notebooks in place: drop progress widgets, widget state, progress lines and "
                    "trainer log dicts; make absolute paths relative; store figures compactly. Cells marked "
                    f"'{CHECK_MARK}' are left as they are.",
        epilog="example: python -m drdo_lib.notebook_outputs notebooks/03_oracle_training.ipynb")
    ap.add_argument("notebooks", nargs="+", help="executed .ipynb files")
    ap.add_argument("--max-image-width", type=int, default=OutputCleaning.max_image_width,
                    help="scale PNG outputs wider than this down to it (0: never; default %(default)s)")
    args = ap.parse_args(argv)
    settings = OutputCleaning(max_image_width=args.max_image_width)
    for p in args.notebooks:
        before, after = clean_file(p, settings)
        print(f"{p}: {before / 1024:.0f} KB -> {after / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
