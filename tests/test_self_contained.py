"""The repository stands on its own: no file points to a design document outside it or to an issue tracker a
reader does not have."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"DESIGN\.md|\bissues? #?\d+\b", re.IGNORECASE)


def _tracked() -> list[Path]:
    res = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip("not a git checkout")
    return [REPO / f for f in res.stdout.splitlines() if (REPO / f).is_file()]


def test_no_file_points_outside_the_repository():
    hits = []
    for path in _tracked():
        if path.suffix in {".png", ".pdf", ".safetensors", ".bin"} or path.name == Path(__file__).name:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        hits += [f"{path.relative_to(REPO)}:{i}: {line.strip()[:100]}"
                 for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits[:20])
