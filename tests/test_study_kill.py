"""The study runner under a real kill: a study subprocess is
SIGKILLed after it finished some cells; the rerun recomputes none of them and completes the grid, and no cell file
is left half-written. Slow (two subprocesses of a tiny grid)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from test_study import _run


@pytest.mark.slow
def test_sigkilled_study_recomputes_no_finished_cell(tmp_path):
    run = _run(tmp_path)
    prof = dict(run.profile)
    prof["study"] = {"seeds": [0], "methods": ["dpo", "ipo", "drdo_logprob"], "oracle_kinds": ["true_reward"],
                     "noise_levels": [{"temperature": 1.0, "tie_fraction": 0.3}], "n_prompts": 4,
                     "n_train_prompts": 4, "max_tie_pairs": 8, "margin_every": 1, "reading_oracle": "true_reward",
                     "student": "drdo_logprob", "baselines": ["dpo"], "n_bootstrap": 200, "gate": "off"}
    path = tmp_path / "stest.yaml"
    path.write_text(yaml.safe_dump(prof, sort_keys=False))
    cells = tmp_path / "runs" / "stest" / "study" / "cells"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "DRDO_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "drdo_lib", "study", "--config", str(path)]

    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and len(list(cells.glob("*.json"))) < 2:
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.fail(f"the study finished or died (exit {proc.returncode}) before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in cells.glob("*.json")}
    assert 2 <= len(done) < 4  # SFT + 3 method cells: killed part-way
    for p in cells.glob("*.json"):
        json.loads(p.read_text())  # every cell file on disk is whole (written atomically, last)

    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = {p.name: p.stat().st_mtime_ns for p in cells.glob("*.json")}
    assert len(after) == 4
    assert {k: after[k] for k in done} == done  # no finished cell was recomputed
    # the only non-cell file allowed is a temporary file of the killed process (killed between write and rename)
    assert all(p.name.endswith(f".{proc.pid}.tmp") for p in cells.iterdir() if not p.name.endswith(".json"))
