"""The committed notebooks read as stories (no widgets, progress lines, trainer log dicts, absolute paths or repeated
figures; each at most 400 KB), and drdo_lib.notebook_outputs, which makes them so, on small synthetic notebooks."""
import base64
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drdo_lib.notebook_outputs import (CHECK_MARK, WIDGET_MIME, OutputCleaning, clean_file, clean_notebook,
                                       clean_stream_text, relativize)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 400 * 1024
# independent of the cleaner's own patterns: what a reader must never see
ABS_PATH = re.compile(r"(?<![\w.:/~-])(?:/work/|/home/|/root/|/tmp/|/Users/)")
LOG_DICT = re.compile(r"^\s*\{'(loss|train_runtime|eval_loss|train_loss)'\s*:", re.M)
PROGRESS = re.compile(r"\r|\d+%\|[^\n]*\||\bit/s\b|\bexamples/s\b|\bs/it\b")


def _text(x):
    return "".join(x) if isinstance(x, list) else (x or "")


def _outputs(nb):
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            yield i, cell, out


def _output_texts(out):
    if out["output_type"] == "stream":
        yield "stream", _text(out["text"])
    elif out["output_type"] == "error":
        yield "error", "\n".join(out.get("traceback", [])) + out.get("evalue", "")
    for mime, value in out.get("data", {}).items():
        if not mime.startswith("image/"):
            yield mime, json.dumps(value) if isinstance(value, dict) else _text(value)


def test_there_are_committed_notebooks():
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_reads_as_a_story(path):
    raw = path.read_bytes()
    size = len(raw)
    assert size <= MAX_BYTES, f"{path.name}: {size / 1024:.0f} KB > 400 KB"
    nb = json.loads(raw)
    assert "widgets" not in nb["metadata"], "widget state in the notebook metadata"
    assert not ABS_PATH.search(json.dumps(nb["metadata"].get("papermill", {}))), "absolute path in papermill metadata"
    seen = {}
    for i, cell, out in _outputs(nb):
        where = f"{path.name} cell {i}"
        assert WIDGET_MIME not in out.get("data", {}), f"{where}: widget output"
        for mime, text in _output_texts(out):
            assert not ABS_PATH.search(text), f"{where} ({mime}): absolute path {ABS_PATH.search(text).group(0)}..."
            if mime == "stream":
                assert not LOG_DICT.search(text), f"{where}: trainer log dict"
                assert not PROGRESS.search(text), f"{where}: progress-bar line"
        for mime, value in out.get("data", {}).items():
            if mime.startswith("image/"):
                digest = hashlib.sha256(_text(value).replace("\n", "").encode()).hexdigest()
                assert digest not in seen, f"{where}: the image of cell {seen.get(digest)} again"
                seen[digest] = i


# ---------------------------------------------------------------------------------------------- the cleaner
def _png(width, height, colours=True):
    from PIL import Image

    img = Image.new("RGBA", (width, height), (255, 255, 255, 255))
    px = img.load()
    for x in range(width):  # a gradient with many colours, so a palette changes the bytes
        for y in range(0, height, 3):
            px[x, y] = (x % 256, (y * 7) % 256, (x * y) % 256, 255) if colours else (0, 0, 0, 255)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _code(source, outputs):
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": source, "outputs": outputs}


def _stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


ROOT_ABS = "/srv/build/drdo"  # a repository root of some other machine
SETTINGS = OutputCleaning(top_level=("figures", "runs", "notebooks", "drdo_lib"), prefixes=(("/home/ann", "~"),),
                          max_image_width=300)


def _dirty_notebook():
    widget = {"output_type": "display_data", "metadata": {},
              "data": {WIDGET_MIME: {"model_id": "abc", "version_major": 2, "version_minor": 0},
                       "text/plain": "Loading weights:   0%|          | 0/28 [00:00<?, ?it/s]"}}
    check_out = [_stream("{'loss': '1.0', 'epoch': '1'}\n12 it/s\n"), widget]
    return {
        "nbformat": 4, "nbformat_minor": 4,
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {}}}},
                     "papermill": {"input_path": f"{ROOT_ABS}/notebooks/02.ipynb", "parameters": {"seed": 0}}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# A story"},
            _code("train()", [
                widget,
                _stream("[2026-11-30 05:53:08,974] [WARNING] [real_accelerator.py:213:get_accelerator] Setting "
                        "accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.\n"),
                _stream("{'loss': '4.843', 'grad_norm': '0.9', 'learning_rate': '0.001', 'epoch': '0.4'}\n"
                        "{'train_runtime': '500.8', 'train_samples_per_second': '76.67', 'epoch': '9.6'}\n"),
                _stream("map:  10%|#         | 1/10 [00:00<00:01, 9.1it/s]\rmap: 100%|##########| 10/10 "
                        "[00:01<00:00, 9.8it/s]\n", name="stderr"),
                _stream(f"INFO sft: done, final dir {ROOT_ABS}/runs/mini/sft/final\n", name="stderr"),
                _stream("Filter: 100%|##| 40/40 [00:00<00:00, 5000.00 examples/s]\n", name="stderr"),
                _stream("trained for 1200 steps; see /home/ann/notes.txt\n"),
                _stream("loss fell: True\n"),
            ]),
            _code("fig", [
                {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                 "data": {"text/plain": f"[PosixPath('{ROOT_ABS}/figures/mini/a.png')]"}},
                {"output_type": "display_data", "metadata": {"image/png": {"width": 600, "height": 40}},
                 "data": {"image/png": _png(600, 40), "text/plain": "<Figure size 600x40 with 1 Axes>"}},
                {"output_type": "display_data", "metadata": {},
                 "data": {"text/html": f"<td>{ROOT_ABS}/runs/mini/x.csv</td>", "text/plain": "x"}},
            ]),
            _code(f"{CHECK_MARK}\nprint(facts)", check_out),
        ],
    }


def test_clean_notebook_removes_what_a_reader_cannot_use():
    dirty = _dirty_notebook()
    nb = clean_notebook(dirty, SETTINGS)
    assert "widgets" not in nb["metadata"]
    assert nb["metadata"]["papermill"]["input_path"] == "notebooks/02.ipynb"
    outs = nb["cells"][1]["outputs"]
    # stdout streams merge; the widget, the noise line, the log dicts and the progress lines are gone
    assert [(o["name"], _text(o["text"])) for o in outs] == [
            ("stderr", "INFO sft: done, final dir runs/mini/sft/final\n"),
            ("stdout", "trained for 1200 steps; see ~/notes.txt\nloss fell: True\n")]
    fig_outs = nb["cells"][2]["outputs"]
    assert _text(fig_outs[0]["data"]["text/plain"]) == "[PosixPath('figures/mini/a.png')]"
    assert fig_outs[2]["data"]["text/html"] == "<td>runs/mini/x.csv</td>"
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(fig_outs[1]["data"]["image/png"])))
    assert img.size == (300, 20) and img.mode == "P"
    assert "image/png" not in fig_outs[1]["metadata"]  # the stored display size no longer applies
    # the cell nbval compares keeps its outputs exactly, dirty or not
    assert nb["cells"][3] == dirty["cells"][3]
    assert dirty["metadata"].get("widgets")  # the input is not modified


def test_clean_notebook_is_idempotent():
    once = clean_notebook(_dirty_notebook(), SETTINGS)
    assert clean_notebook(once, SETTINGS) == once


def test_clean_file_rewrites_in_place_and_twice_changes_nothing(tmp_path):
    import nbformat

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_dirty_notebook()))
    before, after = clean_file(path, SETTINGS)
    assert (before, after) == (len(json.dumps(_dirty_notebook()).encode()), path.stat().st_size)
    assert clean_notebook(json.loads(path.read_text()), SETTINGS)["cells"][1]["outputs"][0]["name"] == "stderr"
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
    first = path.read_bytes()
    clean_file(path, SETTINGS)
    assert path.read_bytes() == first


def test_informative_widget_text_and_plain_lines_are_kept():
    keep = {"output_type": "display_data", "metadata": {},
            "data": {WIDGET_MIME: {"model_id": "m"}, "text/plain": "chosen gamma: 2.0"}}
    drop = {"output_type": "display_data", "metadata": {},
            "data": {WIDGET_MIME: {"model_id": "n"}, "text/plain": "HBox(children=(FloatProgress(value=0.0),))"}}
    nb = clean_notebook({"nbformat": 4, "nbformat_minor": 4, "metadata": {},
                         "cells": [_code("w", [keep, drop])]}, SETTINGS)
    assert nb["cells"][0]["outputs"] == [{"output_type": "display_data", "metadata": {},
                                          "data": {"text/plain": "chosen gamma: 2.0"}}]
    text = "epoch 3: loss 0.41 (12% lower)\n{'alpha': 0.1}\nsaved 3 files\n"
    assert clean_stream_text(text, SETTINGS) == text


def test_relativize_only_strips_a_root_before_a_top_level_entry():
    s = SETTINGS
    assert relativize(f"{ROOT_ABS}/figures/mini/x.png", s) == "figures/mini/x.png"
    assert relativize(f"'{ROOT_ABS}/runs/mini'", s) == "'runs/mini'"
    assert relativize("/usr/lib/python3/json/decoder.py", s) == "/usr/lib/python3/json/decoder.py"
    assert relativize("see https://example.org/a/figures/x.png", s) == "see https://example.org/a/figures/x.png"
    assert relativize("figures/mini/x.png", s) == "figures/mini/x.png"
    assert relativize("/home/annex/figures/x.png", s) == "figures/x.png"  # a root of any machine


def test_command_line_cleans_in_place(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_dirty_notebook()))
    proc = subprocess.run([sys.executable, "-m", "drdo_lib.notebook_outputs", str(path)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "nb.ipynb" in proc.stdout
    nb = json.loads(path.read_text())
    assert "widgets" not in nb["metadata"]
    assert not any(WIDGET_MIME in o.get("data", {}) for _, c, o in _outputs(nb) if CHECK_MARK not in _text(c["source"]))
